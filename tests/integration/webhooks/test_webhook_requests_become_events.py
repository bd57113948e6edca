"""Real HTTP requests to a real engine become events: methods, bodies, CloudEvents, errors."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

import automations
from automations import client
from tests.integration.engine_process import EngineProcess
from tests.integration.webhooks.conftest import events_named
from tests.waiting import wait_until


def _name() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def test_a_json_post_renders_into_one_committed_event_with_the_webhook_related(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    hook = api.create_webhook(
        "model refresh",
        '{"event": "' + name + '", "resource": {"prefect.resource.id": '
        '"product.models.{{ body.model_id }}", "team": "{{ query.team }}", '
        '"sub": "{{ path }}"}}',
    )
    reply = http.post(hook["url"] + "/extra?team=ds", json={"model_id": "recs"})
    assert reply.status_code == 204
    assert reply.content == b""
    (event,) = events_named(api, name)  # committed before the 204
    assert event["resource"] == {
        "prefect.resource.id": "product.models.recs",
        "team": "ds",
        "sub": "/extra",
    }
    assert event["related"] == [
        {
            "prefect.resource.id": f"prefect-cloud.webhook.{hook['id']}",
            "prefect.resource.role": "webhook",
            "prefect.resource.name": "model refresh",
        }
    ]
    assert event["payload"]["method"] == "POST"
    assert event["payload"]["body"] == {"model_id": "recs"}
    assert event["payload"]["headers"]["content-type"] == "application/json"


def test_a_form_post_is_a_flat_mapping_and_missing_values_render_empty(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    hook = api.create_webhook(
        "form",
        '{"event": "' + name + '", "resource": {"prefect.resource.id": '
        '"product.models.{{ body.model }}", "prefect.resource.name": '
        '"{{ body.friendly_name|default(body.model) }}", "missing": "{{ body.nope.deeper }}"}}',
    )
    reply = http.post(hook["url"], data={"model": "recommendations", "friendly_name": "Recs"})
    assert reply.status_code == 204
    (event,) = events_named(api, name)
    assert event["resource"] == {
        "prefect.resource.id": "product.models.recommendations",
        "prefect.resource.name": "Recs",
        "missing": "",
    }


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "PUT", "PATCH"])
def test_every_documented_method_is_accepted_and_reaches_the_template(
    api: automations.Client, http: httpx.Client, method: str
) -> None:
    name = _name()
    hook = api.create_webhook(
        "methods",
        '{"event": "' + name + '.{{ method }}", "resource": {"prefect.resource.id": "m"}}',
    )
    assert http.request(method, hook["url"]).status_code == 204
    assert len(events_named(api, f"{name}.{method}")) == 1


def test_an_unknown_method_is_405_and_an_unknown_slug_404(
    api: automations.Client, http: httpx.Client
) -> None:
    hook = api.create_webhook("x", '{"event": "x", "resource": {"prefect.resource.id": "x"}}')
    reply = http.request("TRACE", hook["url"])
    assert reply.status_code == 405
    assert "GET" in reply.headers["allow"]
    base = hook["url"].rsplit("/", 1)[0]
    assert http.post(base + "/not-a-slug", json={}).status_code == 404
    root = base.removesuffix("/hooks")
    for elsewhere in ("/", "/hooks", "/hooks/", "/other/" + hook["slug"]):
        assert http.post(root + elsewhere, json={}).status_code == 404, elsewhere


def test_a_disabled_or_rotated_or_deleted_webhook_answers_404(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    hook = api.create_webhook(
        "x", '{"event": "' + name + '", "resource": {"prefect.resource.id": "x"}}'
    )
    api.disable_webhook(hook["id"])
    assert http.post(hook["url"]).status_code == 404
    api.enable_webhook(hook["id"])
    assert http.post(hook["url"]).status_code == 204
    rotated = api.rotate_webhook(hook["id"])
    assert rotated["slug"] != hook["slug"] and len(rotated["slug"]) == 22
    assert http.post(hook["url"]).status_code == 404
    assert http.post(rotated["url"]).status_code == 204
    api.delete_webhook(hook["id"])
    assert http.post(rotated["url"]).status_code == 404
    assert len(events_named(api, name)) == 2


def test_a_template_rendering_an_array_publishes_a_batch(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    hook = api.create_webhook(
        "batch",
        '[{% for item in body %}{"event": "' + name + '", "resource": '
        '{"prefect.resource.id": "item.{{ item }}"}}{% if not loop.last %},{% endif %}'
        "{% endfor %}]",
    )
    assert http.post(hook["url"], json=[1, 2, 3]).status_code == 204
    found = sorted(e["resource"]["prefect.resource.id"] for e in events_named(api, name))
    assert found == ["item.1", "item.2", "item.3"]


def test_structured_and_binary_cloud_events_become_events(
    api: automations.Client, http: httpx.Client
) -> None:
    kind = _name()
    hook = api.create_webhook("ce", "{{ body|from_cloud_event(headers) }}")
    structured = {
        "specversion": "1.0",
        "type": kind,
        "source": "/storage/accounts/a",
        "subject": "blobs/one.csv",
        "id": "ce-1",
        "time": "2026-01-02T03:04:05Z",
        "data": {"size": 10},
    }
    reply = http.post(
        hook["url"],
        content=json.dumps(structured),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert reply.status_code == 204
    binary_headers = {
        "ce-specversion": "1.0",
        "ce-type": kind,
        "ce-source": "/storage/accounts/b",
        "ce-id": "ce-2",
        "content-type": "application/json",
    }
    assert http.post(hook["url"], json={"size": 20}, headers=binary_headers).status_code == 204
    found = {e["resource"]["prefect.resource.id"]: e for e in events_named(api, kind)}
    assert set(found) == {"blobs/one.csv", "/storage/accounts/b"}
    one = found["blobs/one.csv"]
    assert one["occurred"].startswith("2026-01-02T03:04:05")
    assert one["payload"]["data"] == {"size": 10}
    assert one["payload"]["cloudevents"]["source"] == "/storage/accounts/a"
    assert found["/storage/accounts/b"]["payload"]["data"] == {"size": 20}
    # the same CloudEvent again (a redelivery) is a duplicate, not a second event
    again = http.post(
        hook["url"],
        content=json.dumps(structured),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert again.status_code == 204
    assert len(events_named(api, kind)) == 2


def test_a_malformed_body_or_result_is_400_with_the_reason_and_a_failed_event(
    api: automations.Client, http: httpx.Client
) -> None:
    hook = api.create_webhook(
        "broken", '{"event": "{{ body.name }}", "resource": {{ body.r|tojson }}}'
    )
    reply = http.post(
        hook["url"], content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400  # the body is kept as text: body.name renders ""
    assert reply.json()["error"] == "event: is required (a non-empty string)"
    reply = http.post(hook["url"], json={"name": "x", "r": {"prefect.resource.id": 5}})
    assert reply.status_code == 400
    assert "label values must be strings" in reply.json()["error"]
    failed = wait_until(
        lambda: [
            e
            for e in events_named(api, "prefect-cloud.webhook.failed")
            if e["resource"]["prefect.resource.id"] == f"prefect-cloud.webhook.{hook['id']}"
        ],
        what="the webhook.failed events",
    )
    assert {"method", "headers", "body", "rendered", "error"} <= set(failed[0]["payload"])
    assert any("label values must be strings" in e["payload"]["error"] for e in failed)


def test_strict_mode_refuses_a_missing_value_that_prefect_renders_empty(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    template = (
        '{"event": "' + name + '", "resource": {"prefect.resource.id": "m.{{ body.model }}"}}'
    )
    lenient = api.create_webhook("lenient", template)
    strict = api.create_webhook("strict", template, strict=True)
    assert http.post(lenient["url"], json={}).status_code == 204
    reply = http.post(strict["url"], json={})
    assert reply.status_code == 400
    assert "model" in reply.json()["error"]
    (event,) = events_named(api, name)
    assert event["resource"]["prefect.resource.id"] == "m."


def test_a_body_over_the_limit_is_413(
    api: automations.Client, http: httpx.Client, hooks_engine: EngineProcess
) -> None:
    name = _name()
    hook = api.create_webhook(
        "big", '{"event": "' + name + '", "resource": {"prefect.resource.id": "x"}}'
    )
    big = b"x" * (5 * 1024 * 1024 + 1)
    assert http.post(hook["url"], content=big).status_code == 413

    def chunks():  # no Content-Length: the limit applies to the streamed body
        for _ in range(6):
            yield b"y" * (1024 * 1024)

    assert http.post(hook["url"], content=chunks()).status_code == 413
    assert events_named(api, name) == []


def test_azure_event_grid_subscription_validation_is_answered(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    hook = api.create_webhook(
        "azure", '{"event": "' + name + '", "resource": {"prefect.resource.id": "x"}}'
    )
    handshake = [
        {
            "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
            "topic": "/subscriptions/x",
            "subject": "",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2026-01-01T00:00:00Z",
            "dataVersion": "1",
        }
    ]
    reply = http.post(
        hook["url"], json=handshake, headers={"aeg-event-type": "SubscriptionValidation"}
    )
    assert reply.status_code == 200
    assert reply.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    options = http.options(hook["url"], headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert options.status_code == 200
    assert options.headers["webhook-allowed-origin"] == "eventgrid.azure.net"
    assert events_named(api, name) == []


def test_deliveries_are_listed_newest_first_with_secrets_masked(
    api: automations.Client, http: httpx.Client
) -> None:
    hook = api.create_webhook(
        "history", '{"event": "{{ body.e }}", "resource": {"prefect.resource.id": "x"}}'
    )
    http.post(hook["url"], json={"e": "history.ok"}, headers={"X-Api-Token": "hunter2-secret"})
    http.post(hook["url"], json={"e": ""})
    first, second = api.list_webhook_deliveries(hook["id"])
    assert first["status"] == 400 and "event" in first["error"]
    assert second["status"] == 204 and len(second["event_ids"]) == 1
    assert second["rendered"].startswith('{"event": "history.ok"')
    assert second["headers"]["x-api-token"] == "****"
    assert "hunter2" not in json.dumps(api.list_webhook_deliveries(hook["id"]))


def test_the_test_call_renders_a_sample_without_publishing(api: automations.Client) -> None:
    name = _name()
    hook = api.create_webhook(
        "dry", '{"event": "' + name + '", "resource": {"prefect.resource.id": "{{ body.id }}"}}'
    )
    ok = api.test_webhook(
        hook["id"], body=b'{"id": "r1"}', headers={"Content-Type": "application/json"}
    )
    assert ok["error"] == ""
    assert ok["events"][0]["resource"]["prefect.resource.id"] == "r1"
    bad = api.test_webhook(hook["id"], body=b"{}")
    assert "prefect.resource.id" in bad["error"]
    assert events_named(api, name) == []


def test_an_invalid_template_is_refused_on_create_naming_the_field(api: automations.Client) -> None:
    with pytest.raises(client.CallError) as caught:
        api.create_webhook("bad", '{"event": "{{ body.x | no_such_filter }}"}')
    assert caught.value.field == "template"
    assert caught.value.reason == "INVALID_TEMPLATE"


def test_a_quoted_tojson_renders_invalid_json_and_the_failed_event_shows_the_rendering(
    api: automations.Client, http: httpx.Client
) -> None:
    # Prefect's best-known pitfall (quotes around tojson): the error says where JSON broke
    hook = api.create_webhook(
        "quoted",
        '{"event": "x", "resource": {"prefect.resource.id": "x"}, "payload": "{{ body|tojson }}"}',
    )
    reply = http.post(hook["url"], json={"a": 1})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("the template did not render valid JSON")
    (delivery,) = api.list_webhook_deliveries(hook["id"])
    assert delivery["rendered"].endswith('"payload": "{"a": 1}"}')
