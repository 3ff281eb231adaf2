"""Property tests: whatever the repository and live tree hold, a plan stays inside its bounds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from core.helpers import context, gs_with, plan_for
from stoker_core import desired, planning, profiles
from stoker_core.errors import InvalidInput, PlanRefused
from stoker_core.manifest import Manifest, Record
from stoker_core.paths import PROTECTED, RESERVED, is_under
from stoker_core.plans import Action, SyncPlan, apply_to
from stoker_core.recorded import RecordedTree, paths_to_check
from stoker_core.trees import MemorySnapshot, MemoryTree

SEGMENTS = st.sampled_from(["a", "b", "c", ".resources", "local", "x.json", "y.json"])
TOPS = st.sampled_from(["projects", "config", "db", ".stoker", "top.json", "config/resources"])
paths = st.builds(
    lambda top, rest: "/".join([top, *rest]), TOPS, st.lists(SEGMENTS, min_size=0, max_size=3)
)
contents = st.sampled_from([b"1", b"2", b"{}", b"three"])
MAPPINGS = [
    {"source": "src/projects", "destination": "projects"},
    {"source": "src/config", "destination": "config"},
    {"source": "src/one.json", "destination": "top.json"},
    {"source": "src/config/resources", "destination": "config/resources/core"},
    {"source": "src/missing", "destination": "config/resources/dev"},
    {"source": "src", "destination": "."},
]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, object]], MemorySnapshot, MemoryTree]:
    mappings = draw(st.lists(st.sampled_from(MAPPINGS), min_size=1, max_size=3))
    repo_files = _consistent(draw(st.dictionaries(paths, contents, max_size=8)))
    snap = MemorySnapshot(files={f"src/{p}": c for p, c in repo_files.items()})
    snap.files["src/one.json"] = b"one"
    live = MemoryTree()
    for path, content in _consistent(draw(st.dictionaries(paths, contents, max_size=8))).items():
        live.put(path, content)
    return [{**m, "allowEmpty": True} for m in mappings], snap, live


def _consistent(files: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that would need a file and a directory at the same place."""
    out: dict[str, bytes] = {}
    for path in sorted(files):
        if not any(p in out for p in _prefixes(path)):
            out[path] = files[path]
    return out


def _prefixes(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _roots(mappings: list[dict[str, object]], snap: MemorySnapshot) -> list[tuple[str, bool]]:
    out = []
    for m in mappings:
        entry = snap.entry(str(m["source"]))
        if entry is not None:
            dest = str(m["destination"]).strip(".")
            out.append((dest, entry.kind == "dir"))
    return out


def _owned(path: str, roots: list[tuple[str, bool]]) -> bool:
    return any(is_under(path, r) if is_dir else path == r for r, is_dir in roots)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_plans_stay_inside_managed_roots_and_converge(
    scenario: tuple[list[dict[str, object]], MemorySnapshot, MemoryTree],
) -> None:
    mappings, snap, live = scenario
    gs = gs_with(mappings)
    try:
        plan = plan_for(gs, snap, live)
    except (PlanRefused, InvalidInput):
        assume(False)
        return
    roots = _roots(mappings, snap)
    for op in plan.operations:
        assert not op.path.startswith("/")
        assert ".." not in op.path.split("/")
        assert not PROTECTED.matches(op.path), op
        assert not RESERVED.matches(op.path), op
        if op.action in (Action.WRITE, Action.DELETE, Action.RMDIR):
            assert _owned(op.path, roots), op
    after = apply_to(plan, live, snap.blobs())
    for path, (content, _) in live.files.items():
        if not _owned(path, roots) or PROTECTED.matches(path):
            assert after.files.get(path, (None, 0))[0] == content, path
    again = plan_for(gs, snap, after)
    assert not again.has_changes, [op for op in again.operations if op.action is not Action.KEEP]
    assert plan_for(gs, snap, live) == plan


def _manifest_after(plan: SyncPlan, live: MemoryTree) -> Manifest:
    """The manifest the applier records: every written or kept file as it now stands."""
    records = {}
    for op in plan.operations:
        entry = live.lstat(op.path)
        if op.action in (Action.WRITE, Action.KEEP) and entry is not None:
            records[op.path] = Record(
                op.blob, entry.size, entry.mtime_ns, entry.inode, op.mode, "c1"
            )
    return Manifest(commit="c1", profile="default", records=records, dirs=plan.dirs)


def _changes(plan: SyncPlan) -> set[tuple[Action, str]]:
    return {(op.action, op.path) for op in plan.operations if op.action is not Action.KEEP}


edits = st.dictionaries(paths, st.one_of(st.none(), contents), max_size=6)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), edits, edits)
@example(  # found by this test: a folder holding only an excluded file, dropped by the commit
    scenario=(
        [{"source": "src/config", "destination": "config", "allowEmpty": True}],
        MemorySnapshot(files={"src/config/a/a/.resources": b"1", "src/config/resources": b"1"}),
        MemoryTree(),
    ),
    commit_edits={"config/a/a/.resources": None},
    drift={},
)
def test_planning_from_the_changes_equals_the_full_plan_and_never_exceeds_it(
    scenario: tuple[list[dict[str, object]], MemorySnapshot, MemoryTree],
    commit_edits: dict[str, bytes | None],
    drift: dict[str, bytes | None],
) -> None:
    mappings, snap, live = scenario
    gs = gs_with(mappings)
    effective = profiles.resolve(gs.spec.sync, None)
    try:
        first = planning.plan(desired.build(effective, snap, context()), live)
    except (PlanRefused, InvalidInput):
        assume(False)
        return
    synced = apply_to(first, live, snap.blobs())
    manifest = _manifest_after(first, synced)
    changed_files = dict(snap.files)
    for path, content in commit_edits.items():
        if content is None:
            changed_files.pop(f"src/{path}", None)
        else:
            changed_files[f"src/{path}"] = content
    new = MemorySnapshot(files=_consistent(changed_files))
    try:
        tree = desired.build(effective, new, context())
    except InvalidInput:
        assume(False)
        return
    recorded = RecordedTree(synced, manifest, paths_to_check(tree, manifest))

    # No drift since the last sync: planning from the changes is exactly the full plan.
    try:
        full = planning.plan(tree, synced, manifest)
    except PlanRefused as e:
        refused = e.problems
        with pytest.raises(PlanRefused) as quick_error:
            planning.plan(tree, recorded, manifest)
        assert quick_error.value.problems == refused
    else:
        assert planning.plan(tree, recorded, manifest) == full

    # With drift, it never does anything the full plan would not (drift waits for the check).
    drifted = synced.copy()
    for path, content in _consistent({p: c or b"" for p, c in drift.items()}).items():
        if drift[path] is None:
            drifted.remove(path)
        elif not any(p in drifted.files for p in _prefixes(path)) and path not in drifted.dirs:
            drifted.put(path, content)
    try:
        full = planning.plan(tree, drifted, manifest)
        quick = planning.plan(
            tree, RecordedTree(drifted, manifest, paths_to_check(tree, manifest)), manifest
        )
    except PlanRefused:
        assume(False)
        return
    assert _changes(quick) <= _changes(full)
    apply_to(quick, drifted, new.blobs())  # every step applies to the real tree
