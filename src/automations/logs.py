"""Logging set-up: plain text or one JSON object per line, with correlation ids as fields.

Call sites pass ids through ``extra``, e.g. ``logger.info("fired", extra={"automation_id": a})``;
the JSON formatter emits every such field. Nothing here ever logs event payloads, and every line
goes through ``domain.redaction`` first: a URL in a message (a library's, say) loses its
password, query values and tokens. httpx's own request lines, which name each URL, are not
logged below WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from automations.domain import redaction

QUIET_LOGGERS = ("httpx", "httpcore")
"""Libraries whose INFO lines name every URL they call: logged from WARNING up only."""

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Returns the JSON line for ``record``."""
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the extra fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Returns the text line for ``record``."""
        line = super().format(record)
        extras = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        ]
        return f"{line} {' '.join(extras)}" if extras else line


class RedactingFilter(logging.Filter):
    """Masks the secrets of URLs in a record's message and extra fields (``domain.redaction``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrites ``record`` in place; never drops it."""
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redaction.text(message), ()
        for key, value in vars(record).items():
            if key not in _STANDARD and isinstance(value, str) and "://" in value:
                setattr(record, key, redaction.text(value))
        return True


def configure(*, level: str = "INFO", json_lines: bool = False) -> None:
    """Configures the root logger to write to stderr, secrets masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
