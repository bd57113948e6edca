"""Action templates render Prefect's context in a sandbox, and bad templates are refused on write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from automations.actions import template_context, templates
from automations.domain import actions, events, prefect_json
from tests.unit.actions.template_builders import (
    AUTOMATION,
    FLOW_RUN_ID,
    MAY_FIRST_NOON,
    automation_with,
    firing_of,
    render,
    spider_walked,
)

# --------------------------------------------------------------------------------- the context


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ automation.name }}", "Arachnophobia"),
        ("{{ automation.id }}/{{ automation.description }}", "a-1/screams"),
        ("{{ automation.tags | join(',') }}", "spiders,fear"),
        ("{{ event.id }} {{ event.event }}", "e-walked animal.walked"),
        ("{{ event.occurred }}", "2024-05-01T12:00:00+00:00"),
        ("{{ event.occurred.year }}-{{ event.occurred.strftime('%H') }}", "2024-12"),
        ("{{ event.follows }}", "e-leader"),
        ("{{ event.payload.count }}|{{ event.payload['count'] }}", "8|8"),
        ("{{ event.payload.nested.deep.value }}", "yes"),
        ("{{ event.payload.legs[1] }}", "l2"),
        ("{{ event.resource.id }}", f"prefect.flow-run.{FLOW_RUN_ID}"),
        ("{{ event.resource.name }}", "daddy-long-legs"),
        ("{{ event.resource['kingdom'] }}", "animalia"),
        ("{{ event.resource.labels.kingdom }}", "animalia"),
        ("{{ event.resource.labels.prefect.resource.name }}", "daddy-long-legs"),
        ("{{ event.resource.labels['prefect.resource.name'] }}", "daddy-long-legs"),
        (
            "{% for label, value in event.resource.labels %}{{ label }}={{ value }};{% endfor %}",
            f"prefect.resource.id=prefect.flow-run.{FLOW_RUN_ID};"
            "prefect.resource.name=daddy-long-legs;kingdom=animalia;",
        ),
        ("{{ event.related | map(attribute='role') | join(',') }}", "flow,tag,tag,flow-run"),
        ("{{ event.related[0].name }}", "spiders"),
        ("{{ event.resource_in_role['flow-run'].name }}", "arachnophobia"),
        ("{{ event.resource_in_role['tag'].id }}", "prefect.tag.eight-legs"),
        (
            "{{ event.resources_in_role['tag'] | map(attribute='id') | join(',') }}",
            "prefect.tag.eight-legs,prefect.tag.hairy",
        ),
        ("{{ event.find_resource_label('related:flow:prefect.resource.name') }}", "spiders"),
        ("{{ labels.prefect.resource.id }}", f"prefect.flow-run.{FLOW_RUN_ID}"),
        ("{{ labels['prefect.resource.id'] }}", f"prefect.flow-run.{FLOW_RUN_ID}"),
        ("{{ firing.id }} {{ firing.trigger.id }} {{ firing.trigger_id }}", "f-root t-root t-root"),
        ("{{ firing.trigger.type }} {{ firing.trigger.require }}", "compound all"),
        ("{{ firing.triggered }}", "2024-05-01T12:00:03+00:00"),
        (
            "{{ firing.triggering_labels['prefect.resource.id'] }}",
            f"prefect.flow-run.{FLOW_RUN_ID}",
        ),
        ("{{ firing.triggering_event.id }}", "e-walked"),
        ("{{ firing.trigger_states | join }}", "Triggered"),
        ("{{ firings | map(attribute='id') | join(',') }}", "f-root,f-walk,f-quiet,f-third"),
        ("{{ firings[2].trigger.posture }}", "Proactive"),
        ("{{ firing.triggering_firings | length }}", "3"),
        ("{{ events | map(attribute='id') | join(',') }}", "e-walked,e-walked,e-later"),
    ],
)
def test_templates_see_prefects_context(
    source: str, expected: str, context: dict[str, Any]
) -> None:
    assert render(source, context) == expected


def test_without_an_event_event_is_none_and_its_paths_render_empty() -> None:
    firing = firing_of(None)
    context = template_context.build_context(automation=AUTOMATION, firing=firing, event=None)
    assert render("{{ event is none }}|{{ event.id }}|{{ event.resource.name }}|", context) == (
        "True|||"
    )
    assert render("{{ events | map(attribute='id') | join(',') }}", context) == "e-later"


def test_actions_on_trigger_see_the_automation_triggered_event() -> None:
    triggering = spider_walked()
    triggered = events.Event(
        id="e-triggered",
        event="prefect.automation.triggered",
        occurred=MAY_FIRST_NOON + 3,
        resource={"prefect.resource.id": "prefect.automation.a-1", "prefect.resource.name": "A"},
        related=(
            {
                "prefect.resource.id": "prefect.event.e-walked",
                "prefect.resource.role": "triggering-event",
            },
        ),
        payload={"triggering_labels": {}, "triggering_event": prefect_json.dump_event(triggering)},
    )
    context = template_context.build_context(
        automation=AUTOMATION, firing=firing_of(triggering), event=triggered
    )
    assert render("{{ event.event }} {{ event.resource.name }}", context) == (
        "prefect.automation.triggered A"
    )
    assert render("{{ event.payload.triggering_event.resource['kingdom'] }}", context) == "animalia"
    assert render("{{ firing.triggering_event.event }}", context) == "animal.walked"


def test_the_automation_dataclass_is_printed_in_prefects_shape() -> None:
    automation = automation_with()
    event = spider_walked()
    context = template_context.build_context(
        automation=automation, firing=firing_of(event), event=event
    )
    assert render(
        "{{ automation.name }} {{ automation.id }} {{ automation.enabled }}", context
    ) == ("a a-1 True")
    assert render("{{ automation.trigger.expect | join }}", context) == "animal.walked"


def test_undefined_names_render_empty(context: dict[str, Any]) -> None:
    assert render(
        "[{{ nothing }}][{{ nothing.at.all }}][{{ event.payload.missing.key }}]", context
    ) == ("[][][]")


# ---------------------------------------------------------------------------------- filters


def test_tojson_prints_events_resources_and_times_in_prefects_shapes(
    context: dict[str, Any],
) -> None:
    assert json.loads(render("{{ event | tojson }}", context)) == prefect_json.dump_event(
        spider_walked()
    )
    assert render("{{ event.occurred | tojson }}", context) == '"2024-05-01T12:00:00Z"'
    assert json.loads(render("{{ event.resource | tojson }}", context))["kingdom"] == "animalia"
    assert json.loads(render("{{ event.related | tojson }}", context))[0][
        "prefect.resource.role"
    ] == ("flow")
    assert json.loads(render("{{ labels | tojson }}", context)) == {
        "prefect.resource.id": f"prefect.flow-run.{FLOW_RUN_ID}"
    }
    assert render("{{ event.resource.labels.kingdom | tojson }}", context) == '"animalia"'
    assert json.loads(render("{{ firing | tojson }}", context))["triggering_firings"][1] == {
        "id": "f-quiet",
        "trigger": {"type": "event", "id": "t-quiet", "posture": "Proactive"},
        "trigger_states": ["Triggered"],
        "triggered": "2024-05-01T12:00:01Z",
        "triggering_labels": {},
        "triggering_firings": [],
        "triggering_event": None,
        "triggering_value": None,
    }
    assert render("{{ automation | tojson(indent=2) }}", context).startswith('{\n  "id": "a-1"')
    assert render("{{ nothing | tojson }}", context) == "null"


def test_flow_run_id_extracts_the_id_from_a_link(context: dict[str, Any]) -> None:
    link = f"https://ui.example/runs/flow-run/{FLOW_RUN_ID}?tab=logs"
    assert render("{{ link | flow_run_id }}", {**context, "link": link}) == FLOW_RUN_ID
    assert render("{{ event.resource.id | flow_run_id }}", context) == FLOW_RUN_ID
    assert render("[{{ 'no id here' | flow_run_id }}]", context) == "[]"


# -------------------------------------------------------------------------------- rendering


def test_every_string_of_a_third_party_actions_parameters_is_rendered(
    context: dict[str, Any],
) -> None:
    action = actions.Action(
        "acme.page-oncall",
        {
            "team": "{{ automation.name }}",
            "plain": "no template here",
            "count": 3,
            "enabled": True,
            "nothing": None,
            "headers": {"X-Run": "{{ event.resource.name }}", "X-Static": "s"},
            "steps": [
                "{# a comment #}first",
                {"say": "{{ event.payload.count }} legs"},
                ["{{ event.id }}", 7],
            ],
        },
    )
    assert templates.render_parameters(action, context) == {
        "team": "Arachnophobia",
        "plain": "no template here",
        "count": 3,
        "enabled": True,
        "nothing": None,
        "headers": {"X-Run": "daddy-long-legs", "X-Static": "s"},
        "steps": ["first", {"say": "8 legs"}, ["e-walked", 7]],
    }
    # outside run-deployment a single expression still renders as a string
    counted = actions.Action("call-webhook", {"payload": "{{ event.payload.count }}"})
    assert templates.render_parameters(counted, context) == {"payload": "8"}


def test_run_deployment_parameters_keep_the_json_type_of_a_single_expression(
    context: dict[str, Any],
) -> None:
    action = actions.Action(
        "run-deployment",
        {
            "deployment_id": "d-1",
            "job_variables": {"image": "spiders:{{ event.payload.count }}"},
            "parameters": {
                "count": "{{ event.payload.count }}",
                "legs": "{{ event.payload.legs }}",
                "nested": "{{ event.payload.nested }}",
                "name": "{{ event.resource.name }}",
                "label": "{{ event.resource.labels.kingdom }}",
                "sentence": "{{ event.payload.count }} legs",
                "padded": " {{ event.payload.count }}",
                "missing": "{{ event.payload.missing }}",
                "when": "{{ event.occurred }}",
                "in_list": ["{{ event.payload.count }}", {"deep": "{{ event.payload.count }}"}],
                "literal": 5,
                "explicit": {"__prefect_kind": "jinja", "template": "{{ event.payload.count }}"},
                "as_json": {"__prefect_kind": "json", "value": '{"a": [1, 2]}'},
                "json_value": {"__prefect_kind": "json", "value": [1, 2]},
                "json_of_jinja": {
                    "__prefect_kind": "json",
                    "value": {
                        "__prefect_kind": "jinja",
                        "template": "{{ event.payload.nested | tojson }}",
                    },
                },
                "passthrough": {"__prefect_kind": "none", "value": "{{ event.payload.count }}"},
                "removed": {"__prefect_kind": "json"},
            },
        },
    )
    rendered = templates.render_parameters(action, context)
    assert rendered["deployment_id"] == "d-1"
    assert rendered["job_variables"] == {"image": "spiders:8"}
    assert rendered["parameters"] == {
        "count": 8,
        "legs": ["l1", "l2"],
        "nested": {"deep": {"value": "yes"}},
        "name": "daddy-long-legs",
        "label": "animalia",
        "sentence": "8 legs",
        "padded": " 8",
        "missing": "",
        "when": "2024-05-01T12:00:00Z",
        "in_list": [8, {"deep": 8}],
        "literal": 5,
        "explicit": "8",
        "as_json": {"a": [1, 2]},
        "json_value": [1, 2],
        "json_of_jinja": {"deep": {"value": "yes"}},
        "passthrough": 8,
    }


def test_run_deployment_workspace_variables_fail_at_render(context: dict[str, Any]) -> None:
    action = actions.Action(
        "run-deployment",
        {"parameters": {"x": {"__prefect_kind": "workspace_variable", "variable_name": "v"}}},
    )
    templates.validate_action_templates(action)
    with pytest.raises(templates.TemplateRenderError) as info:
        templates.render_parameters(action, context)
    assert info.value.field == "parameters.x"
    assert "workspace variables are not supported" in info.value.message


def test_a_render_failure_names_the_field_the_source_and_prefects_reason(
    context: dict[str, Any],
) -> None:
    source = "{% set x = [] %}{{ x.append(1) }}"
    action = actions.Action("acme.thing", {"headers": [{"ok": "{{ event.id }}"}, {"bad": source}]})
    with pytest.raises(templates.TemplateRenderError) as info:
        templates.render_parameters(action, context)
    assert info.value.field == "headers[1].bad"
    assert info.value.source == source
    assert info.value.message.startswith("Template rendering failed: SecurityError(")
    assert str(info.value) == info.value.message


def test_field_paths_quote_keys_that_are_not_names(context: dict[str, Any]) -> None:
    action = actions.Action("acme.thing", {"labels": {"prefect.resource.id": "{{ x.pop() }}"}})
    with pytest.raises(templates.TemplateRenderError) as info:
        templates.render_parameters(action, context)
    assert info.value.field == "labels['prefect.resource.id']"
