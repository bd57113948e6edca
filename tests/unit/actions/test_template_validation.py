"""Templates are validated on write: syntax, loop counts and depth, named by field and line."""

from __future__ import annotations

from typing import Any

import pytest

from automations.actions import templates
from tests.unit.actions.template_builders import (
    automation_with,
    invalid,
    render,
)


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
