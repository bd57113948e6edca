"""Templates see a metric firing's value and state, and link to the Prefect UI with Prefect's
``ui_url`` and ``ui_resource_events_url`` filters."""

from __future__ import annotations

from typing import Any

import pytest

from automations.actions import template_context, templates
from automations.domain import events, firings

RUN_ID = "0b6f3c0e-1b2a-4c3d-8e9f-0123456789ab"
POOL_ID = "9d0c7a51-3e2f-4a1b-8c7d-6e5f4a3b2c1d"
AUTOMATION = {"id": "a-9", "name": "Late runs", "trigger": {"type": "metric", "id": "t-9"}}
RUN_EVENT = events.Event(
    id="ev-1",
    event="prefect.flow-run.Running",
    occurred=1714564800.0,  # 2024-05-01
    resource={"prefect.resource.id": f"prefect.flow-run.{RUN_ID}"},
    related=(
        {
            "prefect.resource.id": f"prefect.work-pool.{POOL_ID}",
            "prefect.resource.role": "work-pool",
        },
        {"prefect.resource.id": "prefect.tag.prod", "prefect.resource.role": "tag"},
    ),
)


def metric_firing(state: firings.FiringState = firings.FiringState.RESOLVED) -> firings.Firing:
    return firings.Firing(
        id="f-9",
        automation_id="a-9",
        trigger_id="t-9",
        trigger_type="metric",
        posture="Metric",
        triggered=1714565000.0,
        triggering_event=RUN_EVENT,
        state=state,
        triggering_value=412.5,
    )


def context(ui_url: str | None = "http://prefect.example:4200", **objects: Any) -> dict[str, Any]:
    built = template_context.build_context(
        automation=AUTOMATION, firing=metric_firing(), event=RUN_EVENT, ui_url=ui_url
    )
    built.update(objects)
    return built


def render(source: str, variables: dict[str, Any]) -> str:
    return templates.render_template(source, variables, field="body")


def test_a_metric_firing_renders_its_value_and_state() -> None:
    variables = context()
    assert render(
        "{{ firing.triggering_value }} {{ firing.trigger_states | join }}", variables
    ) == ("412.5 Resolved")
    assert '"triggering_value": 412.5' in render("{{ firing | tojson }}", variables)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "{{ flow_run | ui_url }}",
            f"http://prefect.example:4200/runs/flow-run/{RUN_ID}",
        ),
        (
            "{{ automation | ui_url }}",
            "http://prefect.example:4200/automations/automation/a-9",
        ),
        (
            "{{ event | ui_url }}",
            "http://prefect.example:4200/events/event/2024-05-01/ev-1",
        ),
        (
            "{{ event.resource | ui_url }}",
            f"http://prefect.example:4200/runs/flow-run/{RUN_ID}",
        ),
        (
            "{{ event.related[0] | ui_url }}",
            f"http://prefect.example:4200/work-pools/work-pool/{POOL_ID}",
        ),
        ("{{ work_pool | ui_url }}", "http://prefect.example:4200/work-pools/work-pool/default"),
        ("{{ event.related[1] | ui_url }}", "None"),  # a tag has no page
        (
            "{{ automation | ui_resource_events_url }}",
            "http://prefect.example:4200/events?resource=prefect.automation.a-9",
        ),
        (
            "{{ flow_run | ui_resource_events_url }}",
            f"http://prefect.example:4200/events?resource=prefect.flow-run.{RUN_ID}",
        ),
        (
            "{{ event.related[1] | ui_resource_events_url }}",
            "http://prefect.example:4200/events?resource=prefect.tag.prod",
        ),
        ("{{ event | ui_resource_events_url }}", "None"),
    ],
)
def test_ui_links_as_prefect_makes_them(source: str, expected: str) -> None:
    flow_run = template_context.PrefectObject("flow-run", {"id": RUN_ID, "name": "brave-otter"})
    pool = template_context.PrefectObject("work-pool", {"id": POOL_ID, "name": "default"})
    assert render(source, context(flow_run=flow_run, work_pool=pool)) == expected


def test_without_a_ui_url_the_links_are_none_as_in_prefect() -> None:
    variables = context(ui_url=None)
    assert render("{{ automation | ui_url }}|{{ event | ui_url or '' }}|", variables) == "None||"
    assert render("{{ automation | ui_resource_events_url }}", variables) == "None"


def test_a_base_url_with_a_path_keeps_it() -> None:
    variables = context(ui_url="https://example.com/prefect")
    assert render("{{ automation | ui_url }}", variables) == (
        "https://example.com/prefect/automations/automation/a-9"
    )
