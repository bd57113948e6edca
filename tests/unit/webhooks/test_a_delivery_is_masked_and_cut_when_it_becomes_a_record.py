"""A pending delivery keeps the request's headers as they came; its record masks them."""

from __future__ import annotations

from automations.domain import events
from automations.webhooks import deliveries, requests


def _event(event_id: str) -> events.Event:
    return events.Event(id=event_id, event="e", occurred=1.0, resource={"prefect.resource.id": "r"})


def test_the_record_drops_authorization_and_masks_secrets_and_the_render_is_kept_cut() -> None:
    headers = requests.Headers(
        [
            ("Authorization", "Bearer hunter2"),
            ("X-Api-Token", "hunter2-secret"),
            ("Referer", "https://user:hunter2@example.com/x"),
            ("Content-Type", "application/json"),
        ]
    )
    rendered = "x" * (deliveries.MAX_RECORDED_RENDER + 1000)
    pending = deliveries.Pending(
        "w",
        1.0,
        "POST",
        204,
        0.01,
        "",
        deliveries.recorded(rendered),
        headers,
        tuple(event.id for event in [_event("a"), _event("b")]),
    )

    record = pending.delivery()

    assert "authorization" not in record.headers
    assert record.headers["x-api-token"] == "****"
    assert "hunter2" not in record.headers["referer"]
    assert record.headers["content-type"] == "application/json"
    assert record.rendered.startswith("x" * deliveries.MAX_RECORDED_RENDER + "...")
    assert record.rendered.endswith(f"({len(rendered)} characters in all)")
    assert record.event_ids == ("a", "b")
    assert pending.headers["authorization"] == "Bearer hunter2"  # kept as received until then
