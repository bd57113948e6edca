"""A template can neither run long nor grow large: each render has a CPU and a memory budget."""

from __future__ import annotations

import time

import pytest

from automations.actions import templates
from automations.domain import actions, errors


def render(source: str, **context: object) -> str:
    return templates.render_template(source, dict(context), field="payload")


def failure(source: str, **context: object) -> str:
    with pytest.raises(templates.TemplateRenderError) as raised:
        render(source, **context)
    return raised.value.message


def test_nested_loops_over_long_strings_stop_at_the_cpu_budget() -> None:
    started = time.process_time()
    message = failure(
        "{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}done", s="x" * 30_000
    )
    assert "CPU time" in message
    assert time.process_time() - started < templates.MAX_RENDER_CPU_SECONDS * 3


@pytest.mark.parametrize("operator", ["~", "+"])
def test_doubling_a_string_in_a_namespace_is_refused(operator: str) -> None:
    source = (
        "{% set ns = namespace(s='x') %}{% for i in range(31) %}"
        f"{{% set ns.s = ns.s {operator} ns.s %}}{{% endfor %}}{{{{ ns.s|length }}}}"
    )
    assert "MAX_RENDERED_SIZE" in failure(source)


@pytest.mark.parametrize(
    "piece", ['("%(a)999999s" % {"a": 1})', '"{0:>999999}".format(1)'], ids=["percent", "brace"]
)
def test_many_values_just_under_the_size_cap_exhaust_the_character_budget(piece: str) -> None:
    source = "{{ (" + " ~ ".join([piece] * 200) + ")|length }}"
    assert f"more than {templates.MAX_RENDER_CHARACTERS} characters" in failure(source)


def test_values_built_in_a_loop_count_against_one_budget() -> None:
    source = '{% for i in range(100) %}{% set x = "%999999s" % i %}{% endfor %}done'
    assert "characters in all" in failure(source)


def test_an_ordinary_template_renders_as_before() -> None:
    source = (
        "{% for r in related %}{{ r ~ '/' + 'x' }}{% if not loop.last %},{% endif %}{% endfor %}"
    )
    assert render(source, related=["a", "b"]) == "a/x,b/x"


def test_the_budget_is_shared_by_every_template_of_one_action() -> None:
    heavy = "{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"
    action = actions.Action("call-webhook", {"a": heavy, "b": heavy})
    limits = templates.Budget(cpu_seconds=0.2)
    started = time.process_time()
    with pytest.raises(templates.TemplateRenderError) as raised:
        templates.render_parameters(action, {"s": "x" * 3000}, limits=limits)
    assert raised.value.field == "a" and "0.2 s of CPU time" in raised.value.message
    assert time.process_time() - started < 1.0


@pytest.mark.parametrize(
    "source",
    ["{{ " + "(" * 10_000 + "1" + ")" * 10_000 + " }}", "{{ 'x'" + "|lower" * 20_000 + " }}"],
    ids=["10,000 parentheses", "20,000 filters"],
)
def test_a_template_nested_too_deep_is_refused_when_it_is_written(source: str) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        templates.validate_template(source, field="payload")
    assert raised.value.reason == "INVALID_TEMPLATE"
    assert f"more than {templates.MAX_NESTING} deep" in raised.value.description
