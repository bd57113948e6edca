"""Struct <-> dict conversion: JSON values survive, whole numbers come back as ints."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from automations.domain import errors
from automations.wire import structs

PAYLOAD = {
    "flow_run_id": "0c1c2f44-1e1a-4a7e-9a1b-8d1b2c3d4e5f",
    "attempt": 3,
    "duration": 12.75,
    "ok": True,
    "nothing": None,
    "tags": ["a", "b"],
    "empty_list": [],
    "empty_object": {},
    "params": {"x": -1, "nested": {"k": [1, 2.5, None, {"deep": False}]}},
}


def dict_to_struct(data: dict[str, Any], *, field: str = "") -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    structs.fill_struct(struct, data, field=field)
    return struct


def test_a_payload_round_trips_exactly() -> None:
    struct = dict_to_struct(PAYLOAD)
    assert structs.struct_to_dict(struct) == PAYLOAD


def test_whole_numbers_come_back_as_ints_and_fractions_as_floats() -> None:
    out = structs.struct_to_dict(dict_to_struct({"a": 3, "b": 3.0, "c": 0.5, "d": -7}))
    assert out == {"a": 3, "b": 3, "c": 0.5, "d": -7}
    assert [type(out[k]) for k in "abcd"] == [int, int, float, int]


def test_numbers_beyond_double_precision_stay_floats() -> None:
    out = structs.struct_to_dict(dict_to_struct({"big": 2.0**60}))
    assert out == {"big": 2.0**60}
    assert isinstance(out["big"], float)


def test_it_reads_what_json_format_writes() -> None:
    struct = json_format.ParseDict(PAYLOAD, struct_pb2.Struct())
    assert structs.struct_to_dict(struct) == PAYLOAD


def test_it_writes_what_json_format_reads() -> None:
    assert json_format.MessageToDict(dict_to_struct(PAYLOAD)) == json_format.MessageToDict(
        json_format.ParseDict(PAYLOAD, struct_pb2.Struct())
    )


def test_an_unset_value_reads_as_none() -> None:
    struct = struct_pb2.Struct()
    struct.fields["unset"].SetInParent()
    assert structs.struct_to_dict(struct) == {"unset": None}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected_with_their_path(bad: float) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        dict_to_struct({"a": {"b": [1, bad]}}, field="payload")
    assert caught.value.field == "payload.a.b[1]"
    assert caught.value.reason == "INVALID_JSON"


def test_values_json_cannot_carry_are_rejected_with_their_path() -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        dict_to_struct({"when": object()})
    assert caught.value.field == "when"


def test_non_string_keys_are_rejected() -> None:
    with pytest.raises(errors.InvalidArgument):
        dict_to_struct({1: "x"})  # type: ignore[dict-item]


def test_a_struct_mapping_answers_len_and_in_without_converting() -> None:
    mapping = structs.StructMapping(dict_to_struct(PAYLOAD))
    assert len(mapping) == len(PAYLOAD)
    assert "attempt" in mapping
    assert "missing" not in mapping
    assert 3 not in mapping  # type: ignore[comparison-overlap]
    assert mapping._dict is None


def test_a_struct_mapping_reads_like_the_dict_and_converts_once() -> None:
    mapping = structs.StructMapping(dict_to_struct(PAYLOAD))
    assert mapping["params"]["nested"]["k"][1] == 2.5
    assert mapping == PAYLOAD
    assert dict(mapping) == PAYLOAD
    assert mapping.to_dict() is mapping.to_dict()
    assert mapping.get("missing") is None
    assert "attempt" in repr(mapping)


@pytest.mark.parametrize(
    "seconds", [0.0, 1.5, 1_700_000_000.123456, -1.25, 1e-9, 0.9999999, 86_400 * 365 * 30.0]
)
def test_timestamps_round_trip_to_the_microsecond(seconds: float) -> None:
    timestamp = structs.seconds_to_timestamp(seconds)
    assert 0 <= timestamp.nanos < 1_000_000_000
    assert structs.timestamp_to_seconds(timestamp) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("seconds", [0.0, 10.0, 0.25, 90.5, -1.5, 3600.000000001])
def test_durations_round_trip_with_a_consistent_sign(seconds: float) -> None:
    duration = structs.seconds_to_duration(seconds)
    assert (duration.seconds >= 0 and duration.nanos >= 0) or (
        duration.seconds <= 0 and duration.nanos <= 0
    )
    assert structs.duration_to_seconds(duration) == pytest.approx(seconds, abs=1e-9)
