"""Drift: managed files changed or removed behind Stoker's back, found with the manifest.

Ignition rewrites `resource.json` itself (`attributes.lastModification` and its signature) when
it loads a resource; those edits are not drift, so both sides are normalised before comparing.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from stoker_core import jsontext
from stoker_core.fieldwise import FIELDWISE
from stoker_core.manifest import Manifest
from stoker_core.plans import Action, Reason, SyncPlan

_IGNITION_OWNED = ("lastModification", "lastModificationSignature")


class DriftKind(enum.StrEnum):
    """How a managed file drifted."""

    MODIFIED = "modified"
    DELETED = "deleted"


@attrs.frozen(slots=True)
class Drift:
    """One drifted path."""

    __eq__, __hash__, __repr__ = FIELDWISE

    path: str
    kind: DriftKind


def normalise_resource(content: bytes) -> Any:
    """The parts of a resource.json that Stoker owns (Ignition's stamps removed), or None."""
    try:
        body = jsontext.loads(content)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("attributes"), dict):
        body["attributes"] = {
            k: v for k, v in body["attributes"].items() if k not in _IGNITION_OWNED
        }
    return body


def is_resource_manifest(path: str) -> bool:
    """Tell whether `path` is an Ignition resource.json (which the gateway stamps itself)."""
    return path == "resource.json" or path.endswith("/resource.json")


def stamped_equal(ours: bytes, theirs: bytes) -> bool:
    """Tell whether two resource.json contents differ only by Ignition's own stamps."""
    mine = normalise_resource(ours)
    return mine is not None and mine == normalise_resource(theirs)


def from_plan(plan: SyncPlan, manifest: Manifest | None) -> list[Drift]:
    """Drift, read off a plan: a managed file the commit did not change (the manifest records
    the same content Stoker wants now) that must nevertheless be rewritten or recreated."""
    if manifest is None:
        return []
    found = []
    for op in plan.changes:  # only writes count: never the thousands of files kept
        record = manifest.records.get(op.path)
        if op.action is not Action.WRITE or record is None or record.blob != op.blob:
            continue
        kind = DriftKind.DELETED if op.reason is Reason.NEW else DriftKind.MODIFIED
        found.append(Drift(op.path, kind))
    return found
