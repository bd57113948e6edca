"""Posting a chunk of events to one shard as facts, and decoding the actions durable fires.

One post is one ``assert_facts`` of the chunk's events reaching the shard (each fact carries the
event name and only the label fields the shard reads), a drain of every action, and one
``retract_facts`` of the facts that fired, so a shard holds no fact between posts. Fact ids are
``"{j:03d}-{seq}"``: unique per post and never colliding in durable's message index (see
``docs/design/rete.md``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from automations.domain import events
from automations.engine.rete import _gateway, compiler, packing, stats

_log = logging.getLogger(__name__)

CHUNK = 500
"""Events per ``assert_facts`` call (durable's message index has 512 buckets)."""
ID_PREFIXES = tuple(f"{j:03d}-" for j in range(CHUNK))
"""A fact's id is its prefix (its position in the post) and the post's sequence number."""
if len({compiler.fnv1a32(p) for p in ID_PREFIXES}) != CHUNK:  # pragma: no cover - a constant
    raise RuntimeError("message-id prefixes collide under FNV-1a")

_POSITIONS = {f"{j:03d}": j for j in range(CHUNK)}
"""A fact's position in its post, from the first three characters of its id."""
_ERR_EVENT_OBSERVED = 2


class Poster:
    """Posts chunks of events to shards through the gateway and records which rules fired.

    Args:
        gateway: The gateway to durable_rules.
        by_number: The live rules by number as text (a fired rule not in it is dead: ignored).
        counters: Where posts, actions and fallbacks are counted.
    """

    def __init__(
        self,
        gateway: _gateway.Gateway,
        by_number: dict[str, packing.Rule],
        counters: stats.ReteStats,
    ) -> None:
        self.gateway = gateway
        self.by_number = by_number
        self.counters = counters
        self.seq = 0

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
                because durable reported a problem with the post.
        """
        self.seq += 1
        suffix = str(self.seq)
        fields = shard.fields
        facts: list[dict[str, str]] = []
        for j, i in enumerate(indices):
            event = chunk[i]
            fact = {"id": ID_PREFIXES[j] + suffix, "n": event.event}
            resource = event.resource
            for label, field in fields:
                value = resource.get(label)
                if value is not None:
                    fact[field] = value
            facts.append(fact)
        gateway = self.gateway
        counters = self.counters
        counters.posts += len(facts)
        counters.shard_posts += 1
        try:
            code = gateway.assert_facts(shard.handle, json.dumps(facts, ensure_ascii=False))
        except gateway.error:
            _log.exception("durable_rules failed a post to %s; Python fallback", shard.name)
            code = _ERR_EVENT_OBSERVED
        messages = gateway.drain(shard.handle)
        counters.actions += len(messages)
        retract: set[int] = set()
        numbers = self.by_number
        positions = _POSITIONS
        for message in messages:
            # '{"r<rule>":{"m":{"id": "<jjj>-<seq>", ...}}}': durable echoes the fact verbatim
            end = message.find('"', 3)
            j = positions.get(message[end + 15 : end + 18], -1)
            if j < 0:  # pragma: no cover - durable's action format is fixed
                raise RuntimeError(f"unexpected durable action: {message[:80]}")
            retract.add(j)
            rule = numbers.get(message[3:end])
            if rule is not None and rule.shard is shard:
                i = indices[j]
                listed = fired.get(i)
                if listed is None:
                    fired[i] = [rule]
                elif rule not in listed:  # an $or can fire one rule once per alternative
                    listed.append(rule)
        if code == _ERR_EVENT_OBSERVED:
            counters.fallbacks += 1
            python_path.update(indices)
            retract.update(range(len(indices)))
        if retract:
            gateway.retract_facts(
                shard.handle,
                json.dumps([{"id": ID_PREFIXES[j] + suffix} for j in sorted(retract)]),
            )
