"""Structured logging for every Stoker process, with secrets removed before any record leaves.

`setup()` installs one handler on the root logger: JSON lines (for collectors) or plain text
(for people). Every record passes `stoker_core.redaction.redact` with the secret values
registered through `register_secret`, plus URL and header credential patterns.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

import attrs

from stoker_core.redaction import redact
from stoker_core.status import SyncRecord

_secrets: set[str] = set()
_lock = threading.Lock()
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def register_secret(value: str) -> None:
    """Remember a secret value (a token, a password) so no log line ever shows it."""
    value = value.strip()
    if value:
        with _lock:
            _secrets.add(value)


def registered() -> tuple[str, ...]:
    """Every secret value registered so far (to mask them in content as well as in logs)."""
    with _lock:
        return tuple(_secrets)


def scrub(text: str) -> str:
    """Return `text` with every registered secret and credential pattern masked."""
    with _lock:
        known = tuple(_secrets)
    return redact(text, known)


def scrub_record(record: SyncRecord) -> SyncRecord:
    """The record with its free-text fields scrubbed, for a status file or ConfigMap."""
    health = record.health
    return attrs.evolve(
        record,
        error=scrub(record.error),
        scan=scrub(record.scan),
        history=tuple(attrs.evolve(p, error=scrub(p.error)) for p in record.history),
        health=None if health is None else attrs.evolve(health, problem=scrub(health.problem)),
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(body, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value…`, scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        )
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f" {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


def setup(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
