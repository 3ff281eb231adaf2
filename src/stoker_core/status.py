"""The status record a sync writes (agent → status ConfigMap, `stoker sync` → status.json).

Beside the last sync, an agent reports what a fleet rollout reads (issue 17): that it follows
per-gateway targets (`readsTargets`), how many attempts of its commit failed in a row
(`failures`), its last syncs (`history`) and, over a rollout's health window, how long its
gateway has stayed healthy at the commit (`health`).
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from stoker_core.fieldwise import FIELDWISE

MAX_LISTED_PATHS = 100  # per kind; exact counts are always given
HISTORY_ENTRIES = 10  # syncs an agent's status keeps
HISTORY_BYTES = 8 * 1024  # and at most this much of them as JSON: the oldest go first
ERROR_CHARS = 200  # an error or problem in `history` and `health` is cut to this


def cut(text: str, limit: int = ERROR_CHARS) -> str:
    """`text` in at most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@attrs.frozen(slots=True, kw_only=True)
class Past:
    """One earlier sync, as `history` keeps it."""

    __eq__, __hash__, __repr__ = FIELDWISE

    time: str
    result: str
    commit: str
    added: int = 0
    modified: int = 0
    deleted: int = 0
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """The wire form."""
        return {
            "time": self.time,
            "result": self.result,
            "commit": self.commit,
            "added": self.added,
            "modified": self.modified,
            "deleted": self.deleted,
            "error": self.error,
        }


@attrs.frozen(slots=True, kw_only=True)
class HealthReport:
    """How the agent's gateway has held at `commit` over a rollout's health window."""

    __eq__, __hash__, __repr__ = FIELDWISE

    commit: str
    healthy_for: float  # seconds in a row, by the agent's monotonic clock (0 after a failure)
    since: str  # RFC3339: when the window started
    checked_at: str  # RFC3339: the last check ("" before the first)
    unhealthy: bool = False  # two checks in a row failed: the rollout counts it as failed
    problem: str = ""  # what the last failed check found (at most ERROR_CHARS)

    def to_json(self) -> dict[str, Any]:
        """The wire form."""
        return {
            "commit": self.commit,
            "healthyFor": round(self.healthy_for, 3),
            "since": self.since,
            "checkedAt": self.checked_at,
            "unhealthy": self.unhealthy,
            "problem": self.problem,
        }


@attrs.frozen(slots=True, kw_only=True)
class SyncRecord:
    """Everything one sync did, for people and for the controller."""

    __eq__, __hash__, __repr__ = FIELDWISE

    result: str
    commit: str = ""
    ref: str = ""
    profile: str = ""
    gateway: str = ""
    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    drift: tuple[tuple[str, str], ...] = ()
    drift_checked: bool = True  # False: planned from the commit's changes; drift waits
    dry_run: bool = False
    duration_seconds: float = 0.0
    scan: str = ""
    designer_blocked: bool = False
    error: str = ""
    agent_version: str = ""
    time: str = ""
    skip: str = ""  # why a Skipped sync was skipped: "backup" or "paused" (standings.Skip)
    restart: str = ""  # with RestartRequired: why the gateway needs a restart
    reads_targets: bool = False  # an agent that follows the metadata's per-gateway targets
    failures: int = 0  # attempts of this commit and profile that failed in a row
    history: tuple[Past, ...] = ()  # the last syncs, oldest first (`remember`)
    health: HealthReport | None = None  # over a rollout's health window, and after it

    def to_json(self) -> dict[str, Any]:
        """The wire form: counts always exact, path lists cut at MAX_LISTED_PATHS."""

        def listed(paths: tuple[str, ...]) -> dict[str, Any]:
            return {"count": len(paths), "paths": list(paths[:MAX_LISTED_PATHS])}

        body = {
            "schemaVersion": 1,
            "result": self.result,
            "commit": self.commit,
            "ref": self.ref,
            "profile": self.profile,
            "gateway": self.gateway,
            "time": self.time,
            "durationSeconds": round(self.duration_seconds, 3),
            "dryRun": self.dry_run,
            "added": listed(self.added),
            "modified": listed(self.modified),
            "deleted": listed(self.deleted),
            "drift": [{"path": p, "kind": k} for p, k in self.drift[:MAX_LISTED_PATHS]],
            "driftCount": len(self.drift),
            "driftChecked": self.drift_checked,
            "scan": self.scan,
            "designerBlocked": self.designer_blocked,
            "error": self.error,
            "agentVersion": self.agent_version,
            "skipReason": self.skip,
            "restart": self.restart,
            "readsTargets": self.reads_targets,
            "failures": self.failures,
            "history": [p.to_json() for p in self.history],
        }
        if self.health is not None:
            body["health"] = self.health.to_json()
        return body


def remember(history: tuple[Past, ...], record: SyncRecord) -> tuple[Past, ...]:
    """`history` with `record` as its newest entry, keeping the last HISTORY_ENTRIES within
    HISTORY_BYTES. A sync that says what the newest entry says (the drift check every
    syncPeriod that finds nothing, an error retried) is not a new entry: the history shows
    changes, and the status is not rewritten for nothing (`worth_writing`)."""
    past = Past(
        time=record.time,
        result=record.result,
        commit=record.commit,
        added=len(record.added),
        modified=len(record.modified),
        deleted=len(record.deleted),
        error=cut(record.error),
    )
    if history and attrs.evolve(history[-1], time=past.time) == past:
        return history
    kept = (*history, past)[-HISTORY_ENTRIES:]
    while len(kept) > 1 and len(json.dumps([p.to_json() for p in kept])) > HISTORY_BYTES:
        kept = kept[1:]
    return kept


HEARTBEAT_SECONDS = 600.0  # an unchanged status is still written this often: the agent lives


def worth_writing(
    previous: SyncRecord | None, record: SyncRecord, *, written_at: float, now: float
) -> bool:
    """Whether to publish `record`: it says something new (anything but its time and
    duration), or the last write is older than the heartbeat. A drift check every syncPeriod
    that finds nothing must not rewrite the status (and wake the controller) each time."""
    if previous is None or not 0 <= now - written_at < HEARTBEAT_SECONDS:
        return True
    same = attrs.evolve(record, time=previous.time, duration_seconds=previous.duration_seconds)
    return same != previous
