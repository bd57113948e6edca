"""Posting a chunk of events to one shard as facts, and decoding the actions durable fires.

One post is one ``assert_facts`` of the chunk's events reaching the shard (each fact carries the
event name and only the label fields the shard reads), a drain of every action, and one
``retract_facts`` of the facts that fired, so a shard holds no fact between posts (the gateway
does all three in one call). Fact ids are ``"{j:03d}-{seq}"`` (:mod:`fact_ids`): unique per post
and never colliding in durable's message index (see ``docs/design/rete.md``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from automations.domain import events
from automations.engine.rete import _gateway, compiler, fact_ids, packing, stats

_log = logging.getLogger(__name__)

CHUNK = fact_ids.CHUNK
"""Events per ``assert_facts`` call (durable's message index has 512 buckets)."""
if len({compiler.fnv1a32(p) for p in fact_ids.ID_PREFIXES}) != CHUNK:  # pragma: no cover
    raise RuntimeError("message-id prefixes collide under FNV-1a")


class Poster:
    """Posts chunks of events to shards through the gateway and records which rules fired.

    Args:
        gateway: The gateway to durable_rules (replaced by the matcher when it starts another).
        by_number: The live rules by number (a fired rule not in it is dead: ignored).
        counters: Where posts, actions and fallbacks are counted.

    Attributes:
        lost: The gateway was found gone during a post (the matcher replaces it).
    """

    def __init__(
        self,
        gateway: _gateway.DurableGateway,
        by_number: dict[int, packing.Rule],
        counters: stats.ReteStats,
    ) -> None:
        self.gateway = gateway
        self.by_number = by_number
        self.counters = counters
        self.seq = 0
        self.lost = False

    def post(
        self,
        shard: packing.Shard,
        chunk: Sequence[events.Event],
        indices: list[int],
        fired: dict[int, list[packing.Rule]],
        python_path: set[int],
    ) -> None:
        """Posts the events ``chunk[i]`` for ``i`` in ``indices`` to ``shard``.

        Args:
            shard: A live shard.
            chunk: At most :data:`CHUNK` events.
            indices: Positions in ``chunk`` of the events reaching the shard.
            fired: Filled in: position in ``chunk`` -> the live rules of this shard that fired,
                each once, in firing order (appended to what other shards fired).
            python_path: Filled in: positions whose events must be matched in Python instead,
                because durable reported a problem with the post or its worker is gone.
        """
        self.seq += 1
        suffix = str(self.seq)
        fields = shard.fields
        prefixes = fact_ids.ID_PREFIXES
        facts: list[dict[str, str]] = []
        for j, i in enumerate(indices):
            event = chunk[i]
            fact = {"id": prefixes[j] + suffix, "n": event.event}
            resource = event.resource
            for label, field in fields:
                value = resource.get(label)
                if value is not None:
                    fact[field] = value
            facts.append(fact)
        counters = self.counters
        counters.posts += len(facts)
        counters.shard_posts += 1
        if self.lost:
            python_path.update(indices)
            return
        try:
            posted = self.gateway.post(
                shard.handle, json.dumps(facts, ensure_ascii=False), len(facts), suffix
            )
        except _gateway.GatewayLost:
            _log.exception("the durable_rules worker is gone; Python fallback until replaced")
            self.lost = True
            python_path.update(indices)
            return
        if posted.error is not None:
            _log.error(
                "durable_rules failed a post to %s: %s; Python fallback", shard.name, posted.error
            )
        counters.actions += len(posted.fired)
        numbers = self.by_number
        for number, j in posted.fired:
            rule = numbers.get(number)
            if rule is not None and rule.shard is shard:
                i = indices[j]
                listed = fired.get(i)
                if listed is None:
                    fired[i] = [rule]
                elif rule not in listed:  # an $or can fire one rule once per alternative
                    listed.append(rule)
        if posted.code == _gateway.OBSERVED:
            counters.fallbacks += 1
            python_path.update(indices)
