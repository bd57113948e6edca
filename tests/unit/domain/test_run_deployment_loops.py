"""Prefect's run-deployment loop guard: a flow run that starts a flow run that starts..."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from automations.domain import errors, prefect_json, validation


def automation(expect: str, action: dict[str, Any], **trigger: Any) -> Any:
    return prefect_json.parse_automation(
        {
            "name": "loop?",
            "trigger": {
                "type": "event",
                "expect": [expect],
                "threshold": 1,
                "within": 0,
                **trigger,
            },
            "actions": [action],
        },
        automation_id="a1",
    )


INFERRED = {"type": "run-deployment", "source": "inferred"}
SELECTED = {"type": "run-deployment", "source": "selected", "deployment_id": "d1"}


@pytest.mark.parametrize(
    "expect",
    [
        "prefect.flow-run.Scheduled",
        "prefect.flow-run.Pending",
        "prefect.flow-run.Running",
        "prefect.flow-run.*",
    ],
)
def test_an_inferred_run_deployment_on_a_starting_flow_run_is_refused(expect: str) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        validation.check_run_deployment_loops(automation(expect, INFERRED))
    assert refused.value.field == "trigger"
    assert refused.value.reason == "RUN_DEPLOYMENT_LOOP"


def test_a_selected_run_deployment_on_any_flow_run_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument):
        validation.check_run_deployment_loops(
            automation(
                "prefect.flow-run.Running",
                SELECTED,
                match={"prefect.resource.id": "prefect.flow-run.*"},
            )
        )


@pytest.mark.parametrize(
    ("expect", "action", "trigger"),
    [
        ("prefect.flow-run.Failed", INFERRED, {}),  # terminal states are fine
        (
            "prefect.flow-run.Running",
            SELECTED,
            {"match_related": {"prefect.resource.id": "prefect.deployment.etl"}},
        ),
        ("prefect.flow-run.Running", INFERRED, {"posture": "Proactive", "within": 60}),
        ("prefect.flow-run.Running", {"type": "do-nothing"}, {}),
        ("prefect.flow-run.Running", INFERRED, {"enabled": False}),
    ],
)
def test_what_cannot_loop_is_accepted(expect: str, action: dict[str, Any], trigger: Any) -> None:
    enabled = trigger.pop("enabled", True)
    subject = automation(expect, action, **trigger)
    if not enabled:
        subject = dataclasses.replace(subject, enabled=False)
    validation.check_run_deployment_loops(subject)
