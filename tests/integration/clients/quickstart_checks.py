"""What every quickstart (Node, Go) must have done: the same automation, events and firings."""

from __future__ import annotations

import json
from typing import Any

import automations

EVENTS = 10_000
CUSTOMERS = 100
THRESHOLD = 100


def check_quickstart_output(stdout: str, target: str) -> None:
    """Checks a quickstart's JSON output, and the engine's own view of the same firings.

    10,000 orders round-robin over 100 customers within ten seconds, threshold 100 within 60 s
    per customer: every customer's bucket fires exactly once, on its 100th order, which is order
    number 9900 + the customer's number.
    """
    data: dict[str, Any] = json.loads(stdout)
    assert data["published"]["accepted"] == EVENTS, data["published"]
    assert data["published"]["rejected"] == 0
    assert data["expected_firings"] == CUSTOMERS
    firings = data["firings"]
    assert len(firings) == CUSTOMERS
    by_customer: dict[int, dict[str, Any]] = {}
    for firing in firings:
        assert firing["automation"] == f"automations/{data['automation_id']}"
        assert firing["triggerType"] == "TRIGGER_TYPE_EVENT"
        assert firing["posture"] == "POSTURE_REACTIVE"
        customer = firing["triggeringLabels"]["prefect.resource.id"]
        number = int(customer.rsplit(".", 1)[1])
        assert number not in by_customer, f"{customer} fired twice"
        by_customer[number] = firing
        event = firing["triggeringEvent"]
        assert event["id"] == firing["triggeringEventId"]
        assert event["event"] == "acme.order.placed"
        assert event["resource"]["labels"]["prefect.resource.id"] == customer
        assert event["payload"]["order"] == (THRESHOLD - 1) * CUSTOMERS + number
    assert sorted(by_customer) == list(range(CUSTOMERS))

    # The engine's own record, read independently with the Python client.
    with automations.Client(target) as client:
        stored = client.list_firings(data["automation_id"])
    assert sorted(f["id"] for f in stored) == sorted(f["uid"] for f in firings)
