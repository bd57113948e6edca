"""Action templates render Prefect's context in a sandbox, and bad templates are refused on write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from automations.actions import template_context, templates
from automations.domain import actions, automations, errors, events, firings, prefect_json

FLOW_RUN_ID = "0b6f3c0e-1b2a-4c3d-8e9f-0123456789ab"
MAY_FIRST_NOON = 1714564800.0  # 2024-05-01T12:00:00Z


def spider_walked(event_id: str = "e-walked", **payload: Any) -> events.Event:
    return events.Event(
        id=event_id,
        event="animal.walked",
        occurred=MAY_FIRST_NOON,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{FLOW_RUN_ID}",
            "prefect.resource.name": "daddy-long-legs",
            "kingdom": "animalia",
        },
        related=(
            {
                "prefect.resource.id": "prefect.flow.spiders",
                "prefect.resource.role": "flow",
                "prefect.resource.name": "spiders",
            },
            {"prefect.resource.id": "prefect.tag.eight-legs", "prefect.resource.role": "tag"},
            {"prefect.resource.id": "prefect.tag.hairy", "prefect.resource.role": "tag"},
            {
                "prefect.resource.id": "prefect.flow-run.other",
                "prefect.resource.role": "flow-run",
                "prefect.resource.name": "arachnophobia",
            },
        ),
        payload={"count": 8, "legs": ["l1", "l2"], "nested": {"deep": {"value": "yes"}}, **payload},
        follows="e-leader",
    )


AUTOMATION = {
    "id": "a-1",
    "name": "Arachnophobia",
    "description": "screams",
    "tags": ["spiders", "fear"],
    "trigger": {
        "type": "compound",
        "id": "t-root",
        "require": "all",
        "triggers": [
            {"type": "event", "id": "t-walk", "posture": "Reactive"},
            {"type": "event", "id": "t-quiet", "posture": "Proactive"},
        ],
    },
}


def firing_of(event: events.Event | None = None) -> firings.Firing:
    walk = firings.Firing(
        id="f-walk",
        automation_id="a-1",
        trigger_id="t-walk",
        trigger_type="event",
        posture="Reactive",
        triggered=MAY_FIRST_NOON,
        triggering_event=event,
    )
    quiet = firings.Firing(
        id="f-quiet",
        automation_id="a-1",
        trigger_id="t-quiet",
        trigger_type="event",
        posture="Proactive",
        triggered=MAY_FIRST_NOON + 1,
        triggering_event=None,
    )
    later = spider_walked("e-later")
    third = firings.Firing(
        id="f-third",
        automation_id="a-1",
        trigger_id="t-walk",
        trigger_type="event",
        posture="Reactive",
        triggered=MAY_FIRST_NOON + 2,
        triggering_event=later,
    )
    return firings.Firing(
        id="f-root",
        automation_id="a-1",
        trigger_id="t-root",
        trigger_type="compound",
        posture=None,
        triggered=MAY_FIRST_NOON + 3,
        triggering_event=event,
        triggering_labels={"prefect.resource.id": f"prefect.flow-run.{FLOW_RUN_ID}"},
        child_firings=(walk, quiet, third),
    )


@pytest.fixture
def context() -> dict[str, Any]:
    event = spider_walked()
    return template_context.build_context(
        automation=AUTOMATION, firing=firing_of(event), event=event
    )


def render(source: str, context: dict[str, Any]) -> str:
    return templates.render_template(source, context, field="body")


def automation_with(**lists: list[dict[str, Any]]) -> automations.Automation:
    data: dict[str, Any] = {
        "name": "a",
        "trigger": {"type": "event", "expect": ["animal.walked"]},
        "actions": [{"type": "do-nothing"}],
        **lists,
    }
    return prefect_json.parse_automation(data, automation_id="a-1")


def invalid(automation: automations.Automation) -> errors.InvalidArgument:
    with pytest.raises(errors.InvalidArgument) as info:
        templates.validate_automation_templates(automation)
    return info.value


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


# ------------------------------------------------------------------------------------ sandbox


@pytest.mark.parametrize(
    "source",
    [
        "{% set x = [] %}{{ x.append(1) }}",
        "{% set d = {} %}{{ d.update({'a': 1}) }}",
        "{{ event.payload.legs.append('l3') }}",
    ],
)
def test_mutation_is_refused(source: str, context: dict[str, Any]) -> None:
    with pytest.raises(templates.TemplateRenderError, match="SecurityError"):
        render(source, context)
    assert context["event"].payload["legs"] == ["l1", "l2"]


def test_range_is_capped_at_100(context: dict[str, Any]) -> None:
    assert render("{{ range(100) | list | length }}", context) == "100"
    with pytest.raises(templates.TemplateRenderError, match="OverflowError"):
        render("{{ range(1000) | list | length }}", context)
    with pytest.raises(templates.TemplateRenderError, match="OverflowError"):
        render("{% for i in range(101) %}{% endfor %}", context)


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.__class__ }}",
        "{{ event._event }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ event.resource.labels.__dict__ }}",
    ],
)
def test_unsafe_attributes_render_empty(source: str, context: dict[str, Any]) -> None:
    assert render(source, context) == ""


def test_calling_through_an_unsafe_attribute_fails_safely(context: dict[str, Any]) -> None:
    with pytest.raises(templates.TemplateRenderError, match="SecurityError"):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", context)


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100) %}{% for j in range(100) %}{{ 'x' * 200 }}{% endfor %}{% endfor %}",
        "{{ 'x' * 10**9 }}",
        "{{ 2 ** (10**9) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ ''.join(['x'] * 100000) | replace('x', 'y' * 1000) }}",
        "{{ 'x' | center(10**9) }}",
        "{{ '%999999999s' % 'x' }}",
        "{{ '{:>999999999}'.format('x') }}",
        "{{ range(100) | join('x' * 100000) }}",
    ],
)
def test_huge_outputs_are_refused(source: str, context: dict[str, Any]) -> None:
    with pytest.raises(templates.TemplateRenderError, match="OverflowError"):
        render(source, context)


def test_outputs_under_the_cap_render(context: dict[str, Any]) -> None:
    assert len(render("{{ 'x' * 1000000 }}", context)) == 1_000_000
    assert render("{{ 7 % 3 }} {{ 'a%sc' % 'b' }} {{ '{}!'.format('hi') }}", context) == "1 abc hi!"


@pytest.mark.parametrize(
    "source", ["{% include 'x' %}", "{% import 'x' as x %}", "{% extends 'x' %}"]
)
def test_other_templates_cannot_be_reached(source: str, context: dict[str, Any]) -> None:
    action = automation_with(actions=[{"type": "call-webhook", "payload": source}])
    error = invalid(action)
    assert error.field == "actions[0].payload"
    assert "cannot extend, include or import" in error.description
    with pytest.raises(templates.TemplateRenderError, match="cannot extend, include or import"):
        render(source, context)


# -------------------------------------------------------------------------------- validation


def test_valid_templates_pass() -> None:
    ten_loops = "{% for i in range(2) %}{% endfor %}" * 10
    two_deep = "{% for i in range(2) %}{% for j in range(2) %}{{ i }}{% endfor %}{% endfor %}"
    templates.validate_automation_templates(
        automation_with(
            actions=[{"type": "send-notification", "subject": ten_loops, "body": two_deep}]
        )
    )


def test_a_syntax_error_names_the_field_and_the_line() -> None:
    error = invalid(
        automation_with(
            actions=[
                {"type": "do-nothing"},
                {"type": "call-webhook", "payload": '{\n  "a": 1,\n  "b": {{ x } }}\n}'},
            ]
        )
    )
    assert error.field == "actions[1].payload"
    assert error.description == "'payload' is not a valid template: line 3: unexpected '}'"
    assert error.reason == "INVALID_TEMPLATE"


def test_eleven_loops_are_refused_with_the_line_of_the_eleventh() -> None:
    eleven = "\n".join(["{% for i in range(2) %}{% endfor %}"] * 11)
    error = invalid(
        automation_with(
            actions_on_trigger=[
                {"type": "do-nothing"},
                {"type": "send-notification", "body": eleven},
            ]
        )
    )
    assert error.field == "actions_on_trigger[1].body"
    assert error.description.startswith("'body' is not a valid template: line 11: contains 11")


def test_loops_three_deep_are_refused_with_the_line_of_the_third() -> None:
    three_deep = (
        "{% for a in range(2) %}\n"
        "  {% for b in range(2) %}\n"
        "    {% if b %}{% for c in range(2) %}{{ c }}{% endfor %}{% endif %}\n"
        "  {% endfor %}\n"
        "{% endfor %}"
    )
    error = invalid(automation_with(actions=[{"type": "send-notification", "body": three_deep}]))
    assert error.field == "actions[0].body"
    assert "line 3" in error.description and "3 deep" in error.description


def test_nested_parameter_templates_are_named_by_their_path() -> None:
    error = invalid(
        automation_with(
            actions=[
                {"type": "do-nothing"},
                {"type": "do-nothing"},
                {"type": "run-deployment", "parameters": {"ok": 1, "name": "{{ oops( }}"}},
            ]
        )
    )
    assert error.field == "actions[2].parameters.name"
    assert error.description.startswith("'parameters.name' is not a valid template: line 1:")
    error = invalid(
        automation_with(
            actions=[{"type": "acme.thing", "steps": [{"say": "ok"}, {"say": "{% if %}"}]}]
        )
    )
    assert error.field == "actions[0].steps[1].say"


def test_run_deployment_placeholders_are_checked() -> None:
    error = invalid(
        automation_with(
            actions=[
                {
                    "type": "run-deployment",
                    "parameters": {"x": {"__prefect_kind": "jinja", "template": "{{ }}"}},
                }
            ]
        )
    )
    assert error.field == "actions[0].parameters.x.template"
    error = invalid(
        automation_with(
            actions=[
                {
                    "type": "run-deployment",
                    "parameters": {"x": {"__prefect_kind": "json", "value": "{not json"}},
                }
            ]
        )
    )
    assert error.field == "actions[0].parameters.x.value"
    assert "not valid JSON" in error.description


def test_a_template_that_was_never_validated_fails_at_render(context: dict[str, Any]) -> None:
    with pytest.raises(templates.TemplateRenderError) as info:
        render("{{ x }", context)
    assert info.value.message.startswith("Template rendering failed: TemplateSyntaxError(")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{{ x }}", True), ("{% if x %}{% endif %}", True), ("{# note #}", True), ("{ x }", False)],
)
def test_what_counts_as_a_template(text: str, expected: bool) -> None:
    assert templates.is_template(text) is expected


def test_a_template_is_compiled_once(context: dict[str, Any]) -> None:
    source = "{{ event.id }} compiled once"
    before = templates._compiling.compile_template.cache_info()
    for _ in range(3):
        assert render(source, context) == "e-walked compiled once"
    after = templates._compiling.compile_template.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 2
