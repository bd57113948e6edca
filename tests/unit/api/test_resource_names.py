"""Resource names and automation ids: one rule for the ids a create accepts and a name carries."""

from __future__ import annotations

import uuid

import pytest

from automations.domain import errors, ids
from automations.wire import names

# Every form an automation id may not take, with what the error says about it.
REJECTED_IDS = {
    "é": "'é'",
    "Ab": "upper-case",
    "": "empty",
    "a" * 64: "64 characters",
    "-ab": "starts with '-'",
    "1ab": "starts with '1'",
    "ab-": "ends with '-'",
    "a/b": "'/'",
    "a_b": "'_'",
    "a b": "' '",
    " ab": "' '",
    "ab\n": "'\\n'",
    "A1B2C3D4-0000-4000-8000-000000000000": "upper-case",
}

ACCEPTED_IDS = ["a", "second", "orders-failing-2", "a" * 63, "x-1-y"]


@pytest.mark.parametrize("bad", REJECTED_IDS)
def test_a_create_refuses_an_id_that_breaks_the_rule(bad: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        names.check_automation_id(bad)
    assert (caught.value.field, caught.value.reason) == ("automation_id", "INVALID_ID")
    assert REJECTED_IDS[bad] in caught.value.description
    assert "lower-case letters" in caught.value.description  # the rule itself is stated


@pytest.mark.parametrize("bad", REJECTED_IDS)
def test_a_name_carrying_an_id_that_breaks_the_rule_is_refused(bad: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        names.automation_id_from_name(f"automations/{bad}", field="automation.name")
    assert caught.value.field == "automation.name"
    assert caught.value.reason == "INVALID_RESOURCE_NAME"


@pytest.mark.parametrize("good", ACCEPTED_IDS)
def test_ids_that_follow_the_rule_are_accepted_and_round_trip_through_names(good: str) -> None:
    assert names.check_automation_id(good) == good
    assert names.automation_id_from_name(names.automation_name(good)) == good


def test_ids_the_server_generates_and_ids_generated_before_pass_the_same_rule() -> None:
    generated = [str(uuid.uuid4()) for _ in range(2000)] + [ids.uuid7() for _ in range(100)]
    assert any(not g[0].isalpha() for g in generated)  # digit-first UUIDs are among them
    for automation_id in generated:
        assert names.check_automation_id(automation_id) == automation_id
        assert names.automation_id_from_name(f"automations/{automation_id}") == automation_id


def test_firing_and_invocation_names_parse_and_print() -> None:
    assert names.firing_ids_from_name("automations/a/firings/f") == ("a", "f")
    assert names.firing_ids_from_name("automations/-/firings/f") == (None, "f")
    assert names.invocation_name("a", "i") == "automations/a/actionInvocations/i"
    assert names.invocation_ids_from_name("automations/a/actionInvocations/i") == ("a", "i")
    assert names.invocation_ids_from_name("automations/-/actionInvocations/i") == (None, "i")


def test_invocation_names_of_the_older_collection_are_still_accepted() -> None:
    assert names.invocation_ids_from_name("automations/a/invocations/i") == ("a", "i")


@pytest.mark.parametrize(
    "bad",
    ["automations/-", "automations/Ab", "automations/a/firings/f", "Automations/abc"],
)
def test_wildcards_and_longer_names_are_not_automation_names(bad: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        names.automation_id_from_name(bad)
    assert (caught.value.field, caught.value.reason) == ("name", "INVALID_RESOURCE_NAME")


@pytest.mark.parametrize(
    ("parse", "bad"),
    [
        (names.firing_ids_from_name, "automations/a/firings/"),
        (names.firing_ids_from_name, "automations/a/firings/f/x"),
        (names.firing_ids_from_name, "automations/a/actionInvocations/f"),
        (names.firing_ids_from_name, "automations/Ab/firings/f"),
        (names.firing_ids_from_name, "automations/a b/firings/f"),
        (names.invocation_ids_from_name, "automations/a/firings/i"),
        (names.invocation_ids_from_name, "automations/a/actionInvocations/i j"),
        (names.invocation_ids_from_name, "automations/é/actionInvocations/i"),
        (names.invocation_ids_from_name, "flows/a/actionInvocations/i"),
    ],
)
def test_malformed_firing_and_invocation_names_are_rejected(parse: object, bad: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        parse(bad, field="name")  # type: ignore[operator]
    assert (caught.value.field, caught.value.reason) == ("name", "INVALID_RESOURCE_NAME")
