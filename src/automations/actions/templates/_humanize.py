"""The humanize filters Prefect's webhook templates offer, with the sandbox's size guards.

Prefect documents "the filters from the ``jinja2-humanize-extension`` package" for webhook
templates: ``humanize_naturaltime``, ``humanize_intcomma``... These are the same filters with the
same names and arguments, over the ``humanize`` library, minus ``humanize_activate`` and
``humanize_deactivate`` (they switch the locale of the whole process, shared by every template),
and with every argument that could build a huge string (``format`` widths, ``precision``)
refused like the sandbox's own filters refuse them. Times may also be given as ISO 8601 strings
(JSON bodies carry times as text) or as seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import humanize

from automations.actions.templates import _sandbox

MAX_PRECISION = 100
"""The most digits a humanize filter may print."""


def _precision(value: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= MAX_PRECISION:
        raise OverflowError(f"precision must be an integer from 0 to {MAX_PRECISION}")
    return value


def _percent_format(fmt: str) -> str:
    _sandbox._refuse_wide_format(str(fmt), _sandbox._WIDE_PERCENT)
    return str(fmt)


def _time(value: Any) -> Any:
    """An ISO 8601 string as a datetime (naive UTC, as humanize compares with ``now()``)."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone().replace(tzinfo=None)
        return parsed
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    return value


def _delta(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    return value


def naturalsize(value: Any, binary: bool = False, gnu: bool = False, format: str = "%.1f") -> str:
    """``humanize_naturalsize``: bytes as ``1.2 MB``."""
    return humanize.naturalsize(value, binary=binary, gnu=gnu, format=_percent_format(format))


def naturaldate(value: Any) -> str:
    """``humanize_naturaldate``: a date as ``today``, ``Jun 05`` or ``Jun 05 2024``."""
    return humanize.naturaldate(_time(value))


def naturalday(value: Any) -> str:
    """``humanize_naturalday``: a date as ``today``, ``yesterday`` or ``Jun 05``."""
    return humanize.naturalday(_time(value))


def naturaldelta(value: Any, months: bool = True, minimum_unit: str = "seconds") -> str:
    """``humanize_naturaldelta``: a duration (seconds or a timedelta) as ``3 minutes``."""
    return humanize.naturaldelta(_delta(value), months=months, minimum_unit=minimum_unit)


def naturaltime(
    value: Any,
    future: bool = False,
    months: bool = True,
    minimum_unit: str = "seconds",
    when: Any = None,
) -> str:
    """``humanize_naturaltime``: a time as ``3 minutes ago``."""
    return humanize.naturaltime(
        _time(value),
        future=future,
        months=months,
        minimum_unit=minimum_unit,
        when=_time(when) if when is not None else None,
    )


def precisedelta(
    value: Any, minimum_unit: str = "seconds", suppress: Iterable[str] = (), format: str = "%0.2f"
) -> str:
    """``humanize_precisedelta``: a duration as ``1 hour, 2 minutes and 3.00 seconds``."""
    return humanize.precisedelta(
        _delta(value),
        minimum_unit=minimum_unit,
        suppress=tuple(suppress),
        format=_percent_format(format),
    )


def ordinal(value: Any, gender: str = "male") -> str:
    """``humanize_ordinal``: ``3`` as ``3rd``."""
    return humanize.ordinal(value, gender=gender)


def intcomma(value: Any, ndigits: int | None = None) -> str:
    """``humanize_intcomma``: ``1000000`` as ``1,000,000``."""
    return humanize.intcomma(value, ndigits=None if ndigits is None else _precision(ndigits))


def intword(value: Any, format: str = "%.1f") -> str:
    """``humanize_intword``: ``1200000`` as ``1.2 million``."""
    return humanize.intword(value, format=_percent_format(format))


def apnumber(value: Any) -> str:
    """``humanize_apnumber``: ``5`` as ``five``."""
    return humanize.apnumber(value)


def fractional(value: Any) -> str:
    """``humanize_fractional``: ``0.5`` as ``1/2``."""
    return humanize.fractional(value)


def scientific(value: Any, precision: int = 2) -> str:
    """``humanize_scientific``: ``1000`` as ``1.00 x 10³``."""
    return humanize.scientific(value, precision=_precision(precision))


def clamp(
    value: Any,
    floor: float | None = None,
    ceil: float | None = None,
    format: str = "{:}",
    floor_token: str = "<",
    ceil_token: str = ">",
) -> str | None:
    """``humanize_clamp``: a value limited to a range, e.g. ``<0.01``."""
    _sandbox._refuse_wide_format(str(format), _sandbox._WIDE_BRACE)
    return humanize.clamp(
        value,
        format=str(format),
        floor=floor,
        ceil=ceil,
        floor_token=str(floor_token),
        ceil_token=str(ceil_token),
    )


def metric(value: Any, unit: str = "", precision: int = 3) -> str:
    """``humanize_metric``: ``1500`` as ``1.50 k``."""
    return humanize.metric(value, unit=str(unit), precision=_precision(precision))


def thousands_separator(_value: Any = None) -> str:
    """``humanize_thousands_separator``: the locale's thousands separator."""
    return humanize.thousands_separator()


def decimal_separator(_value: Any = None) -> str:
    """``humanize_decimal_separator``: the locale's decimal separator."""
    return humanize.decimal_separator()


FILTERS: dict[str, Callable[..., Any]] = {
    "humanize_naturalsize": naturalsize,
    "humanize_naturaldate": naturaldate,
    "humanize_naturalday": naturalday,
    "humanize_naturaldelta": naturaldelta,
    "humanize_naturaltime": naturaltime,
    "humanize_precisedelta": precisedelta,
    "humanize_ordinal": ordinal,
    "humanize_intcomma": intcomma,
    "humanize_intword": intword,
    "humanize_apnumber": apnumber,
    "humanize_fractional": fractional,
    "humanize_scientific": scientific,
    "humanize_clamp": clamp,
    "humanize_metric": metric,
    "humanize_thousands_separator": thousands_separator,
    "humanize_decimal_separator": decimal_separator,
}
"""Filter name -> function, as ``jinja2-humanize-extension`` names them."""
