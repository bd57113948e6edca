"""Templates of text and ``{{ path }}`` holes skip Jinja's runtime, and render exactly as it does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automations.actions.templates import _substitution
from automations.actions.templates import webhooks as templates
from automations.webhooks import requests

HEADERS = requests.Headers(
    [("Content-Type", "application/json"), ("X-GitHub-Event", "push"), ("User-Agent", "ua/1")]
)
BODY: dict[str, Any] = {
    "text": 'héllo "quoted" \\ back',
    "n": 12,
    "x": 1.5,
    "big": 1e15,
    "yes": True,
    "none": None,
    "obj": {"a": {"b": [1, "two", {"c": 3}]}},
    "list": ["first", 2, None],
    "items": "a key named like a dict method",
    "Mixed": "case",
}
CONTEXT: dict[str, Any] = {
    "method": "POST",
    "headers": HEADERS,
    "body": BODY,
    "query": {"q": "1"},
    "path": "/github",
    "raw_body": json.dumps(BODY),
}

SUBSTITUTIONS = [
    '{"event": "{{ headers[\'x-github-event\'] }}", "n": {{ body.n }}}',
    "{{ body.text }}|{{ body.x }}|{{ body.big }}|{{ body.yes }}|{{ body.none }}",
    "{{ body.obj }}|{{ body.list }}|{{ body.obj.a.b[1] }}|{{ body.list[-1] }}|{{ body['Mixed'] }}",
    "{{ body.obj|tojson }} {{ body.text|tojson }} {{ body.none|tojson }} {{ body.x|tojson }}",
    "{{ headers.get('USER-AGENT') }} {{ headers.get('nope', 'dflt') }} {{ headers['User-Agent'] }}",
    "{{ headers['X-GITHUB-EVENT'] }} {{ body.get('n') }} {{ body.get('nope') }} {{ body|tojson }}",
    "{{ method }} {{ path }} {{ query.q }} {{ raw_body }}",
    "{{- body.n -}}  \n{# a comment #}{% raw %}{{ not a hole }}{% endraw %}\n",
    "no hole {{ body.n }} trailing newline\n",
]
MISSES = [
    "[{{ body.nope }}]",  # missing: "" for Prefect, an error in strict mode
    "[{{ body.obj.nope.deeper }}]",
    "[{{ body.list[7] }}]",
    "[{{ body.text.nope }}]",  # a key of a string
    "[{{ nope }}]",
    "[{{ body.obj.a.b[2].c }}][{{ body.n.nope|tojson }}]",
    "[{{ headers.x_github_event }}]",  # not the header with dashes
]
NOT_SUBSTITUTIONS = [
    "{{ body.items }}",  # a dict method's name: Jinja's attribute lookup decides
    "{{ body['keys'] }}",
    "{% if body.n %}{{ body.n }}{% endif %}",
    "{{ body.n|string }}",
    "{{ body.n + 1 }}",
    "{{ body.text ~ '!' }}",
    "{{ headers.get(body.text) }}",
    "{{ headers.get('a', 'b', 'c') }}",
    "{{ headers.get(['unhashable']) }}",
    "{{ body.get(key='n') }}",
    "{{ range(3)|list }}",
    "{{ 'constant' }}",
    "{{ body[1:2] }}",
]


def jinja_render(source: str, context: dict[str, Any], *, strict: bool) -> str:
    """What Jinja renders, or its error's message (``render`` without the substitutions)."""
    original = templates._substitution_of
    templates._substitution_of = lambda _source: None  # type: ignore[assignment]
    try:
        return templates.render(source, context, strict=strict)
    except templates.WebhookTemplateError as exc:
        return f"error: {exc.message}"
    finally:
        templates._substitution_of = original  # type: ignore[assignment]


