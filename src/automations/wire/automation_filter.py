"""``ListAutomationsRequest.filter``: a small subset of AIP-160, parsed into a predicate.

The grammar::

    filter = [ term { "AND" term } ]
    term   = field ( "=" | ":" ) value
    value  = "double-quoted" | 'single-quoted' | bare-word

``=`` is equality and ``:`` is "has": a substring of a string field, a member of ``tags``. The
fields are the Automation message's::

    name            the resource name, automations/{automation}    = or :
    display_name    Prefect's name                                  = or :
    description                                                     = or :
    owner_resource                                                  = or :
    enabled         true or false                                   =
    tags            one tag                                         :
    trigger.type    event, compound, sequence or metric (the top-level) =

String comparisons are case-sensitive. Anything else (``OR``, ``NOT``, ``-``, parentheses,
``!=``, ``<``, other fields, wildcards in values) is an ``InvalidArgument`` on ``filter``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from automations.domain import automations, errors
from automations.wire import names

FIELD = "filter"
"""The request field every error names."""
REASON = "INVALID_FILTER"
"""The AIP-193 reason of every error."""
SUPPORTED = (
    "supported: terms joined by AND, each one of name, display_name, description or "
    'owner_resource = "text" or : "substring"; enabled = true|false; tags:"tag"; '
    "trigger.type = event|compound|sequence|metric"
)
"""What the errors say is supported."""
TRIGGER_TYPES = ("event", "compound", "sequence", "metric")
"""The values of ``trigger.type``."""

_STRING_FIELDS: dict[str, Callable[[automations.Automation], str]] = {
    "name": lambda a: names.automation_name(a.id),
    "display_name": lambda a: a.name,
    "description": lambda a: a.description,
    "owner_resource": lambda a: a.owner_resource or "",
}
_OPERATORS = ("<=", ">=", "!=", "=", ":", "<", ">", "(", ")")
_UNSUPPORTED_WORDS = ("OR", "NOT")


@dataclasses.dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "string" or "op"
    text: str
    position: int


@dataclasses.dataclass(frozen=True, slots=True)
class AutomationFilter:
    """A parsed filter: every term must hold.

    Attributes:
        terms: One predicate per term.
        enabled: The value of an ``enabled = ...`` term (None without one), so a store can
            narrow its query; ``matches`` checks it too.
    """

    terms: tuple[Callable[[automations.Automation], bool], ...] = ()
    enabled: bool | None = None

    def matches(self, automation: automations.Automation) -> bool:
        """Whether the automation passes every term."""
        return all(term(automation) for term in self.terms)


def parse(text: str) -> AutomationFilter:
    """Parses a ``ListAutomationsRequest.filter``; an empty one matches every automation.

    Raises:
        errors.InvalidArgument: On ``filter`` (reason ``INVALID_FILTER``), saying where and what
            is supported.
    """
    tokens = _tokenize(text)
    terms: list[Callable[[automations.Automation], bool]] = []
    enabled: bool | None = None
    i = 0
    while i < len(tokens):
        if terms:
            joiner = tokens[i]
            if joiner.kind != "word" or joiner.text != "AND":
                raise _error(joiner.position, f"expected AND, found {joiner.text!r}")
            i += 1
        if i + 3 > len(tokens):
            at = tokens[i].position if i < len(tokens) else len(text)
            raise _error(at, "expected a term: field, '=' or ':', value")
        field, op, value = tokens[i : i + 3]
        i += 3
        term, wanted = _term(field, op, value)
        terms.append(term)
        if wanted is not None:
            if enabled is not None and enabled != wanted:
                raise _error(field.position, "contradictory 'enabled' terms")
            enabled = wanted
    return AutomationFilter(tuple(terms), enabled)


def _term(
    field: _Token, op: _Token, value: _Token
) -> tuple[Callable[[automations.Automation], bool], bool | None]:
    if field.kind != "word" or field.text in _UNSUPPORTED_WORDS:
        raise _error(field.position, f"expected a field name, found {field.text!r}")
    if op.kind != "op" or op.text not in ("=", ":"):
        raise _error(op.position, f"unsupported operator {op.text!r}; only '=' and ':'")
    if value.kind == "op" or (value.kind == "word" and value.text in _UNSUPPORTED_WORDS):
        raise _error(value.position, f"expected a value, found {value.text!r}")
    name, wanted = field.text, value.text
    if name in _STRING_FIELDS:
        get = _STRING_FIELDS[name]
        if op.text == "=":
            return (lambda a: get(a) == wanted), None
        return (lambda a: wanted in get(a)), None
    if name == "enabled":
        if op.text != "=" or wanted not in ("true", "false"):
            raise _error(field.position, "'enabled' takes = true or = false")
        flag = wanted == "true"
        return (lambda a: a.enabled is flag), flag
    if name == "tags":
        if op.text != ":":
            raise _error(op.position, "'tags' takes ':' (has the tag), e.g. tags:\"prod\"")
        return (lambda a: wanted in a.tags), None
    if name == "trigger.type":
        if op.text != "=" or wanted not in TRIGGER_TYPES:
            raise _error(
                field.position, "'trigger.type' takes = event, compound, sequence or metric"
            )
        return (lambda a: a.trigger.type == wanted), None
    raise _error(field.position, f"unknown field {name!r}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "\"'":
            start = i
            i += 1
            chars: list[str] = []
            while i < len(text) and text[i] != c:
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= len(text):
                raise _error(start, "unterminated string")
            i += 1
            value = "".join(chars)
            if "*" in value:
                raise _error(start, "wildcards are not supported; ':' matches a substring")
            tokens.append(_Token("string", value, start))
        elif c == "-" and (not tokens or tokens[-1].kind != "op"):
            raise _error(i, "negation ('-') is not supported")
        elif op := next((o for o in _OPERATORS if text.startswith(o, i)), None):
            tokens.append(_Token("op", op, i))
            i += len(op)
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in "=:!<>()\"'":
                i += 1
            if i == start:  # a character no token starts with (a lone '!', '(' ...)
                raise _error(start, f"unexpected {c!r}")
            word = text[start:i]
            if "*" in word:
                raise _error(start, "wildcards are not supported; ':' matches a substring")
            tokens.append(_Token("word", word, start))
    return tokens


def _error(position: int, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        FIELD, f"{message} (at character {position + 1}); {SUPPORTED}", reason=REASON
    )
