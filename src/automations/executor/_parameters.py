"""Reading an invocation's rendered ``parameters`` (a ``google.protobuf.Struct``)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2


def parameters_to_dict(parameters: struct_pb2.Struct) -> dict[str, Any]:
    """The parameters as plain Python values (numbers are floats, as in JSON)."""
    return dict(json_format.MessageToDict(parameters))


def as_int_if_whole(value: Any) -> Any:
    """``3.0`` -> ``3``, inside lists and objects too (Struct numbers meant as integers)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: as_int_if_whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_int_if_whole(v) for v in value]
    return value
