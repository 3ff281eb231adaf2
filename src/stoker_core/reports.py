"""The wire forms of a plan and of errors for `--output json` (schemas in docs/schemas/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stoker_core.errors import Problem
from stoker_core.plans import Action, SyncPlan
from stoker_core.resources import Change, group

if TYPE_CHECKING:
    from stoker_core.diffs import FileDiff  # diffs come with --diff only

SCHEMA_VERSION = 1


def _by_code_point(paths: Sequence[str]) -> list[str]:
    return sorted(paths)  # Python compares str by code point


def plan_report(
    plan: SyncPlan,
    *,
    ref: str,
    profile: str,
    gateway: str,
    base: dict[str, str] | None = None,
    diffs: Sequence[FileDiff] | None = None,
    diffs_left_out: int = 0,
) -> dict[str, Any]:
    """Return the `stoker plan --output json` object (`base` names the compared commit;
    `diffs` only when they were asked for)."""
    report: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "commit": plan.commit,
        "ref": ref,
        "profile": profile,
        "gateway": gateway,
        "added": _by_code_point(plan.added),
        "modified": _by_code_point(plan.modified),
        "deleted": _by_code_point(plan.deleted),
        "unchanged": plan.unchanged,
        "skipped": [
            {"path": s.path, "reason": str(s.reason), "detail": s.detail}
            for s in sorted(plan.skipped, key=lambda s: (s.path, s.reason, s.detail))
        ],
        "resources": [g.to_json() for g in resource_groups(plan)],
    }
    if base is not None:
        report["base"] = dict(base)
    if diffs is not None:
        report["diffs"] = [d.to_json() for d in diffs]
        report["diffsLeftOut"] = diffs_left_out
    return report


def changes(plan: SyncPlan) -> list[tuple[str, Change]]:
    """Every changed file of a plan with its change."""
    return [
        *((p, Change.ADDED) for p in plan.added),
        *((p, Change.MODIFIED) for p in plan.modified),
        *((p, Change.DELETED) for p in plan.deleted),
    ]


def resource_groups(plan: SyncPlan) -> list[Any]:
    """The plan's changed files grouped by Ignition resource."""
    return group(changes(plan), plan.paths(Action.KEEP))


def several_report(
    plans: Sequence[dict[str, Any]], *, commit: str, ref: str, base: dict[str, str] | None
) -> dict[str, Any]:
    """Return the object for a plan of several gateways: both commits once, a plan each."""
    report: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION, "commit": commit, "ref": ref}
    if base is not None:
        report["base"] = dict(base)
    report["gateways"] = list(plans)
    return report


def error_report(problems: Sequence[Problem]) -> dict[str, Any]:
    """Return the JSON error object printed on stdout when a command fails."""
    return {"schemaVersion": SCHEMA_VERSION, "errors": [p.to_json() for p in problems]}
