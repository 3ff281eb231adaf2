"""Whose scan lock is it? The gateway's scan lock names only an actor (the API token's user,
shared by every client that uses the token, a manual run included) and the time it was granted,
and the API has no field for a caller's own token. So Stoker keeps a record of each lock it
took: the actor and grant time the gateway answered, with the run that took it. A held lock is
Stoker's own when both match that record; any other lock belongs to someone else and blocks.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeGuard

import attrs

from stoker_core import jsontext

RECORD_LIMIT = 64 * 1024  # bytes of the record read at most: it holds two small entries
UNANSWERED_SLACK = 2.0  # seconds: `remaining` is whole seconds on the wire


@attrs.frozen(slots=True, kw_only=True)
class HeldLock:
    """A scan lock as the gateway reports it; `actor` and `timestamp` (ms) identify it."""

    actor: str
    remaining: float  # seconds until it expires
    timestamp: int  # epoch ms when it was granted

    @classmethod
    def from_reply(cls, body: Any) -> HeldLock | None:
        """The lock in a scan-lock reply `{actor, remaining, timestamp}`, or None if malformed."""
        if not isinstance(body, dict):
            return None
        actor, remaining, stamp = body.get("actor"), body.get("remaining"), body.get("timestamp")
        if not (isinstance(actor, str) and _is_number(remaining) and _is_number(stamp)):
            return None
        return cls(actor=actor, remaining=float(remaining), timestamp=int(stamp))


@attrs.frozen(slots=True, kw_only=True)
class LockRecord:
    """A lock this data directory's Stoker took: what the gateway granted, and which run."""

    actor: str
    timestamp: int
    run: str

    def names(self, held: HeldLock) -> bool:
        """True when `held` is the very lock this record was written for."""
        return (held.actor, held.timestamp) == (self.actor, self.timestamp)


def parse_records(text: str) -> dict[str, LockRecord]:
    """The records by scan kind; a damaged or foreign record is no record (nothing is owned)."""
    try:
        body = jsontext.loads(text)
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    out: dict[str, LockRecord] = {}
    for kind, entry in body.items():
        if not isinstance(entry, dict):
            continue
        actor, stamp, run = entry.get("actor"), entry.get("timestamp"), entry.get("run")
        if isinstance(actor, str) and _is_number(stamp) and isinstance(run, str):
            out[str(kind)] = LockRecord(actor=actor, timestamp=int(stamp), run=run)
    return out


def records_json(records: dict[str, LockRecord]) -> str:
    """The wire form of `parse_records`."""
    return json.dumps({k: attrs.asdict(r) for k, r in sorted(records.items())}, indent=2)


def taken_by_unanswered_attempt(
    held: HeldLock, *, actor: str, hold_seconds: float, since_attempt: float
) -> bool:
    """True when `held` can only be the lock an unanswered request of ours took: our actor, and
    granted no earlier than that request was sent (its age is `hold_seconds - remaining`)."""
    age = hold_seconds - held.remaining
    return held.actor == actor and age <= since_attempt + UNANSWERED_SLACK


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
