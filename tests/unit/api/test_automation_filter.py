"""ListAutomations' filter: the AIP-160 subset it supports, and a clear error for anything else."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from automations.domain import errors, prefect_json
from automations.wire import automation_filter
from tests import factories

NIGHTLY = dataclasses.replace(
    factories.automation("nightly-watch", name="Nightly watch"),
    tags=("ops", "nightly"),
    owner_resource="prefect.deployment.7",
)
PAUSED = factories.automation("paused-one", name="paused one", enabled=False)
COMPOUND = prefect_json.parse_automation(
    {
        "name": "both failed",
        "description": "two flows failed together",
        "tags": ["ops"],
        "trigger": {"type": "compound", "require": "all", "triggers": [{"expect": ["a"]}]},
        "actions": [],
    },
    automation_id="both-failed",
)
ALL = [NIGHTLY, PAUSED, COMPOUND]


def matching(text: str) -> list[str]:
    parsed = automation_filter.parse(text)
    return [a.id for a in ALL if parsed.matches(a)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["nightly-watch", "paused-one", "both-failed"]),
        ("   ", ["nightly-watch", "paused-one", "both-failed"]),
        ('name = "automations/paused-one"', ["paused-one"]),
        ("name=automations/paused-one", ["paused-one"]),
        ('name:"watch"', ["nightly-watch"]),
        ('display_name = "Nightly watch"', ["nightly-watch"]),
        ('display_name = "nightly watch"', []),  # case-sensitive
        ("display_name:'one'", ["paused-one"]),
        ('description:"together"', ["both-failed"]),
        ('owner_resource = "prefect.deployment.7"', ["nightly-watch"]),
        ("enabled = true", ["nightly-watch", "both-failed"]),
        ("enabled = false", ["paused-one"]),
        ('tags:"ops"', ["nightly-watch", "both-failed"]),
        ("tags:nightly", ["nightly-watch"]),
        ('trigger.type = "compound"', ["both-failed"]),
        ("trigger.type = event", ["nightly-watch", "paused-one"]),
        ('trigger.type = "sequence"', []),
        ('tags:"ops" AND enabled = true AND trigger.type = event', ["nightly-watch"]),
        ('display_name:"o" AND tags:"ops"', ["both-failed"]),
        (r'display_name = "say \"hi\""', []),
    ],
)
def test_the_supported_terms_select_the_automations_they_say(
    text: str, expected: list[str]
) -> None:
    assert matching(text) == expected


def test_an_enabled_term_is_offered_to_the_store() -> None:
    assert automation_filter.parse("tags:x AND enabled = false").enabled is False
    assert automation_filter.parse("tags:x").enabled is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('tags:"a" OR tags:"b"', "expected AND"),
        ('tags:"a" and tags:"b"', "expected AND"),
        ('NOT tags:"a"', "expected a field name"),
        ('-tags:"a"', "negation"),
        ('(tags:"a")', "expected a field name"),
        ("enabled != true", "unsupported operator '!='"),
        ("create_time > 5", "unsupported operator '>'"),
        ("enabled = maybe", "'enabled' takes"),
        ("enabled:true", "'enabled' takes"),
        ('tags = "a"', "'tags' takes ':'"),
        ('trigger.type = "gauge"', "'trigger.type' takes"),
        ('uid = "x"', "unknown field 'uid'"),
        ('display_name = "a*"', "wildcards"),
        ('display_name = "open', "unterminated string"),
        ("display_name =", "expected a term"),
        ("enabled = true AND", "expected a term"),
        ("enabled = true enabled = false", "expected AND"),
        ("enabled = true AND enabled = false", "contradictory"),
    ],
)
def test_anything_else_is_invalid_argument_on_filter(text: str, says: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        automation_filter.parse(text)
    assert (caught.value.field, caught.value.reason) == ("filter", "INVALID_FILTER")
    assert says in caught.value.description
    assert "supported:" in caught.value.description


@pytest.mark.parametrize("text", ["!", "name = x !", "\U00108914¬Àq!", "<", "name:x AND !"])
def test_a_character_that_starts_no_token_is_refused_at_once(text: str) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        automation_filter.parse(text)
    assert raised.value.field == "filter"


@given(st.text(max_size=40))
def test_any_text_is_parsed_or_refused_with_the_filter_named(text: str) -> None:
    try:
        automation_filter.parse(text)
    except errors.InvalidArgument as exc:
        assert exc.field == "filter"
