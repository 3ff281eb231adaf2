"""Where each gateway stands: its syncStatus from its agent's last report and the commit it
should be at, whether it counts as in step for `AllGatewaysSynced` and `Ready`, and the bounded
summaries the `RestartRequired` and `Drifted` conditions carry (issue 16 item 2).

Pure: the controller feeds the reports and each gateway's target commit (today the commit it
published for the GatewaySync; per gateway once fleet rollouts publish targets). The table in
docs/gatewaysync.md ("How a report becomes a status") is this module in prose.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from stoker_core.status import ERROR_CHARS, HealthReport, cut
from stoker_core.vocabulary import SyncStatus

# An agent's result at the commit it should be at → the syncStatus shown, for the results that
# count as in step: the files are the commit's and the gateway runs what a scan can load
# (RestartRequired: the rest waits for a restart that is the operator's call; DryRun: the
# profile changes nothing by design, and what differs is raised as Drifted).
IN_STEP: dict[str, SyncStatus] = {
    "Synced": SyncStatus.SYNCED,
    "InSync": SyncStatus.SYNCED,
    "RestartRequired": SyncStatus.RESTART_REQUIRED,
    "DryRun": SyncStatus.DRIFTED,
}
NAMED = 5  # gateways named in a condition message; the rest are counted
PATHS = 3  # paths named per drifted gateway; the count is always exact
PATH_CHARS = 120  # a longer path is cut (the message must stay readable and bounded)
MAX_FAILURES = 1_000_000  # a larger count is read as this (the rules only compare it with 3)
# The agents' wording before they reported `skipReason` (an agent not yet restarted after an
# upgrade still writes it).
_LEGACY_SKIPS = {"Skipped (backup)": "backup", "profile is paused": "paused"}


class Skip(enum.StrEnum):
    """Why an agent skipped a sync."""

    NONE = ""
    BACKUP = "backup"  # a redundancy backup: its primary replicates to it
    PAUSED = "paused"  # the profile is paused


@attrs.frozen(slots=True, kw_only=True)
class Report:
    """What the rules read of an agent's status record (parsed defensively: any field may be
    missing or of the wrong type)."""

    result: str = ""
    commit: str = ""
    skip: Skip = Skip.NONE
    differs: int = 0  # files a dry run would change
    paths: tuple[str, ...] = ()  # the first few of them
    error: str = ""  # what went wrong (at most ERROR_CHARS)
    reads_targets: bool = False  # its agent follows per-gateway targets (format "2")
    failures: int = 0  # attempts of its commit that failed in a row
    health: HealthReport | None = None  # its health window, if it watched one

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Report:
        """Read a status record (`status.json` as the agent wrote it)."""
        given = [record.get(kind) for kind in ("added", "modified", "deleted")]
        changes: list[Mapping[str, Any]] = [c for c in given if isinstance(c, Mapping)]
        counts = [c.get("count") for c in changes]
        listed = [p for c in changes for p in _strings(c.get("paths"))]
        failures = record.get("failures")
        return cls(
            result=_string(record.get("result")),
            commit=_string(record.get("commit")),
            skip=_skip(record),
            differs=sum(n for n in counts if isinstance(n, int) and n > 0),
            paths=tuple(_cut(p) for p in listed[:PATHS]),
            error=cut(_string(record.get("error"))),
            reads_targets=record.get("readsTargets") is True,
            failures=_count(failures),
            health=_health(record.get("health")),
        )


@attrs.frozen(slots=True, kw_only=True)
class Seen:
    """One gateway as the controller sees it: its profile, whether it has an agent, the commit
    it should be at ("" while none is published) and its agent's report, if any."""

    profile: str
    has_sidecar: bool
    target: str
    report: Report | None


@attrs.frozen(slots=True, kw_only=True)
class Standing:
    """A gateway's syncStatus and whether it counts as in step."""

    status: str
    in_step: bool = False
    behind: bool = False  # reports success, but for another commit than its target


def alone(seen: Seen) -> Standing:
    """Where one gateway stands on its own (a skipped backup is settled by `standings`)."""
    report = seen.report
    if not seen.has_sidecar:  # a recreated pod never shows an old Synced (the original's B6)
        return Standing(status=SyncStatus.MISSING_SIDECAR)
    if report is None or not report.result:
        return Standing(status=SyncStatus.PENDING)
    at_target = not seen.target or report.commit == seen.target
    shown = IN_STEP.get(report.result)
    if shown is not None:
        if at_target:
            return Standing(status=shown, in_step=True)
        return Standing(status=SyncStatus.PENDING, behind=True)
    if report.result == SyncStatus.SKIPPED and report.skip is Skip.BACKUP and not at_target:
        return Standing(status=SyncStatus.PENDING, behind=True)
    return Standing(status=report.result)  # Error, Rejected, Blocked, Skipped: as reported


