"""Go duration strings (`60s`, `1m30s`, `250ms`): parsing and Go-compatible formatting.

`parse_period` also takes a bare number of seconds, as `syncPeriod` does, so every period on
the command line accepts the forms a GatewaySync accepts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decimal import Decimal

_UNITS_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_SECONDS = re.compile(r"\d{1,9}(?:\.\d{1,9})?")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Parse a Go duration such as `1m30s` into seconds; raise ValueError with a hint if bad."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    parts: list[tuple[str, int]] = []
    pos = 0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            raise ValueError(
                f'"{text}" is not a duration; write a number with a unit, e.g. "30s", "5m", "1h30m"'
            )
        parts.append((match.group(1), _UNITS_NS[match.group(2)]))
        pos = match.end()
    if pos == 0:
        raise ValueError(f'"{text}" is not a duration; write e.g. "30s", "5m", "1h30m"')
    return sign * _seconds(parts)


def _seconds(parts: list[tuple[str, int]]) -> float:
    """The sum of (number, nanoseconds a unit) in seconds. Whole numbers in int arithmetic:
    below 10**28 Decimal's is exact too and both round the quotient once, so the result is the
    same without importing decimal (2 ms of every `stoker` start-up, issue 18)."""
    if all(number.isdigit() for number, _ in parts):
        total = sum(int(number) * unit for number, unit in parts)
        if total < 10**28:
            return total / 1_000_000_000
    from decimal import Decimal

    exact = sum((Decimal(number) * unit for number, unit in parts), Decimal(0))
    return float(exact / Decimal(1_000_000_000))


def parse_period(text: str) -> float:
    """Parse a period given as a bare number of seconds (`30`) or a Go duration (`30s`, `5m`)."""
    body = text.strip()
    if _SECONDS.fullmatch(body):
        return float(body)
    try:
        return parse_duration(body)
    except ValueError:
        raise ValueError(
            f'"{text}" is not a period; write seconds ("30") or a duration ("30s", "5m", "1h30m")'
        ) from None


def format_duration(seconds: float) -> str:
    """Format seconds the way Go's time.Duration.String does (`1m0s`, `1.234s`, `850ms`, `0s`)."""
    ns = round(seconds * 1_000_000_000)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    from decimal import Decimal  # only for a status or a message, not a sync's start-up

    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(Decimal(ns) / size) + unit
    hours, rem = divmod(ns, 3_600_000_000_000)
    minutes, rem = divmod(rem, 60_000_000_000)
    secs = _trim(Decimal(rem) / 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


def _trim(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
