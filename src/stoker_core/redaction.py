"""Removing secrets from text before it reaches a log, a status, an event or an error message."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# Credentials that can hide inside URLs and headers whatever secret values we know of. A scheme
# starts where a scheme word starts (the look-behind): else the scan would restart at every letter
# of a long word, quadratic in the text.
_URL_USERINFO = re.compile(r"(?<![a-zA-Z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_AUTH_HEADER = re.compile(
    r"(?i)(authorization|x-ignition-api-token|private-token)(\s*[:=]\s*)"
    r"((?:bearer|basic|token)\s+)?\S+"
)
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}")

# Secrets shorter than this are not masked by value: masking "a" would shred every message.
MIN_SECRET_LENGTH = 4


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with known secret values and URL/header credentials replaced by ***."""
    for secret in sorted({s.strip() for s in secrets}, key=len, reverse=True):
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
