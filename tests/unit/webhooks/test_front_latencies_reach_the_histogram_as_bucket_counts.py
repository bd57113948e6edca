"""A front's latencies reach the engine's histogram as bucket counts, the same as observing them."""

from __future__ import annotations

from prometheus_client import REGISTRY

from automations.webhooks import meter

NAME = "automations_webhook_request_duration_seconds"


def _bucket(le: str) -> float:
    return REGISTRY.get_sample_value(f"{NAME}_bucket", {"le": le}) or 0.0


def _totals() -> tuple[float, float]:
    return (
        REGISTRY.get_sample_value(f"{NAME}_count") or 0.0,
        REGISTRY.get_sample_value(f"{NAME}_sum") or 0.0,
    )


def test_a_tally_applied_by_the_engine_counts_each_latency_in_its_bucket() -> None:
    tally = meter.Tally()
    for seconds in (0.0004, 0.0005, 0.003, 0.003, 0.03, 7.0):
        tally.request("accepted", seconds)
    tally.request("not_found", None)  # no latency
    before = {le: _bucket(le) for le in ("0.0005", "0.001", "0.005", "0.05", "5.0", "+Inf")}
    count, total = _totals()

    taken = tally.take()
    assert taken is not None
    meter.PrometheusMeter().apply(taken)

    grown = {le: _bucket(le) - was for le, was in before.items()}
    assert grown == {"0.0005": 2, "0.001": 2, "0.005": 4, "0.05": 5, "5.0": 5, "+Inf": 6}
    new_count, new_total = _totals()
    assert new_count - count == 6
    assert abs((new_total - total) - 7.0369) < 1e-9


def test_a_taken_tally_starts_again_from_nothing() -> None:
    tally = meter.Tally()
    tally.request("accepted", 0.002)
    assert tally.take() is not None
    assert tally.take() is None
    tally.request("accepted", 0.002)
    taken = tally.take()
    assert taken is not None and sum(taken["latency"]["counts"]) == 1
