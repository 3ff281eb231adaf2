"""Planning a new commit from what it changed costs steps in proportion to the change: the files
the manifest carries forward unchanged are kept without being compared or walked one by one
(issue 18). Steps are counted, never timed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.helpers import context, gs_with
from core.test_properties import (
    _consistent,
    _manifest_after,
    _prefixes,
    _synced_then_committed,
    edits,
    paths,
    scenarios,
)
from stoker_core import desired, planning, profiles
from stoker_core.desired import DesiredTree
from stoker_core.errors import PlanRefused
from stoker_core.globs import GlobSet
from stoker_core.manifest import Manifest, Record
from stoker_core.paths import parents
from stoker_core.plans import Action, Reason, apply_to
from stoker_core.recorded import RecordedTree, paths_to_check
from stoker_core.trees import LiveEntry, MemorySnapshot, MemoryTree, blob_id

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
    manifest = _manifest_after(first, live, ctimes=True)
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


def test_a_full_check_of_files_stoker_wrote_unchanged_compares_none_of_them_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree, live, manifest = _written_with_ctimes()
    live.put("projects/p1/views/v1/view.json", b"drifted")  # another file now
    content, _ = live.files["projects/p3/views/v3/view.json"]
    live.files["projects/p3/views/v3/view.json"] = (content, 0o755)  # made executable

    compared: list[str] = []
    compare = planning._compare

    def counting_compare(*args: Any, **kwargs: Any) -> Any:
        compared.append(args[0].path)
        return compare(*args, **kwargs)

    monkeypatch.setattr(planning, "_compare", counting_compare)
    plan = planning.plan(tree, live, manifest)  # a full check: every file walked for real

    assert sorted(compared) == [
        "projects/p1/views/v1/view.json",
        "projects/p3/views/v3/view.json",
    ]
    assert [(op.path, op.reason) for op in plan.operations if op.action is not Action.KEEP] == [
        ("projects/p1/views/v1/view.json", Reason.CONTENT_CHANGED),
        ("projects/p3/views/v3/view.json", Reason.MODE_CHANGED),
    ]
    assert len(plan.paths(Action.KEEP, Reason.UNCHANGED)) == FILES - 2


class EntryByEntry:
    """The same view as a plain LiveTree: the planner walks it one entry at a time."""

    def __init__(self, tree: RecordedTree) -> None:
        self._tree = tree

    def lstat(self, path: str) -> LiveEntry | None:
        return self._tree.lstat(path)

    def walk(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        return self._tree.walk(path, prune)

    def blob_id(self, path: str) -> str:
        return self._tree.blob_id(path)


LIE = st.sampled_from(["mode", b"1", b"2", b"{}"])  # the mode flipped, or another content


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), edits, edits, st.data(), st.sets(paths, max_size=4), st.booleans())
def test_taking_the_recorded_part_in_bulk_plans_what_walking_it_entry_by_entry_plans(
    scenario: tuple[list[dict[str, object]], MemorySnapshot, MemoryTree],
    commit_edits: dict[str, bytes | None],
    drift: dict[str, bytes | None],
    data: st.DataObject,
    extra: set[str],
    all_checked: bool,
) -> None:
    """Whatever the view is told to check (even too little: carried files that differ are then
    compared as the recorded entries they are), whatever drifted and whatever the manifest
    says (it may lie about a file: another content or mode, or one that was never written)."""
    synced, manifest, _, tree = _synced_then_committed(scenario, commit_edits, ctimes=True)
    for path, content in _consistent({p: c or b"" for p, c in drift.items()}).items():
        if drift[path] is None:
            synced.remove(path)
        elif not any(p in synced.files for p in _prefixes(path)) and path not in synced.dirs:
            synced.put(path, content)
    check = (paths_to_check(tree, manifest) if all_checked else set()) | extra
    records = dict(manifest.records)
    liars = st.sampled_from(sorted(records)) if records else paths
    lies = data.draw(st.dictionaries(st.one_of(liars, paths), LIE, max_size=3))
    for path, lie in lies.items():
        blob, size, mtime_ns, inode, mode, commit, ctime_ns = records.get(
            path, Record(blob_id(b"1"), 1, 0, 0, 0o644, "")
        )
        if lie == "mode":
            mode ^= 0o111
        else:
            blob = blob_id(lie)
        records[path] = Record(blob, size, mtime_ns, inode, mode, commit, ctime_ns)
    manifest = attrs.evolve(manifest, records=records)
    view = RecordedTree(synced, manifest, check)
    outcomes = []
    for seen in (view, EntryByEntry(view)):
        try:
            outcomes.append(planning.plan(tree, seen, manifest))
        except PlanRefused as e:
            outcomes.append(e.problems)
        except KeyError as e:  # a lie sent it to read a file that is not there, as it may
            outcomes.append(repr(e))
    assert outcomes[0] == outcomes[1]


def test_a_mapping_inside_a_folder_another_mapping_excludes_is_walked_not_rewritten() -> None:
    # The profile excludes projects/p/cache, where a second mapping puts its files: the walk of
    # projects prunes it, so the second mapping's root is walked on its own (it was not, and its
    # files were written again at every sync, whoever planned).
    gs = gs_with(
        [
            {"source": "src/projects", "destination": "projects"},
            {"source": "src/cache", "destination": "projects/p/cache/c"},
        ],
        excludePatterns=["projects/p/cache"],
    )
    effective = profiles.resolve(gs.spec.sync, None)
    files = {"src/projects/p/a.json": b"1", "src/projects/q/b.json": b"1", "src/cache/x": b"1"}
    snap = MemorySnapshot(files=files)
    first = planning.plan(desired.build(effective, snap, context()), MemoryTree())
    live = apply_to(first, MemoryTree(), snap.blobs())
    manifest = _manifest_after(first, live, ctimes=True)
    assert "projects/p/cache/c/x" in manifest.records
    snap = MemorySnapshot(files={**files, "src/projects/q/b.json": b"2"})
    tree = desired.build(effective, snap, context())

    quick = planning.plan(
        tree, RecordedTree(live, manifest, paths_to_check(tree, manifest)), manifest
    )

    assert quick == planning.plan(tree, live, manifest)
    assert {(op.action, op.path) for op in quick.operations if op.action is not Action.KEEP} == {
        (Action.WRITE, "projects/q/b.json"),
    }
    # Walked as the mapping's own: a stray file there is the mapping's to remove; one in the
    # excluded folder beside it stays.
    live.put("projects/p/cache/c/stray", b"s")
    live.put("projects/p/cache/kept", b"k")
    full = planning.plan(tree, live, manifest)
    assert {(op.action, op.path) for op in full.operations if op.action is not Action.KEEP} == {
        (Action.WRITE, "projects/q/b.json"),
        (Action.DELETE, "projects/p/cache/c/stray"),
    }


@pytest.mark.parametrize("field", ["ctime_ns", "mtime_ns", "inode", "size", "blob"])
def test_a_full_check_compares_a_file_whose_record_differs_from_its_lstat_in_any_field(
    field: str,
) -> None:
    # The bulk trust test (planning._keep_as_written) must ask what _as_written asks: the
    # ctime is what a writer that puts the old mtime back cannot forge.
    tree, live, manifest = _written_with_ctimes()
    path = "projects/p2/views/v2/view.json"
    record = manifest.records[path]
    forged = record._replace(**{field: "0" * 40 if field == "blob" else getattr(record, field) + 7})
    manifest = attrs.evolve(manifest, records={**manifest.records, path: forged})
    plan = planning.plan(tree, live, manifest)
    changed = [(op.path, op.reason) for op in plan.operations if op.reason is not Reason.UNCHANGED]
    assert changed == [(path, Reason.VERIFIED)]  # hashed: the same content, kept


def _written_with_ctimes() -> tuple[DesiredTree, MemoryTree, Manifest]:
    """The test repository's desired tree, written into a live tree, and the manifest (with
    ctimes) that sync would have left."""
    effective = profiles.resolve(
        gs_with([{"source": "src/projects", "destination": "projects"}]).spec.sync, None
    )
    snap = _repository()
    tree = desired.build(effective, snap, context())
    live = apply_to(planning.plan(tree, MemoryTree()), MemoryTree(), snap.blobs())
    return tree, live, _manifest_after(planning.plan(tree, MemoryTree()), live, ctimes=True)


FOLDER_PARTS = st.sampled_from(["a", "b", "a-", ".resources", "c"])
RECORDED = st.sets(st.lists(FOLDER_PARTS, min_size=1, max_size=4).map("/".join), max_size=12)
HELD = st.sets(st.sampled_from(["**/.resources/**", "a/**", "**/b/**", "c/a/**", "a-/*/**"]))


@given(RECORDED, HELD, st.sampled_from(["", "a", "a/b", "c", "a-"]))
def test_the_recorded_part_is_taken_as_a_walk_that_enters_no_held_folder_would_find_it(
    recorded: set[str], held: set[str], below: str
) -> None:
    # Reference: folder by folder from the top, never entering one the patterns hold, as the
    # walk of a real tree does (the bulk code takes every folder's verdict at once instead).
    untouchable = GlobSet(sorted(held))
    records = {path: Record(blob_id(b"1"), 1, 0, 0, 0o644, "", 0) for path in recorded}
    manifest = Manifest(records=records)
    under = [p for p in sorted(records) if not below or p.startswith(below + "/")]
    folders = {
        f for p in under for f in parents(p) if f and (not below or f.startswith(below + "/"))
    }
    kept = sorted(
        f
        for f in folders
        if untouchable.matches(f)
        and not any(untouchable.matches(a) for a in parents(f) if a in folders)
    )
    inside = tuple(f + "/" for f in kept)
    expected = (
        sorted(f for f in folders if not inside or not f.startswith(inside)),
        [p for p in under if not inside or not p.startswith(inside)],
        kept,
    )
    held: list[str] = []

    def prune(folder: str) -> bool:
        if untouchable.matches(folder):
            held.append(folder)
            return True
        return False

    dirs, files = RecordedTree(MemoryTree(), manifest, ()).carried(below, prune)
    assert (sorted(dirs), files, sorted(held)) == expected
