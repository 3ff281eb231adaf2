"""When the controller looks at a GatewaySync again: at its own `spec.polling.interval` after a
pass that resolved its ref, after a growing backoff (30 s doubling to 5 min) after failures.

The original reset the backoff on every pass while `stoker.io/requested-ref` was set, so a bad
ref requested by a webhook was retried every 30 s forever (B4). Here only a success or a
*different* requested ref (a new request deserves a prompt first try) starts the count again.
"""

from __future__ import annotations

import attrs

from stoker_core.durations import parse_duration
from stoker_core.model import Polling
from stoker_core.outcomes import backoff_delay


@attrs.frozen(slots=True)
class Failures:
    """Consecutive failed passes of one GatewaySync, and the requested ref they were for."""

    count: int = 0
    request: str | None = None  # the stoker.io/requested-ref value; None: the spec's ref


def record(previous: Failures, *, failed: bool, request: str | None) -> Failures:
    """The failure count after a pass that `failed` (or not) while `request` was requested."""
    if not failed:
        return Failures()
    if request != previous.request:
        return Failures(1, request)
    return Failures(previous.count + 1, request)


def polling_seconds(polling: Polling) -> float | None:
    """The polling interval in seconds, or None when polling is disabled."""
    if not polling.enabled:
        return None
    try:
        seconds = parse_duration(polling.interval)
    except ValueError:
        seconds = 60.0  # the original's fallback; validation already reported the field
    return seconds if seconds > 0 else 60.0


def next_pass(
    failures: Failures,
    polling: Polling,
    jitter: float,
    *,
    base: float = 30.0,
    cap: float = 300.0,
) -> float | None:
    """Seconds until the next pass, or None (watch events only: polling is disabled)."""
    if failures.count:
        return backoff_delay(failures.count, jitter, base=base, cap=cap)
    return polling_seconds(polling)
