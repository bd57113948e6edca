"""The trigger templates against the JSON Prefect's UI produces for the same choices.

Sources of the expected JSON:

- UI_DEFAULTS: ui-v2's ``getDefaultTriggerForTemplate`` (PrefectHQ/prefect,
  ``ui-v2/src/components/automations/automations-wizard/automations-trigger-step/
  trigger-step-utils.ts``), copied as they are there: each template as first selected.
- The other cases: what the Vue UI's mappers build for the choices in the test
  (PrefectHQ/prefect-ui-library ``src/automations/maps/flowRunStateTrigger.ts`` @04018fe,
  ``deploymentStatusTrigger.ts`` @04018fe, ``workPoolStatusTrigger.ts`` @cfbaf61,
  ``workQueueStatusTrigger.ts``, ``utilities.ts`` (toResourceId, toMatchRelatedId,
  toStateNameEvents), ``triggers.ts`` (request keys and order), ``types/automationTriggerEvent.ts``
  (threshold 1, within 0 by default), and the status orders of ``models/WorkPoolStatus.ts``
  ['ready', 'not_ready', 'paused'] and ``models/WorkPoolQueue.ts`` ['ready', 'paused',
  'not_ready']), written out by hand.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from automations.cli import main as cli
from automations.domain import prefect_json
from automations.domain import trigger_templates as tt

FLOW = "6a1f3c3e-0d47-4a8e-9c0f-2b1f0e6c5d11"
DEPLOYMENT = "0b7e2f4c-8a55-4d1e-a8b2-6c3d9e1f2a33"
POOL = "3c9d1e2f-4b6a-4c8d-9e0f-1a2b3c4d5e66"
QUEUE = "9f8e7d6c-5b4a-4392-8170-6e5d4c3b2a99"

UI_DEFAULTS: dict[str, dict[str, Any]] = {
    "flow-run-state": {
        "type": "event",
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {},
        "after": [],
        "expect": ["prefect.flow-run.*"],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    },
    "deployment-status": {
        "type": "event",
        "match": {"prefect.resource.id": "prefect.deployment.*"},
        "match_related": {},
        "after": [],
        "expect": ["prefect.deployment.not-ready"],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    },
    "work-pool-status": {
        "type": "event",
        "match": {"prefect.resource.id": "prefect.work-pool.*"},
        "match_related": {},
        "after": [],
        "expect": ["prefect.work-pool.not-ready", "prefect.work-pool.not_ready"],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    },
    "work-queue-status": {
        "type": "event",
        "match": {"prefect.resource.id": "prefect.work-queue.*"},
        "match_related": {},
        "after": [],
        "expect": ["prefect.work-queue.not-ready"],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    },
}


def built(template: str) -> dict[str, Any]:
    return {
        "flow-run-state": lambda: tt.flow_run_state(),
        "deployment-status": lambda: tt.deployment_status("not_ready"),
        "work-pool-status": lambda: tt.work_pool_status("not_ready"),
        "work-queue-status": lambda: tt.work_queue_status("not_ready"),
    }[template]()


@pytest.mark.parametrize("template", sorted(UI_DEFAULTS))
def test_each_template_as_first_selected_is_the_uis_default_trigger(template: str) -> None:
    trigger = built(template)
    assert trigger == UI_DEFAULTS[template]
    assert list(trigger) == list(UI_DEFAULTS[template])  # the UI's key order too


def test_flow_run_enters_failed_or_crashed_for_tagged_runs() -> None:
    assert tt.flow_run_state(["Failed", "Crashed"], tags=["prod", "critical"]) == {
        "type": "event",
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {
            "prefect.resource.role": "tag",
            "prefect.resource.id": ["prefect.tag.prod", "prefect.tag.critical"],
        },
        "after": [],
        "expect": ["prefect.flow-run.Failed", "prefect.flow-run.Crashed"],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    }


def test_flow_run_stays_in_running_for_30_minutes_for_one_flow() -> None:
    assert tt.flow_run_state(["Running"], flows=[FLOW], stays_for=1800) == {
        "type": "event",
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {
            "prefect.resource.role": "flow",
            "prefect.resource.id": [f"prefect.flow.{FLOW}"],
        },
        "after": ["prefect.flow-run.Running"],
        "expect": ["prefect.flow-run.*"],
        "for_each": ["prefect.resource.id"],
        "posture": "Proactive",
        "threshold": 1,
        "within": 1800,
    }


def test_flow_run_state_with_flows_and_a_deployment_lists_both_related_specs() -> None:
    # ui-v2's buildMatchRelated (flow-run-state-trigger-fields.tsx): a list when both are chosen
    trigger = tt.flow_run_state(["Completed"], flows=[FLOW], deployments=[DEPLOYMENT])
    assert trigger["match_related"] == [
        {"prefect.resource.role": "flow", "prefect.resource.id": [f"prefect.flow.{FLOW}"]},
        {
            "prefect.resource.role": "deployment",
            "prefect.resource.id": [f"prefect.deployment.{DEPLOYMENT}"],
        },
    ]


def test_deployment_stays_ready_means_no_not_ready_event_in_time() -> None:
    assert tt.deployment_status("READY", deployments=[DEPLOYMENT], for_seconds=60) == {
        "type": "event",
        "match": {"prefect.resource.id": [f"prefect.deployment.{DEPLOYMENT}"]},
        "match_related": {},
        "after": ["prefect.deployment.ready"],
        "expect": ["prefect.deployment.not-ready"],
        "for_each": ["prefect.resource.id"],
        "posture": "Proactive",
        "threshold": 1,
        "within": 60,
    }


def test_work_pool_stays_ready_expects_every_other_status_including_the_old_name() -> None:
    assert tt.work_pool_status("ready", work_pools=[POOL], for_seconds=300) == {
        "type": "event",
        "match": {"prefect.resource.id": [f"prefect.work-pool.{POOL}"]},
        "match_related": {},
        "after": ["prefect.work-pool.ready"],
        "expect": [
            "prefect.work-pool.not-ready",
            "prefect.work-pool.not_ready",
            "prefect.work-pool.paused",
        ],
        "for_each": ["prefect.resource.id"],
        "posture": "Proactive",
        "threshold": 1,
        "within": 300,
    }


def test_work_queue_stays_paused_in_one_pool() -> None:
    assert tt.work_queue_status(
        "paused", work_queues=[QUEUE], work_pools=[POOL], for_seconds=120
    ) == {
        "type": "event",
        "match": {"prefect.resource.id": [f"prefect.work-queue.{QUEUE}"]},
        "match_related": {
            "prefect.resource.role": "work-pool",
            "prefect.resource.id": [f"prefect.work-pool.{POOL}"],
        },
        "after": ["prefect.work-queue.paused"],
        "expect": ["prefect.work-queue.ready", "prefect.work-queue.not-ready"],
        "for_each": ["prefect.resource.id"],
        "posture": "Proactive",
        "threshold": 1,
        "within": 120,
    }


EVERY_TEMPLATE = [
    tt.flow_run_state(),
    tt.flow_run_state(["Failed"], flows=[FLOW], deployments=[DEPLOYMENT]),
    tt.flow_run_state(["Pending", "Running"], tags=["a"], stays_for=30),
    tt.deployment_status("ready"),
    tt.deployment_status("not-ready", deployments=[DEPLOYMENT], for_seconds=10),
    *(tt.work_pool_status(s) for s in tt.WORK_POOL_STATUSES),
    *(tt.work_pool_status(s, work_pools=[POOL], for_seconds=45.5) for s in tt.WORK_POOL_STATUSES),
    *(tt.work_queue_status(s, work_pools=[POOL]) for s in tt.WORK_QUEUE_STATUSES),
    *(tt.work_queue_status(s, work_queues=[QUEUE], for_seconds=60) for s in tt.WORK_QUEUE_STATUSES),
]


@pytest.mark.parametrize("trigger", EVERY_TEMPLATE)
def test_the_engine_accepts_every_template_in_an_automation(trigger: dict[str, Any]) -> None:
    document = tt.automation("from a template", trigger, [{"type": "do-nothing"}])
    parsed = prefect_json.parse_automation(document)
    dumped = prefect_json.dump_trigger(parsed.trigger)
    for key in ("expect", "after", "for_each"):
        assert sorted(dumped[key]) == sorted(trigger[key])
    for key in ("posture", "threshold", "within"):
        assert dumped[key] == trigger[key], key
    for key in ("match", "match_related"):  # the engine prints a one-value list as a string
        assert as_lists(dumped[key]) == as_lists(trigger[key]), key


def as_lists(spec: Any) -> Any:
    if isinstance(spec, list):
        return [as_lists(s) for s in spec]
    return {k: [v] if isinstance(v, str) else v for k, v in spec.items()}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: tt.flow_run_state(flows=[FLOW], tags=["x"]), "flows or tags"),
        (lambda: tt.flow_run_state(["Running"], stays_for=5), "at least 10 seconds"),
        (lambda: tt.work_pool_status("sleeping"), "unknown status 'sleeping'"),
        (lambda: tt.deployment_status("paused"), "READY, NOT_READY"),
    ],
)
def test_choices_prefect_would_refuse_are_refused(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_the_command_prints_a_trigger_the_automation_create_command_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = cli.main(
        ["trigger", "flow-run-state", "--state", "Failed", "--state", "Crashed", "--tag", "prod"]
    )
    assert status == 0
    assert json.loads(capsys.readouterr().out) == tt.flow_run_state(
        ["Failed", "Crashed"], tags=["prod"]
    )


def test_the_command_prints_a_whole_automation_with_its_actions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = cli.main(
        [
            "trigger",
            "work-queue-status",
            "--status",
            "NOT_READY",
            "--work-queue",
            QUEUE,
            "--for",
            "60",
            "--automation",
            "queue stuck",
            "--action",
            '{"type": "do-nothing"}',
        ]
    )
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "queue stuck"
    assert printed["actions"] == [{"type": "do-nothing"}]
    assert printed["trigger"] == tt.work_queue_status(
        "not_ready", work_queues=[QUEUE], for_seconds=60
    )
    prefect_json.parse_automation(printed)


@pytest.mark.parametrize(
    "extra",
    [
        ["--automation", "no actions"],
        ["--action", '{"type": "do-nothing"}'],
        ["--automation", "x", "--action", "[1]"],
    ],
)
def test_an_incomplete_automation_is_an_error_on_stderr(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["trigger", "deployment-status", "--status", "ready", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "automations trigger deployment-status:" in captured.err
