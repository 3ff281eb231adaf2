"""The status record a sync writes (agent → status ConfigMap, `stoker sync` → status.json)."""

from __future__ import annotations

from typing import Any

import attrs

MAX_LISTED_PATHS = 100  # per kind; exact counts are always given


@attrs.frozen(slots=True, kw_only=True)
class SyncRecord:
    """Everything one sync did, for people and for the controller."""

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

    def to_json(self) -> dict[str, Any]:
        """The wire form: counts always exact, path lists cut at MAX_LISTED_PATHS."""

        def listed(paths: tuple[str, ...]) -> dict[str, Any]:
            return {"count": len(paths), "paths": list(paths[:MAX_LISTED_PATHS])}

        return {
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
        }


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
