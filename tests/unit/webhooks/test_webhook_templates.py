from __future__ import annotations

import json

import pytest

from automations.actions.templates import webhooks as templates
from automations.domain import errors
from automations.webhooks import requests


def test_missing_values_render_empty_unless_strict() -> None:
    context = {"body": {"a": {"b": 1}}}
    assert templates.render("[{{ body.x.y }}][{{ body.a.b }}]", context) == "[][1]"
    with pytest.raises(templates.WebhookTemplateError) as caught:
        templates.render("{{ body.x }}", context, strict=True)
    assert "'x'" in caught.value.message
    assert templates.render("{{ body.x|default('d') }}", context, strict=True) == "d"


def test_dict_methods_and_the_sandbox_still_apply_to_dot_access() -> None:
    context = {"body": {"items": "shadowed", "k": 1}, "headers": requests.Headers([("X-A", "1")])}
    assert (
        templates.render("{{ body['items'] }} {{ body.k }} {{ headers.get('x-a') }}", context)
        == "shadowed 1 1"
    )
    assert templates.render("{{ body.__class__ }}|{{ body.items.__self__ }}", context) == "|"
    with pytest.raises(templates.WebhookTemplateError):
        templates.render("{{ body.update({'a': 2}) }}", context)


def test_the_humanize_filters_render_and_refuse_huge_outputs() -> None:
    assert templates.render("{{ 1234567|humanize_intcomma }}", {}) == "1,234,567"
    assert templates.render("{{ 3|humanize_ordinal }}", {}) == "3rd"
    assert templates.render("{{ 1500000|humanize_naturalsize }}", {}) == "1.5 MB"
    with pytest.raises(templates.WebhookTemplateError):
        templates.render("{{ 1|humanize_scientific(precision=10000000) }}", {})
    with pytest.raises(templates.WebhookTemplateError):
        templates.render("{{ 1|humanize_intword(format='%.99999999f') }}", {})


def test_from_cloud_event_converts_structured_and_binary_requests() -> None:
    structured = {"specversion": "1.0", "type": "t", "source": "/s", "id": "1", "data": {"x": 1}}
    event = json.loads(
        templates.render(
            "{{ body|from_cloud_event(headers) }}", {"body": structured, "headers": {}}
        )
    )
    assert event["event"] == "t" and event["resource"] == {"prefect.resource.id": "/s"}
    assert event["payload"] == {
        "data": {"x": 1},
        "cloudevents": {"specversion": "1.0", "type": "t", "source": "/s", "id": "1"},
    }
    headers = requests.Headers(
        [("ce-specversion", "1.0"), ("ce-type", "t"), ("ce-source", "/s"), ("ce-subject", "sub")]
    )
    event = json.loads(
        templates.render(
            "{{ body|from_cloud_event(headers) }}", {"body": "raw", "headers": headers}
        )
    )
    assert event["resource"] == {"prefect.resource.id": "sub"} and event["payload"]["data"] == "raw"
    with pytest.raises(templates.WebhookTemplateError) as caught:
        templates.render("{{ body|from_cloud_event(headers) }}", {"body": {}, "headers": {}})
    assert "not a CloudEvent" in caught.value.message


def test_templates_are_checked_with_the_webhook_filters() -> None:
    templates.validate_template("{{ body|from_cloud_event(headers) }}")
    with pytest.raises(errors.InvalidArgument) as caught:
        templates.validate_template("{{ body|nope }}")
    assert caught.value.field == "template" and caught.value.reason == "INVALID_TEMPLATE"
    assert templates.render('{"static": true}', {}) == '{"static": true}'


def test_a_runaway_template_is_stopped_by_its_budget() -> None:
    source = (
        "{% for a in range(100) %}{% for b in range(100) %}{{ 'x' * 1000 }}{% endfor %}{% endfor %}"
    )
    with pytest.raises(templates.WebhookTemplateError):
        templates.render(source, {})


