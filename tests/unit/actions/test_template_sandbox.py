"""The template sandbox: no mutation, capped ranges and outputs, no unsafe attributes or other templates."""

from __future__ import annotations

from typing import Any

import pytest

from automations.actions import templates
from tests.unit.actions.template_builders import (
    automation_with,
    invalid,
    render,
)


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
