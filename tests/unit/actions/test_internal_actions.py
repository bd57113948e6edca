"""do-nothing, pause/resume-automation (selected and inferred, as Prefect infers) and emit-event."""

from __future__ import annotations

import pytest

from automations.actions import internal
from automations.domain import events


def event(*resources: str) -> events.Event:
    primary, *related = resources
    return events.Event(
        id="e1",
        event="x",
        occurred=0.0,
        resource={"prefect.resource.id": primary},
        related=tuple({"prefect.resource.id": r, "prefect.resource.role": "any"} for r in related),
    )


def test_do_nothing_succeeds_with_an_empty_result() -> None:
    effect = internal.run("do-nothing", {}, event=None, idempotency_key="k", now=0.0)
    assert effect == internal.Effect(result={})


def test_pause_automation_targets_the_selected_automation() -> None:
    effect = internal.run(
        "pause-automation",
        {"source": "selected", "automation_id": "a-2"},
        event=None,
        idempotency_key="k",
        now=0.0,
    )
    assert effect.set_enabled == ("a-2", False)


def test_resume_automation_infers_the_first_automation_resource() -> None:
    effect = internal.run(
        "resume-automation",
        {"source": "inferred"},
        event=event("acme.thing.1", "prefect.automation.abc-1", "prefect.automation.abc-2"),
        idempotency_key="k",
        now=0.0,
    )
    assert effect.set_enabled == ("abc-1", True)


def test_inference_does_not_fall_through_past_a_bad_id() -> None:
    with pytest.raises(internal.ActionFailed, match="No automation could be inferred"):
        internal.infer_automation_id(
            {"source": "inferred"},
            event("prefect.automation.not_valid!", "prefect.automation.good"),
        )


@pytest.mark.parametrize(
    ("parameters", "the_event", "reason"),
    [
        ({"source": "inferred"}, None, "No event to infer the automation"),
        ({"source": "inferred"}, event("acme.x"), "No automation could be inferred"),
        ({"source": "selected"}, None, "No automation selected"),
    ],
)
def test_inference_failures_carry_prefects_reasons(
    parameters: dict[str, str], the_event: events.Event | None, reason: str
) -> None:
    with pytest.raises(internal.ActionFailed, match=reason):
        internal.infer_automation_id(parameters, the_event)


def test_emit_event_publishes_one_valid_event_with_a_stable_id() -> None:
    parameters = {
        "event": "acme.escalated",
        "resource": {"prefect.resource.id": "acme.ticket.7"},
        "related": [{"prefect.resource.id": "acme.team.ops", "prefect.resource.role": "team"}],
        "payload": {"level": 2},
    }
    first = internal.run("emit-event", parameters, event=None, idempotency_key="k1", now=5.0)
    again = internal.run("emit-event", parameters, event=None, idempotency_key="k1", now=9.0)
    (emitted,) = first.emitted
    assert emitted.event == "acme.escalated"
    assert emitted.payload == {"level": 2}
    assert emitted.id == again.emitted[0].id  # a retried invocation publishes the same event
    assert first.result == {"emitted_event": emitted.id}


def test_emit_event_refuses_an_event_without_a_resource_id() -> None:
    with pytest.raises(internal.ActionFailed, match="emit-event: invalid event"):
        internal.run(
            "emit-event",
            {"event": "x", "resource": {"name": "no id"}},
            event=None,
            idempotency_key="k",
            now=0.0,
        )