def _sandbox_render(source: str, context: dict[str, object], strict: bool = False) -> str:
    """The same template rendered by the action templates' sandbox, without the webhook's
    shortcuts (lookups on dicts and headers, ``tojson``), as the reference."""
    import jinja2

    from automations.actions.templates import _sandbox, cloudevents

    env = _sandbox._UserTemplateEnvironment()
    env.undefined = jinja2.StrictUndefined if strict else jinja2.ChainableUndefined
    env.filters["from_cloud_event"] = cloudevents.from_cloud_event
    with _sandbox.budget():
        return env.from_string(source).render(context)


SHORTCUT_TEMPLATES = [
    "{{ body.key }}|{{ body.n|tojson }}|{{ body.f|tojson }}|{{ body.t|tojson }}|{{ body.z|tojson }}",
    "{{ body.big|tojson }}|{{ body.neg|tojson }}|{{ body.nan|tojson }}|{{ body.inf|tojson }}",
    "{{ body.s|tojson }}|{{ body.u|tojson }}|{{ body.nested|tojson }}|{{ body.list|tojson }}",
    "{{ body.missing|tojson }}|{{ body|tojson(indent=2) }}",
    "{{ headers.get('user-agent', '?') }}|{{ headers.get('X-Missing', 'd') }}|"
    "{{ headers.get('nope') }}|{{ headers.get('CONTENT-TYPE') }}",
    "{{ body.get('key') }}|{{ body.get('none', 7) }}|{{ body.nested.get('a') }}",
    "{% for k, v in body.nested.items() %}{{ k }}={{ v }};{% endfor %}"
    "{{ body.nested.keys()|list }}{{ body.nested.values()|list }}{{ headers.keys()|list }}",
    "{{ body.items }}|{{ body.get }}|{{ headers.items|default('x') }}",
]


@pytest.mark.parametrize("source", SHORTCUT_TEMPLATES)
def test_the_webhook_shortcuts_render_what_the_sandbox_renders(source: str) -> None:
    body = {
        "key": "k1",
        "n": 12,
        "f": 1.5,
        "t": True,
        "z": None,
        "big": 10**30,
        "neg": -0.0,
        "nan": float("nan"),
        "inf": float("-inf"),
        "s": 'quote " and \\ and \n',
        "u": "é ✓ 𝄞",
        "nested": {"a": [1, 2.5, None], "b": {"c": "d"}},
        "list": [True, False, "x"],
    }
    headers = requests.Headers(
        [("User-Agent", "wrk"), ("Content-Type", "application/json"), ("X-A", "1")]
    )
    context: dict[str, object] = {"body": body, "headers": headers}
    rendered = templates.render(source, context)
    assert rendered == _sandbox_render(source, context)
    if "missing" not in source and "nope" not in source:
        assert templates.render(source, context, strict=True) == rendered


def test_a_mutating_method_is_still_refused_through_the_shortcuts() -> None:
    context = {"body": {"a": 1}, "headers": requests.Headers([("X-A", "1")])}
    for source in ("{{ body.pop('a') }}", "{{ body.clear() }}", "{{ headers.setdefault('b', 1) }}"):
        with pytest.raises(templates.WebhookTemplateError):
            templates.render(source, context)


def test_a_short_budget_says_when_a_render_outran_it() -> None:
    cheap = templates.ShortBudget(0.002, 1 << 20)
    assert templates.render("{{ body.a }}", {"body": {"a": 1}}, limits=cheap) == "1"
    assert not cheap.ran_out
    costly = templates.ShortBudget(0.002, 1 << 20)
    source = "{% for a in range(100) %}{% for b in range(100) %}{{ a * b }}{% endfor %}{% endfor %}"
    with pytest.raises(templates.WebhookTemplateError):
        templates.render(source, {}, limits=costly)
    assert costly.ran_out
    assert len(templates.render(source, {})) > 10_000  # the full budget renders it
    wide = templates.ShortBudget(1.0, 1000)
    with pytest.raises(templates.WebhookTemplateError):
        templates.render("{{ 'x' * 600 }}{{ 'y' * 600 }}", {}, limits=wide)
    assert wide.ran_out
