"""Fields shared by every kind of trigger in Prefect's JSON: resource specs, name lists, trigger ids.

``prefect_json`` (event, compound and sequence triggers) and ``metric_json`` (metric triggers) parse
their triggers with these, so that a label pattern, a list of event names or a ``for_each`` label
means the same everywhere and errors name the same paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from automations.domain import errors


def invalid(field: str, message: str, reason: str = "INVALID_AUTOMATION") -> errors.InvalidArgument:
    """An ``InvalidArgument`` naming ``field`` (reason ``INVALID_AUTOMATION`` unless given)."""
    return errors.InvalidArgument(field, message, reason=reason)


def join(prefix: str, name: str) -> str:
    """``prefix.name``, or ``name`` at the top level."""
    return f"{prefix}.{name}" if prefix else name


def parse_resource_spec(value: object, field: str) -> dict[str, tuple[str, ...]]:
    """Parses a resource specification: label -> pattern or list of patterns."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid(field, "must be an object mapping labels to patterns")
    spec: dict[str, tuple[str, ...]] = {}
    for label, patterns in value.items():
        if not isinstance(label, str) or not label:
            raise invalid(field, "label names must be non-empty strings")
        if isinstance(patterns, str):
            spec[label] = (patterns,)
        elif isinstance(patterns, list | tuple) and all(isinstance(p, str) for p in patterns):
            spec[label] = tuple(patterns)
        else:
            raise invalid(f"{field}[{label!r}]", "must be a string or a list of strings")
    return spec


def parse_match_related(value: object, field: str) -> tuple[dict[str, tuple[str, ...]], ...]:
    """Parses ``match_related``: one spec, or a list of specs (each met by some related resource)."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        one = parse_resource_spec(value, field)
        return (one,) if one else ()
    if isinstance(value, list | tuple):
        return tuple(parse_resource_spec(spec, f"{field}[{i}]") for i, spec in enumerate(value))
    raise invalid(field, "must be an object or a list of objects")


def dump_resource_spec(spec: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """Prints a spec as Prefect does: a single pattern as a string, several as a list."""
    return {label: (p[0] if len(p) == 1 else list(p)) for label, p in spec.items()}


def dump_match_related(specs: tuple[Mapping[str, tuple[str, ...]], ...]) -> Any:
    """Prints ``match_related`` as Prefect does: ``{}``, one object, or a list of them."""
    if not specs:
        return {}
    if len(specs) == 1:
        return dump_resource_spec(specs[0])
    return [dump_resource_spec(s) for s in specs]


def normalized_specs(
    match: Mapping[str, tuple[str, ...]], related: tuple[Mapping[str, tuple[str, ...]], ...]
) -> tuple[dict[str, list[str]], list[dict[str, list[str]]]]:
    """``match`` and ``match_related`` in a canonical form (sorted labels), for trigger ids."""
    return (
        {k: list(v) for k, v in sorted(match.items())},
        [{k: list(v) for k, v in sorted(s.items())} for s in related],
    )


def string_list(value: object, field: str) -> tuple[str, ...]:
    """A list of strings (a single string is a list of one); None is empty."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise invalid(field, "must be a list of strings")


def label_names(value: object, field: str) -> tuple[str, ...]:
    """``for_each`` labels: each a label name or ``related:<role>:<label>``, sorted, distinct."""
    names = string_list(value, field)
    for i, label in enumerate(names):
        if not label or (label.startswith("related:") and label.count(":") < 2):
            raise invalid(f"{field}[{i}]", "must be a label or related:<role>:<label>")
    return tuple(sorted(set(names)))


def trigger_digest(data: Mapping[str, Any], path: str) -> str:
    """A trigger's id: a digest of its normalized definition and its path in the automation."""
    canonical = orjson.dumps({"path": path, "trigger": data}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:24]
