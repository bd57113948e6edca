from __future__ import annotations

import pytest

from automations.domain import events, webhooks
from automations.webhooks import rendering

HOOK = webhooks.Webhook(id="w-1", name="hook", template="", slug="s")
CTX = {"method": "POST", "body": {"a": 1}}


def _build(rendered: str, delivery_id: str | None = None) -> list:
    return rendering.build_events(
        rendered, webhook=HOOK, ctx=CTX, headers={"x": "y"}, delivery_id=delivery_id, now=100.0
    )


def test_defaults_are_filled_in_as_prefect_cloud_does() -> None:
    (event,) = _build('{"event": "e", "resource": {"prefect.resource.id": "r"}}')
    assert event.occurred == 100.0
    assert event.payload == {"method": "POST", "headers": {"x": "y"}, "body": {"a": 1}}
    assert event.related == (
        {
            "prefect.resource.id": "prefect-cloud.webhook.w-1",
            "prefect.resource.role": "webhook",
            "prefect.resource.name": "hook",
        },
    )


def test_a_delivery_id_makes_the_same_event_ids_every_time() -> None:
    text = '[{"event": "a", "resource": {"prefect.resource.id": "r"}}, {"event": "b", "resource": {"prefect.resource.id": "r"}}]'
    first = [e.id for e in _build(text, "delivery-1")]
    assert first == [e.id for e in _build(text, "delivery-1")]
    assert len(set(first)) == 2
    assert first != [e.id for e in _build(text, "delivery-2")]


def test_what_the_template_sets_is_kept() -> None:
    (event,) = _build(
        '{"event": "e", "id": "mine", "occurred": "2026-01-01T00:00:00Z", "follows": "f", '
        '"payload": {"k": 1}, "related": [{"prefect.resource.id": "x", "prefect.resource.role": "y"}],'
        ' "resource": {"prefect.resource.id": "r"}, "data": "ignored"}'
    )
    assert (event.id, event.follows, event.payload) == ("mine", "f", {"k": 1})
    assert event.occurred == 1767225600.0
    assert event.related[0] == {"prefect.resource.id": "x", "prefect.resource.role": "y"}


@pytest.mark.parametrize(
    ("rendered", "message"),
    [
        ("{'a': 1}", "did not render valid JSON"),
        ("[]", "empty array"),
        ('"text"', "must render a JSON object"),
        ('{"resource": {"prefect.resource.id": "r"}}', "event: is required"),
        (
            '{"event": "e", "resource": {"prefect.resource.id": 5}}',
            "resource['prefect.resource.id']",
        ),
        ('{"event": "e", "resource": {"x": "y"}}', "resource: must have a non-empty"),
        (
            '[{"event": "e", "resource": {"prefect.resource.id": "r"}}, {"event": "e"}]',
            "[1].resource",
        ),
        (
            '{"event": "e", "resource": {"prefect.resource.id": "r"}, "occurred": "yesterday"}',
            "occurred",
        ),
    ],
)
def test_invalid_results_name_what_is_wrong(rendered: str, message: str) -> None:
    with pytest.raises(rendering.Invalid) as caught:
        _build(rendered)
    assert message in caught.value.message


def test_the_failed_event_carries_method_headers_body_rendered_and_error() -> None:
    event = rendering.failed_event(
        HOOK,
        method="POST",
        headers={"h": "v"},
        body={"a": 1},
        raw_body='{"a": 1}',
        rendered="x" * 100_000,
        error="boom",
        now=5.0,
    )
    assert event.event == "prefect-cloud.webhook.failed"
    assert event.resource["prefect.resource.id"] == "prefect-cloud.webhook.w-1"
    assert event.payload["error"] == "boom" and event.payload["body"] == {"a": 1}
    assert len(event.payload["rendered"]) < 70_000


def test_an_event_over_the_size_limit_is_refused_even_when_its_text_grows_when_encoded() -> None:
    # "1e15" is 4 characters of the rendered text and 18 bytes once encoded (1000000000000000.0):
    # an event whose text is under the limit can be over it as the event it describes
    count = events.MAX_EVENT_SIZE_BYTES // 18 + 1
    numbers = ",".join(["1e15"] * count)
    text = f'{{"event": "e", "resource": {{"prefect.resource.id": "r"}}, "payload": {{"n": [{numbers}]}}}}'
    assert len(text.encode()) < events.MAX_EVENT_SIZE_BYTES
    with pytest.raises(rendering.Invalid, match="more than"):
        _build(text)
    (event,) = _build(text.replace(numbers, ",".join(["1e15"] * (count // 2))))
    assert len(event.payload["n"]) == count // 2
