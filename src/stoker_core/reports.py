"""The wire forms of a plan and of errors for `--output json` (schemas in docs/schemas/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stoker_core.errors import Problem
from stoker_core.plans import SyncPlan

SCHEMA_VERSION = 1


def _by_code_point(paths: Sequence[str]) -> list[str]:
    return sorted(paths)  # Python compares str by code point


def plan_report(plan: SyncPlan, *, ref: str, profile: str, gateway: str) -> dict[str, Any]:
    """Return the `stoker plan --output json` object."""
    return {
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
    }


def error_report(problems: Sequence[Problem]) -> dict[str, Any]:
    """Return the JSON error object printed on stdout when a command fails."""
    return {"schemaVersion": SCHEMA_VERSION, "errors": [p.to_json() for p in problems]}
