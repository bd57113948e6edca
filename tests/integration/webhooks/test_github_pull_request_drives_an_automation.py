"""A signed GitHub pull-request delivery, through Prefect's own example template, fires an
automation end to end (Prefect's "resume a flow run on PR merge" example)."""

from __future__ import annotations

import json
import uuid

import httpx

import automations
from tests.integration.webhooks.conftest import github_signature

# Prefect's webhook template for GitHub pull requests (docs: resume-flow-run-on-pr-merge)
TEMPLATE = """{"event": "github.{{ headers.get('x-github-event', 'unknown') }}.{{ body.action|default('no-action') }}",
 "resource": {
   "prefect.resource.id": "{% set frid = body.pull_request.body|flow_run_id %}{% if frid %}prefect.flow-run.{{ frid }}{% else %}github.pr.{{ body.pull_request.number|default(0) }}{% endif %}",
   "pr.number": "{{ body.pull_request.number|default(0) }}",
   "pr.merged": "{{ body.pull_request.merged|default(false) }}",
   "pr.title": "{{ body.pull_request.title|default('')|truncate(100) }}"}}"""


def _pull_request(number: int, *, merged: bool, flow_run: str) -> dict[str, object]:
    """The parts of GitHub's ``pull_request`` webhook payload the template reads, and more."""
    return {
        "action": "closed",
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/acme/etl/pulls/{number}",
            "id": 1000 + number,
            "number": number,
            "state": "closed",
            "title": "Fix the nightly load",
            "body": f"Resumes https://app.prefect.cloud/runs/flow-run/{flow_run} once merged.",
            "merged": merged,
            "merge_commit_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "user": {"login": "octocat", "id": 1},
        },
        "repository": {"id": 1296269, "name": "etl", "full_name": "acme/etl"},
        "sender": {"login": "octocat", "id": 1},
    }


def _send(http: httpx.Client, url: str, secret: str, payload: dict[str, object]) -> int:
    body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(secret, body),
        "User-Agent": "GitHub-Hookshot/044aadd",
    }
    return http.post(url, content=body, headers=headers).status_code


def test_a_merged_pull_request_fires_the_automation_and_an_unmerged_one_does_not(
    api: automations.Client, http: httpx.Client
) -> None:
    secret = uuid.uuid4().hex
    hook = api.create_webhook(
        "github prs", TEMPLATE, signature_scheme="github", signing_secret=secret
    )
    automation = api.create_automation(
        {
            "name": "resume on merge",
            "trigger": {
                "type": "event",
                "match": {"prefect.resource.id": "prefect.flow-run.*", "pr.merged": "True"},
                "match_related": {
                    "prefect.resource.id": f"prefect-cloud.webhook.{hook['id']}",
                    "prefect.resource.role": "webhook",
                },
                "expect": ["github.pull_request.closed"],
                "posture": "Reactive",
                "threshold": 1,
                "within": 0,
            },
            "actions": [{"type": "do-nothing"}],
        }
    )
    merged_run, open_run = str(uuid.uuid4()), str(uuid.uuid4())
    assert (
        _send(http, hook["url"], secret, _pull_request(7, merged=False, flow_run=open_run)) == 204
    )
    assert (
        _send(http, hook["url"], secret, _pull_request(8, merged=True, flow_run=merged_run)) == 204
    )
    # the firing committed with the event, before the 204
    (firing,) = api.list_firings(automation["id"])
    event = firing["triggering_event"]
    assert event["event"] == "github.pull_request.closed"
    assert event["resource"]["prefect.resource.id"] == f"prefect.flow-run.{merged_run}"
    assert event["resource"]["pr.number"] == "8"
    assert event["resource"]["pr.title"] == "Fix the nightly load"
