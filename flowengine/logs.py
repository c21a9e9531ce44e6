"""Logging setup: text or JSON lines, with secret values redacted from every record."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from flowengine.masking import MASK, distinctive, mask_credentials, secret_texts, token_pattern

__all__ = [
    "MASK",
    "JsonFormatter",
    "RateLimiter",
    "RedactFilter",
    "add_secrets",
    "redact",
    "setup_logging",
]

_secrets: dict[str, re.Pattern[str]] = {}


def add_secrets(values: Iterable[Any]) -> None:
    """Register resolved secret values (passwords, tokens, connection URLs, header maps) to be
    masked in all log output; see :mod:`flowengine.masking` for what is masked where."""
    for value in values:
        for text in secret_texts(value):
            if distinctive(text) and text not in _secrets:
                _secrets[text] = token_pattern(text)


def redact(text: str) -> str:
    """``text`` with credential positions and registered distinctive secrets masked."""
    text = mask_credentials(text)
    for secret, pattern in _secrets.items():
        if secret in text:
            text = pattern.sub(MASK, text)
    return text


class RedactFilter(logging.Filter):
    """Renders the message once and masks secrets in it (and in exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, node (when a node logged), message."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        node = getattr(record, "node", None)
        if node is not None:
            data["node"] = node
        if record.exc_info:
            data["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def setup_logging(level: str = "info", fmt: str = "text", stream: Any = None) -> logging.Handler:
    """Configure the root logger once for the CLI; returns the handler it installed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_libraries(level)
    return handler


#: Libraries that log per message or per request at INFO: asyncua one line per publish
#: response holding the whole response (~450 KB at 10,000 tags: an edge box's disk in hours),
#: httpx one line per request. Their INFO lines show only with ``--log-level debug``.
CHATTY_LIBRARIES = ("asyncua", "httpx", "httpcore", "pycomm3", "enip", "cpppo", "snap7")
#: Libraries that log every failed request at ERROR with frame dumps, which the nodes already
#: report (rate-limited) as bad quality: held at CRITICAL.
SHOUTING_LIBRARIES = ("pymodbus",)


def quiet_libraries(level: str) -> None:
    """Hold chatty libraries at WARNING unless the user asked for ``debug``."""
    debug = level.lower() == "debug"
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    for name in SHOUTING_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)


class RateLimiter:
    """At most one log line per ``period`` seconds, for errors that may come per batch or per
    message; it counts what it held back, and the next line it lets through says how many."""

    def __init__(self, period: float = 1.0) -> None:
        self.period = period
        self.last = -float("inf")
        self.held = 0

    def allow(self) -> tuple[bool, int]:
        """``(True, held back since the last line)`` when a line may go out now, else
        ``(False, 0)`` (and this one is counted as held back)."""
        now = time.monotonic()
        if now - self.last >= self.period:
            held, self.held, self.last = self.held, 0, now
            return True, held
        self.held += 1
        return False, 0

    def log(
        self,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        level: int,
        text: Callable[[], str],
    ) -> None:
        """Log ``text()`` (built only when it goes out) with the count held back since the last."""
        allowed, held = self.allow()
        if allowed:
            more = f" (+{held} more since last report)" if held else ""
            logger.log(level, "%s%s", text(), more)
