"""Planning a new commit from what it changed costs steps in proportion to the change: the files
the manifest carries forward unchanged are kept without being compared or walked one by one
(issue 18). Steps are counted, never timed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.helpers import context, gs_with
from stoker_core import desired, planning, profiles
from stoker_core.manifest import Manifest, Record
from stoker_core.plans import Action, Reason, SyncPlan, apply_to
from stoker_core.recorded import RecordedTree, paths_to_check
from stoker_core.trees import LiveEntry, MemorySnapshot, MemoryTree

FILES = 2_000


class CountingTree(RecordedTree):
    """A RecordedTree that counts the entries its walks hand to the planner one by one."""

    walked = 0

    def walk(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        for entry in super().walk(path, prune):
            self.walked += 1
            yield entry

    def walk_real(
        self, path: str, prune: Callable[[str], bool], deferred: list[str]
    ) -> Iterator[LiveEntry]:
        for entry in super().walk_real(path, prune, deferred):
            self.walked += 1
            yield entry


def _manifest_after(plan: SyncPlan, live: MemoryTree) -> Manifest:
    records = {}
    for op in plan.operations:
        entry = live.lstat(op.path)
        if op.action in (Action.WRITE, Action.KEEP) and entry is not None:
            records[op.path] = Record(
                op.blob, entry.size, entry.mtime_ns, entry.inode, op.mode, "c1", entry.ctime_ns
            )
    return Manifest(commit="c1", profile="default", records=records, dirs=plan.dirs)


def _repository() -> MemorySnapshot:
    files = {}
    for i in range(FILES // 2):
        view = f"src/projects/p{i % 10}/views/v{i}"
        files[f"{view}/view.json"] = b'{"v": %d}' % i
        files[f"{view}/resource.json"] = b'{"r": %d}' % i
    return MemorySnapshot(files=files)


def test_a_one_file_change_in_a_2000_file_manifest_is_planned_looking_at_a_few_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    effective = profiles.resolve(
        gs_with([{"source": "src/projects", "destination": "projects"}]).spec.sync, None
    )
    snap = _repository()
    first = planning.plan(desired.build(effective, snap, context()), MemoryTree())
    live = apply_to(first, MemoryTree(), snap.blobs())
    manifest = _manifest_after(first, live)
    assert len(manifest.records) == FILES
    changed = dict(snap.files)
    changed["src/projects/p3/views/v13/view.json"] = b'{"v": "changed"}'
    tree = desired.build(effective, MemorySnapshot(files=changed), context())

    compared: list[Any] = []
    compare = planning._compare

    def counting_compare(*args: Any, **kwargs: Any) -> Any:
        compared.append(args[0])
        return compare(*args, **kwargs)

    monkeypatch.setattr(planning, "_compare", counting_compare)
    view = CountingTree(live, manifest, paths_to_check(tree, manifest))
    plan = planning.plan(tree, view, manifest)

    assert [(op.action, op.path) for op in plan.operations if op.action is not Action.KEEP] == [
        (Action.WRITE, "projects/p3/views/v13/view.json")
    ]
    assert plan.paths(Action.KEEP, Reason.UNCHANGED) == sorted(
        manifest.records.keys() - {"projects/p3/views/v13/view.json"}
    )
    # The changed file and its sibling are compared, and only the folders leading to them are
    # listed: projects (10 folders), p3 (views), p3/views (100 folders), v13 (2 files). The
    # whole tree holds 2,000 files in 1,111 folders.
    assert len(compared) <= 2, len(compared)
    assert view.walked <= 10 + 1 + 100 + 2, view.walked