def rendered(source: str, context: dict[str, Any], *, strict: bool) -> str:
    try:
        return templates.render(source, context, strict=strict)
    except templates.WebhookTemplateError as exc:
        return f"error: {exc.message}"


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("source", SUBSTITUTIONS)
def test_text_and_holes_render_without_jinja_and_as_jinja_does(source: str, strict: bool) -> None:
    substitution = templates._substitution_of(source)
    assert substitution is not None
    assert substitution.render(CONTEXT) is not None  # rendered here, not handed back to Jinja
    assert rendered(source, CONTEXT, strict=strict) == jinja_render(source, CONTEXT, strict=strict)


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("source", MISSES)
def test_a_missing_value_is_left_to_jinja_empty_or_an_error(source: str, strict: bool) -> None:
    substitution = templates._substitution_of(source)
    assert substitution is not None and substitution.render(CONTEXT) is None
    assert rendered(source, CONTEXT, strict=strict) == jinja_render(source, CONTEXT, strict=strict)


@pytest.mark.parametrize("source", NOT_SUBSTITUTIONS)
def test_anything_more_than_text_and_holes_is_rendered_by_jinja(source: str) -> None:
    assert templates._substitution_of(source) is None
    for strict in (False, True):
        assert rendered(source, CONTEXT, strict=strict) == jinja_render(
            source, CONTEXT, strict=strict
        )


def test_a_body_that_is_not_an_object_is_left_to_jinja() -> None:
    for body in ("plain text", ["a", "b"], "", 7):
        context = {**CONTEXT, "body": body}
        for source in ("[{{ body.a }}]", "[{{ body[0] }}]", "[{{ body.get('a') }}]"):
            assert rendered(source, context, strict=False) == jinja_render(
                source, context, strict=False
            )


def test_an_output_over_the_limit_is_left_to_jinja_and_its_budget() -> None:
    huge = {**CONTEXT, "body": {"s": "x" * (_substitution.MAX_CHARACTERS + 1)}}
    substitution = templates._substitution_of("{{ body.s }}")
    assert substitution is not None and substitution.render(huge) is None
    assert rendered("{{ body.s }}", huge, strict=False) == huge["body"]["s"]


class _Watched(dict[str, Any]):
    """A template context that notes which names are read."""

    read: list[str]

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        return super().__getitem__(key)


def test_a_render_stops_at_the_hole_that_takes_the_output_over_the_limit() -> None:
    half = "x" * (_substitution.MAX_CHARACTERS // 2 + 1)
    context = _Watched({"body": {"s": half}, "later": "never read"})
    context.read = []
    substitution = templates._substitution_of("{{ body.s }}{{ body.s }}{{ later }}" * 1000)
    assert substitution is not None
    assert substitution.render(context) is None
    assert context.read == ["body", "body"]


def test_a_budget_of_fewer_characters_than_a_substitution_may_build_is_jinjas_to_spend() -> None:
    context = {**CONTEXT, "headers": requests.Headers([("a", "0123456789")])}
    source = "{{ headers.get('a') }}"
    assert templates.render(source, context) == "0123456789"
    with pytest.raises(templates.WebhookTemplateError, match="more than 5 characters"):
        templates.render(source, context, limits=templates.ShortBudget(1.0, 5))


_KEYS = st.sampled_from(["a", "b", "n", "items", "get", "keys", "A", "ü"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_STEPS = st.lists(
    st.one_of(
        _KEYS.map(lambda key: f".{key}" if key.isascii() else f"['{key}']"),
        _KEYS.map(lambda key: f"['{key}']"),
        st.integers(-3, 3).map(lambda i: f"[{i}]"),
    ),
    max_size=3,
)
_ENDINGS = st.sampled_from(["", "|tojson", ".get('a')", ".get('n', 'd')"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(_KEYS, _VALUES, max_size=5), steps=_STEPS, ending=_ENDINGS)
def test_any_path_into_any_body_renders_as_jinja_does(
    body: dict[str, Any], steps: list[str], ending: str
) -> None:
    source = "<{{ body" + "".join(steps) + ending + " }}>"
    context = {**CONTEXT, "body": body}
    for strict in (False, True):
        assert rendered(source, context, strict=strict) == jinja_render(
            source, context, strict=strict
        )