def standings(gateways: Sequence[Seen]) -> list[Standing]:
    """Where each gateway stands, in order. A redundancy backup skipped by design is in step
    when a primary (another gateway of its profile, not itself a skipped backup) is in step at
    the backup's commit: the primary replicates to it. A paused profile's skip never is."""
    alone_ = [alone(g) for g in gateways]
    primaries = {
        (g.profile, g.report.commit)
        for g, s in zip(gateways, alone_, strict=True)
        if s.in_step and g.report is not None and g.report.skip is not Skip.BACKUP
    }
    return [
        attrs.evolve(s, in_step=True)
        if _skipped_backup(g, s) and (g.profile, _commit(g)) in primaries
        else s
        for g, s in zip(gateways, alone_, strict=True)
    ]


def restarts(named: Sequence[tuple[str, Standing]]) -> str:
    """The RestartRequired message: which gateways wait for a restart (empty: none)."""
    waiting = [name for name, s in named if s.status == SyncStatus.RESTART_REQUIRED]
    if not waiting:
        return ""
    return (
        f"{len(waiting)} gateway(s) need a restart to load what was applied: {_names(waiting)}; "
        "restart them when convenient (Stoker never restarts a gateway)"
    )


def drift(named: Sequence[tuple[str, Standing, Report | None]]) -> str:
    """The Drifted message: each gateway whose files differ from Git and that Stoker does not
    change (dryRun, driftPolicy report), with a count and the first few paths (empty: none)."""
    parts = [
        f"{name}: {report.differs} file(s) differ from Git{_listed(report)}"
        for name, s, report in named
        if s.status == SyncStatus.DRIFTED and report is not None
    ]
    if not parts:
        return ""
    more = len(parts) - NAMED
    return "; ".join(parts[:NAMED]) + (f"; and {more} more gateway(s)" if more > 0 else "")


def _listed(report: Report) -> str:
    """` (a, b, c, …)`: the first paths, an ellipsis when there are more."""
    if not report.paths:
        return ""
    more = ", …" if report.differs > len(report.paths) else ""
    return f" ({', '.join(report.paths)}{more})"


def _skipped_backup(seen: Seen, standing: Standing) -> bool:
    report = seen.report
    return (
        standing.status == SyncStatus.SKIPPED and report is not None and report.skip is Skip.BACKUP
    )


def _commit(seen: Seen) -> str:
    return seen.report.commit if seen.report is not None else ""


def _names(names: Sequence[str]) -> str:
    more = len(names) - NAMED
    return ", ".join(names[:NAMED]) + (f" and {more} more" if more > 0 else "")


def _skip(record: Mapping[str, Any]) -> Skip:
    given = _string(record.get("skipReason"))
    if given and given in Skip.__members__.values():
        return Skip(given)
    error = _string(record.get("error"))
    for prefix, skip in _LEGACY_SKIPS.items():
        if record.get("result") == SyncStatus.SKIPPED and error.startswith(prefix):
            return Skip(skip)
    return Skip.NONE


def _count(value: Any) -> int:
    """A non-negative count, bounded (anything else: 0)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, MAX_FAILURES)


def _health(value: Any) -> HealthReport | None:
    """The `health` object, or None when it is absent or not one (a damaged report watched
    nothing: the gateway is not yet healthy for any time)."""
    if not isinstance(value, Mapping):
        return None
    held = value.get("healthyFor")
    if isinstance(held, bool) or not isinstance(held, int | float) or not math.isfinite(held):
        held = 0.0
    return HealthReport(
        commit=_string(value.get("commit")),
        healthy_for=max(float(held), 0.0),
        since=cut(_string(value.get("since")), 40),
        checked_at=cut(_string(value.get("checkedAt")), 40),
        unhealthy=value.get("unhealthy") is True,
        problem=cut(_string(value.get("problem")), ERROR_CHARS),
    )


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _cut(path: str) -> str:
    return path if len(path) <= PATH_CHARS else path[: PATH_CHARS - 1] + "…"
