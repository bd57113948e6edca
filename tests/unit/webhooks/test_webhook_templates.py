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
