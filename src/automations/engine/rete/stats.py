"""The rete matcher's counted work: what tests and benchmarks assert on instead of timings."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(slots=True)
class ReteStats:
    """Counted work (assert on these, not on timings).

    Attributes:
        events: Events matched.
        posts: Facts asserted (one per event and shard reached).
        shard_posts: ``assert_facts`` calls.
        actions: Actions drained.
        python_checks: Specs evaluated in Python (pending rules, relaxed rules, unsafe events).
        rulesets_created: Rulesets created.
        rulesets_abandoned: Rulesets retired (the bounded leak).
        rules_abandoned: Rules (dead or moved) in the rulesets retired.
        gateways_replaced: Worker processes replaced (to give back abandoned rulesets' memory,
            or because one died).
        fallbacks: Posts matched in Python after durable reported a problem.
        name_checks: Triggers whose name patterns were evaluated (once per distinct name).
    """

    events: int = 0
    posts: int = 0
    shard_posts: int = 0
    actions: int = 0
    python_checks: int = 0
    rulesets_created: int = 0
    rulesets_abandoned: int = 0
    rules_abandoned: int = 0
    gateways_replaced: int = 0
    fallbacks: int = 0
    name_checks: int = 0
