"""File contents on both sides of a plan, read for `--diff` and handed to the core to compare.

The new side is the desired tree (rendered content, or the blob from the commit); the old side is
a base commit's desired tree or the live data directory (read without following links). Files
larger than the diff limit are never read, nor are deleted ones (the plan says they go); at most
MAX_FILES files are diffed per plan.
"""

from __future__ import annotations

from collections.abc import Callable

from stoker_agent.localtree import LocalTree
from stoker_core.desired import DesiredTree
from stoker_core.diffs import MAX_BYTES, Budget, FileDiff, diff
from stoker_core.plans import Action, SyncPlan
from stoker_core.secretvalues import Secrets
from stoker_core.trees import Kind, RepoEntry, RepoSnapshot

MAX_FILES = 1_000  # files diffed per plan; the rest are counted

# A side of the comparison: path → (size, reader) or None when the path is absent there.
Side = Callable[[str], "tuple[int, Callable[[], bytes]] | None"]


def tree_side(tree: DesiredTree, snapshot: RepoSnapshot) -> Side:
    """A desired tree as a side: rendered content as it is, other files read from the commit."""

    def look(path: str) -> tuple[int, Callable[[], bytes]] | None:
        f = tree.files.get(path)
        if f is None:
            return None
        if f.content is not None:
            content = f.content
            return f.size, lambda: content
        return f.size, lambda: snapshot.read(f.source)

    return look


def plan_side(plan: SyncPlan, snapshot: RepoSnapshot) -> Side:
    """What a plan writes, as a side: rendered content as planned, other files by blob id."""
    writes = {op.path: op for op in plan.operations if op.action is Action.WRITE}

    def look(path: str) -> tuple[int, Callable[[], bytes]] | None:
        op = writes.get(path)
        if op is None:
            return None
        if op.content is not None:
            content = op.content
            return len(content), lambda: content
        return op.size, lambda: snapshot.read(RepoEntry(path, Kind.FILE, op.blob))

    return look


def live_side(live: LocalTree) -> Side:
    """The data directory as a side (a path that is not a regular file counts as absent)."""

    def look(path: str) -> tuple[int, Callable[[], bytes]] | None:
        entry = live.lstat(path)
        if entry is None or entry.kind != "file":
            return None
        return entry.size, lambda: live.read(path)

    return look


def file_diffs(
    plan: SyncPlan, before: Side, after: Side, secrets: Secrets
) -> tuple[list[FileDiff], int]:
    """Diffs of the plan's changed files, in path order, and how many were left out."""
    paths = sorted({*plan.added, *plan.modified, *plan.deleted})
    budget = Budget()
    out = [_one(path, before(path), after(path), secrets, budget) for path in paths[:MAX_FILES]]
    return out, max(0, len(paths) - MAX_FILES)


def _one(
    path: str,
    old: tuple[int, Callable[[], bytes]] | None,
    new: tuple[int, Callable[[], bytes]] | None,
    secrets: Secrets,
    budget: Budget,
) -> FileDiff:
    if new is None:  # a deletion is said by the plan; its old content is not worth a review
        return FileDiff(
            path=path,
            change="deleted",
            binary=False,
            size_before=None if old is None else old[0],
            size_after=None,
        )
    sides = [s for s in (old, new) if s is not None]
    if any(size > MAX_BYTES for size, _ in sides):
        change = "added" if old is None else "deleted" if new is None else "modified"
        return FileDiff(
            path=path,
            change=change,
            binary=False,
            size_before=None if old is None else old[0],
            size_after=None if new is None else new[0],
            note=f"not diffed: over {MAX_BYTES // 1024} KiB on a side",
        )
    return diff(
        path,
        None if old is None else old[1](),
        None if new is None else new[1](),
        secrets,
        budget,
    )
