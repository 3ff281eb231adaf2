"""Drift: managed files changed or removed behind Stoker's back, found with the manifest.

Ignition rewrites `resource.json` itself (`attributes.lastModification` and its signature) when
it loads a resource; those edits are not drift, so both sides are normalised before comparing.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from stoker_core.manifest import Manifest
from stoker_core.trees import Kind, LiveTree

_IGNITION_OWNED = ("lastModification", "lastModificationSignature")


class DriftKind(enum.StrEnum):
    """How a managed file drifted."""

    MODIFIED = "modified"
    DELETED = "deleted"


@attrs.frozen(slots=True)
class Drift:
    """One drifted path."""

    path: str
    kind: DriftKind


def normalise_resource(content: bytes) -> Any:
    """The parts of a resource.json that Stoker owns (Ignition's stamps removed), or None."""
    try:
        body = json.loads(content)
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


def find_drift(
    manifest: Manifest,
    live: LiveTree,
    read_live: Callable[[str], bytes],
    read_recorded: Callable[[str], bytes],
    paths: Iterable[str] | None = None,
) -> list[Drift]:
    """Compare every recorded file (or `paths`) with the live tree; return drift, sorted."""
    found: list[Drift] = []
    for path in sorted(paths if paths is not None else manifest.records):
        record = manifest.records.get(path)
        if record is None:
            continue
        entry = live.lstat(path)
        if entry is None or entry.kind is not Kind.FILE:
            found.append(Drift(path, DriftKind.DELETED))
            continue
        if (entry.size, entry.mtime_ns, entry.inode) == (
            record.size,
            record.mtime_ns,
            record.inode,
        ):
            continue
        if entry.size == record.size and live.blob_id(path) == record.blob:
            continue
        if is_resource_manifest(path) and stamped_equal(read_recorded(path), read_live(path)):
            continue
        found.append(Drift(path, DriftKind.MODIFIED))
    return found
