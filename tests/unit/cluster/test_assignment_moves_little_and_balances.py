"""Rendezvous assignment: deterministic, moves only what a joining or leaving member changes,
and (with bounded loads) balanced."""

from __future__ import annotations

import collections
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automations.cluster import assignment

member_ids = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=24),
    min_size=1,
    max_size=6,
    unique=True,
)


def random_members(rng: random.Random, n: int) -> list[str]:
    return [f"replica-{rng.getrandbits(48):012x}" for _ in range(n)]


def hrw(partition_count: int, members: list[str]) -> dict[int, str]:
    return {p: assignment.desired_owner(p, members) for p in range(partition_count)}


@given(members=member_ids, newcomer=st.text(min_size=1, max_size=24))
@settings(max_examples=200, deadline=None)
def test_a_joining_member_takes_only_what_it_wins_and_a_leaving_one_gives_only_its_own(
    members: list[str], newcomer: str
) -> None:
    if newcomer in members:
        return
    before = hrw(64, members)
    after = hrw(64, [*members, newcomer])
    assert {p for p in range(64) if before[p] != after[p]} == {
        p for p in range(64) if after[p] == newcomer
    }
    if len(members) > 1:
        leaver, rest = members[0], members[1:]
        without = hrw(64, rest)
        assert {p for p in range(64) if before[p] != without[p]} == {
            p for p in range(64) if before[p] == leaver
        }


@given(members=member_ids)
@settings(max_examples=100, deadline=None)
def test_everyone_computes_the_same_assignment_whatever_the_order(members: list[str]) -> None:
    shuffled = list(reversed(members))
    assert assignment.assign(32, members) == assignment.assign(32, shuffled)
    assert hrw(32, members) == hrw(32, shuffled)
    owners = assignment.assign(32, members)
    assert sorted(owners) == list(range(32))
    assert set(owners.values()) <= set(members)


@given(members=member_ids, partition_count=st.integers(min_value=1, max_value=300))
@settings(max_examples=200, deadline=None)
def test_no_member_gets_more_than_its_capped_share(
    members: list[str], partition_count: int
) -> None:
    owners = assignment.assign(partition_count, members)
    assert sorted(owners) == list(range(partition_count))
    mean = partition_count / len(members)
    cap = max(-(-partition_count // len(members)), int(mean * assignment.DEFAULT_MAX_LOAD))
    assert max(collections.Counter(owners.values()).values()) <= cap


def test_three_members_and_32_partitions_split_within_1_3_of_the_mean() -> None:
    rng = random.Random(18)
    capped, plain = [], []
    for _ in range(300):
        members = random_members(rng, 3)
        capped.append(max(collections.Counter(assignment.assign(32, members).values()).values()))
        plain.append(max(collections.Counter(hrw(32, members).values()).values()))
    mean = 32 / 3
    assert max(capped) / mean <= 1.3  # 13 / 10.67 = 1.22
    # plain HRW is the reason for the cap: its busiest member often holds over 1.3x the mean
    assert statistics.median(plain) / mean >= 1.1
    assert max(plain) / mean > 1.4


def test_bounded_loads_move_about_half_a_partition_besides_the_joiners_and_leavers() -> None:
    rng = random.Random(9)
    joins, leaves = [], []
    for _ in range(300):
        members = random_members(rng, 4)
        three, four = assignment.assign(32, members[:3]), assignment.assign(32, members)
        joins.append(sum(1 for p in range(32) if three[p] != four[p] and four[p] != members[3]))
        two = assignment.assign(32, members[1:3])
        leaves.append(sum(1 for p in range(32) if three[p] != two[p] and three[p] != members[0]))
    assert statistics.mean(joins) < 1.0
    assert statistics.mean(leaves) < 1.0


def test_no_members_no_owners_and_a_load_cap_below_one_is_refused() -> None:
    assert assignment.assign(8, []) == {}
    with pytest.raises(ValueError, match="max_load"):
        assignment.assign(8, ["a"], max_load=0.9)
    with pytest.raises(ValueError):
        assignment.desired_owner(0, [])
