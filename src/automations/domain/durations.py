"""Durations as Prefect's JSON carries them: seconds, ISO 8601 (``PT1H30M``) or ``[D days, ]H:MM:SS``."""

from __future__ import annotations

import re

from automations.domain import errors

_ISO = re.compile(
    r"^(?P<sign>-)?P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_CLOCK = re.compile(
    r"^(?:(?P<days>-?\d+) days?, )?(?P<hours>\d+):(?P<minutes>\d{1,2}):(?P<seconds>\d{1,2}(?:\.\d+)?)$"
)


def parse_duration(value: object, field: str) -> float:
    """Parses a duration into seconds.

    Args:
        value: A number of seconds, an ISO 8601 duration string or a ``H:MM:SS`` string.
        field: The field path to name in an error.

    Returns:
        The duration in seconds.

    Raises:
        errors.InvalidArgument: The value is not a duration.
    """
    if isinstance(value, bool):
        raise errors.InvalidArgument(
            field, "must be a duration, not a boolean", reason="BAD_DURATION"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _parse_text(text, field)
    else:
        raise errors.InvalidArgument(
            field, "must be a number of seconds or an ISO 8601 duration", reason="BAD_DURATION"
        )
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise errors.InvalidArgument(field, "must be a finite duration", reason="BAD_DURATION")
    return seconds


def _parse_text(text: str, field: str) -> float:
    match = _ISO.match(text)
    if match and text not in ("P", "PT") and not text.endswith("T"):
        parts = {k: float(v) for k, v in match.groupdict().items() if v and k != "sign"}
        total = (
            parts.get("weeks", 0.0) * 604800
            + parts.get("days", 0.0) * 86400
            + parts.get("hours", 0.0) * 3600
            + parts.get("minutes", 0.0) * 60
            + parts.get("seconds", 0.0)
        )
        return -total if match.group("sign") else total
    match = _CLOCK.match(text)
    if match:
        days = float(match.group("days") or 0)
        return (
            days * 86400
            + float(match.group("hours")) * 3600
            + float(match.group("minutes")) * 60
            + float(match.group("seconds"))
        )
    raise errors.InvalidArgument(
        field, f"{text!r} is not a duration (seconds, ISO 8601 or H:MM:SS)", reason="BAD_DURATION"
    )


def format_seconds(seconds: float) -> int | float:
    """Returns ``seconds`` as an int when it is whole, as Prefect's JSON prints durations."""
    return int(seconds) if float(seconds).is_integer() else seconds
