"""Property tests: whatever the repository and live tree hold, a plan stays inside its bounds."""

from __future__ import annotations

import contextlib

import attrs
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from core.helpers import context, gs_with, plan_for
from stoker_core import desired, planning, profiles, recorded
from stoker_core.errors import InvalidInput, PlanRefused
from stoker_core.manifest import Manifest, Record
from stoker_core.paths import PROTECTED, RESERVED, is_under
from stoker_core.plans import Action, SyncPlan, apply_to
from stoker_core.recorded import CommitDiff, RecordedTree, paths_to_check
from stoker_core.templates import TemplateContext
from stoker_core.trees import (
    EXECUTABLE,
    REGULAR,
    Kind,
    LiveTree,
    MemorySnapshot,
    MemoryTree,
    RepoEntry,
)

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


def _edited(files: dict[str, bytes], edits: dict[str, bytes | None]) -> dict[str, bytes]:
    """`files` after a commit of `edits` (paths under `src/`; None deletes), made consistent."""
    out = dict(files)
    for path, content in edits.items():
        if content is None:
            out.pop(f"src/{path}", None)
        else:
            out[f"src/{path}"] = content
    return _consistent(out)


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


def _manifest_after(plan: SyncPlan, live: MemoryTree, *, ctimes: bool = False) -> Manifest:
    """The manifest the applier records: every written or kept file as it now stands (with
    its ctime when `ctimes`, as format 2 records it; else hashed once, as format 1)."""
    records = {}
    for op in plan.operations:
        entry = live.lstat(op.path)
        if op.action in (Action.WRITE, Action.KEEP) and entry is not None:
            records[op.path] = Record(
                op.blob,
                entry.size,
                entry.mtime_ns,
                entry.inode,
                op.mode,
                "c1",
                entry.ctime_ns if ctimes else 0,
            )
    return Manifest(commit="c1", profile="default", records=records, dirs=plan.dirs)


def _synced_then_committed(
    scenario: tuple[list[dict[str, object]], MemorySnapshot, MemoryTree],
    commit_edits: dict[str, bytes | None],
    *,
    ctimes: bool = False,
) -> tuple[MemoryTree, Manifest, MemorySnapshot, desired.DesiredTree]:
    """The scenario's first sync applied and recorded, then a commit making `commit_edits`:
    (the synced tree, its manifest, the new commit, its desired tree). An example that either
    build or the first plan refuses is not one (hypothesis is told to skip it)."""
    mappings, snap, live = scenario
    effective = profiles.resolve(gs_with(mappings).spec.sync, None)
    try:
        first = planning.plan(desired.build(effective, snap, context()), live)
    except (PlanRefused, InvalidInput):
        assume(False)
        raise
    synced = apply_to(first, live, snap.blobs())
    manifest = _manifest_after(first, synced, ctimes=ctimes)
    new = MemorySnapshot(files=_edited(snap.files, commit_edits))
    try:
        tree = desired.build(effective, new, context())
    except InvalidInput:
        assume(False)
        raise
    return synced, manifest, new, tree


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
    synced, manifest, new, tree = _synced_then_committed(scenario, commit_edits)
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


# -- A resync within syncPeriod: every recorded file stat'd, no folder listed ---------------------

DRIFTS = st.sampled_from(["edit", "delete", "executable", "touch"])


def _drift(live: MemoryTree, path: str, how: str) -> None:
    """One kind of drift of a recorded file (touch: rewritten with its content: a new inode)."""
    content, mode = live.files[path]
    if how == "delete":
        live.remove(path)
    elif how == "edit":
        live.put(path, content + b"!", mode)
    elif how == "executable":
        live.put(path, content, EXECUTABLE if mode == REGULAR else REGULAR)
    else:
        live.put(path, content, mode)


def _linked(live: MemoryTree, folder: str) -> None:
    """`folder` moved away and a link put in its place (as a gateway, or an attacker, could)."""
    inside = folder + "/"
    for path in [p for p in (*live.files, *live.links) if p.startswith(inside)]:
        live.remove(path)
    live.dirs = {d for d in live.dirs if d != folder and not d.startswith(inside)}
    live.link(folder, "/elsewhere")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.data())
def test_a_resync_that_stats_the_recorded_files_plans_all_their_drift_and_nothing_else(
    scenario: tuple[list[dict[str, object]], MemorySnapshot, MemoryTree], data: st.DataObject
) -> None:
    synced, manifest, snap, tree = _synced_then_committed(scenario, {}, ctimes=True)
    drifted = synced.copy()
    recorded_files = sorted(manifest.records)
    if recorded_files:
        drifts = data.draw(st.dictionaries(st.sampled_from(recorded_files), DRIFTS, max_size=4))
        for path, how in drifts.items():
            _drift(drifted, path, how)
    strays = data.draw(st.dictionaries(paths, contents, max_size=3))
    for path, content in _consistent(strays).items():
        if not any(p in drifted.files for p in _prefixes(path)) and path not in drifted.dirs:
            drifted.put(path, content)
    for empty in data.draw(st.lists(st.sampled_from(manifest.dirs))) if manifest.dirs else ():
        with contextlib.suppress(OSError):  # one that holds another is not empty
            drifted.rmdir(empty)  # an empty folder of the commit, removed
    folders = sorted({p.rpartition("/")[0] for p in recorded_files} - {""})
    linked = data.draw(st.sampled_from(folders)) if folders and data.draw(st.booleans()) else None
    if linked is not None:
        _linked(drifted, linked)
    unlike = recorded.unlike_records(manifest, lambda ps: [drifted.lstat(p) for p in ps])
    seen = RecordedTree(drifted, manifest, paths_to_check(tree, manifest) | unlike)
    try:
        full = planning.plan(tree, drifted, manifest)
    except PlanRefused as e:
        event("refused")
        refused = e.problems
    else:
        refused = None
    if refused is not None:
        if linked is None and drifted.content().keys() <= set(manifest.records):
            with pytest.raises(PlanRefused) as quick_error:
                planning.plan(tree, seen, manifest)
            assert quick_error.value.problems == refused
        return
    quick = planning.plan(tree, seen, manifest)
    # Everything the full check does to what Stoker wrote, the resync does; it only leaves the
    # stray files (and folders holding only them) to the next full check.
    wanted = {*manifest.records, *tree.files, *tree.dirs, *tree.parent_dirs}
    assert {c for c in _changes(full) if c[1] in wanted} <= _changes(quick)
    assert _changes(quick) <= _changes(full)
    if drifted.content().keys() <= wanted and linked is None:
        assert _changes(quick) == _changes(full)
    event("drift found" if _changes(quick) else "no drift")
    apply_to(quick, drifted, snap.blobs())  # every step applies to the real tree


# -- The desired tree built from a commit's changes ----------------------------------------------

A, B = "a" * 40, "b" * 40
RENDERED_CONTENTS = st.sampled_from(
    [b"1", b"{}", b'{"k": 1}', b"gw {{.GatewayName}}", b"{{.Commit}}"]
)
SOURCES = [
    "src/projects",
    "src/config",
    "src/one.json",
    "src/config/resources",
    "src/missing",
    "src",
]
DESTS = ["projects", "config", "top.json", "config/resources/core", "config/resources/dev", "."]
RENDERING: list[dict[str, object]] = [
    {"template": True},
    {"patches": [{"file": "**/x.json", "set": {"k": "{{.Commit}}"}}]},
    {"template": True, "patches": [{"file": "**/y.json", "set": {"v": "{{.Vars.v}}"}}]},
]


@st.composite
def crs(draw: st.DrawFn) -> list[dict[str, object]]:
    """One to three mappings, any source to any destination, some rendering files."""
    chosen = draw(
        st.lists(
            st.tuples(st.sampled_from(SOURCES), st.sampled_from(DESTS)), min_size=1, max_size=3
        )
    )
    mappings: list[dict[str, object]] = []
    for source, dest in chosen:
        mapping: dict[str, object] = {"source": source, "destination": dest, "allowEmpty": True}
        extra: dict[str, object] = draw(st.sampled_from([{}, {}, *RENDERING]))
        if source == "src/one.json" and "patches" in extra:
            extra = {"patches": [{"set": {"k": "{{.Commit}}"}}]}
        mappings.append({**mapping, **extra})
    return mappings


def _entries(snap: MemorySnapshot) -> dict[str, RepoEntry]:
    return {e.path: e for e in snap.walk("")}


def diff_of(
    old: MemorySnapshot, new: MemorySnapshot, sources: tuple[str, ...], rendering: tuple[str, ...]
) -> CommitDiff:
    """What the git adapter reports (`diff-tree -r -t`, then `ls-tree -r -t` of what it reads)."""
    before, after = _entries(old), _entries(new)
    changed: dict[str, str] = {}
    for path in before.keys() | after.keys():
        was, now = before.get(path), after.get(path)
        if was is None or now is None:
            changed[path] = "A" if was is None else "D"
        elif (was.kind == Kind.DIR) != (now.kind == Kind.DIR):
            changed[path] = "T"
        elif was.kind != Kind.DIR and was != now:
            changed[path] = "M" if was.kind == now.kind else "T"
    for path in list(changed):
        for parent in _prefixes(path):
            if parent in before and parent in after and parent not in changed:
                changed[parent] = "M"
    listed = {p for p, s in changed.items() if s != "D"}
    for root in rendering:
        below = [p for p in after if p.startswith(root + "/")]
        listed.update(below)
        listed.update(parent for p in below for parent in _prefixes(p))
    return CommitDiff(
        new.commit,
        changed,
        {p: after[p] for p in listed},
        {s: after[s] for s in sources if s and s in after},
    )


def _view(tree: desired.DesiredTree) -> dict[str, tuple[object, ...]]:
    return {p: (f.blob, f.mode, f.size, f.mapping, f.content) for p, f in tree.files.items()}


def _skips(tree: desired.DesiredTree) -> list[tuple[str, str, str]]:
    return sorted((s.path, s.reason, s.detail) for s in tree.skipped)


def _recorded_manifest(plan: SyncPlan, live: MemoryTree, inputs: str) -> Manifest:
    return attrs.evolve(
        _manifest_after(plan, live),
        commit=plan.commit,
        inputs=inputs,
        skipped=tuple((s.path, s.reason.value, s.detail) for s in plan.skipped),
    )


def _plan_or_problems(tree: desired.DesiredTree, live: LiveTree, manifest: Manifest) -> object:
    try:
        return planning.plan(tree, live, manifest)
    except PlanRefused as e:
        return e.problems


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    crs(),
    st.dictionaries(paths, RENDERED_CONTENTS, max_size=8),
    st.dictionaries(paths, contents, max_size=6),
    st.dictionaries(paths, st.one_of(st.none(), RENDERED_CONTENTS), max_size=6),
    st.sampled_from([False, False, False, True]),
)
@example(  # a skip report goes with the file the commit removes
    mappings=[{"source": "src", "destination": ".", "allowEmpty": True}],
    repo={".stoker/a": b"1", "db/a": b"1"},
    live_files={},
    commit_edits={".stoker/a": None},
    cr_changed=False,
)
def test_a_commit_built_from_its_changes_plans_exactly_what_the_whole_tree_plans(
    mappings: list[dict[str, object]],
    repo: dict[str, bytes],
    live_files: dict[str, bytes],
    commit_edits: dict[str, bytes | None],
    cr_changed: bool,
) -> None:
    gs = gs_with(mappings, vars={"v": "1"})
    effective = profiles.resolve(gs.spec.sync, None)
    old = MemorySnapshot(files={f"src/{p}": c for p, c in _consistent(repo).items()}, commit=A)
    old.files["src/one.json"] = b"{}"
    live = MemoryTree()
    for path, content in _consistent(live_files).items():
        live.put(path, content)
    old_context = context(commit=A, vars=effective.vars)
    try:
        first = planning.plan(desired.build(effective, old, old_context), live)
    except (PlanRefused, InvalidInput):
        assume(False)
        return
    synced = apply_to(first, live, old.blobs())
    manifest = _recorded_manifest(first, synced, recorded.inputs_digest(effective, old_context))
    new = MemorySnapshot(files=_edited(old.files, commit_edits), commit=B)
    vars_ = {"v": "2"} if cr_changed else effective.vars
    new_context = context(commit=B, vars=vars_)
    try:
        whole = desired.build(effective, new, new_context)
    except InvalidInput:
        assume(False)
        return

    why = recorded.whole_because(manifest, effective, new_context, B)
    if cr_changed:
        assert why is not None  # the template values changed: built whole
        return
    if why is None:
        diff = diff_of(
            old,
            new,
            desired.sources(effective, new_context),
            recorded.rendering_sources(effective, new_context),
        )
        why = recorded.whole_because_diff(diff, effective, new_context)
    event("built whole" if why else "built from the changes")
    if why is not None:
        return
    built = recorded.from_diff(effective, new_context, manifest, diff, new.read)
    assert isinstance(built, recorded.FromDiff), built
    tree = built.tree
    assert built.check == recorded.paths_to_check(tree, manifest)
    assert _view(tree) == _view(whole)
    assert _skips(tree) == _skips(whole)
    assert tree.dirs - tree.parent_dirs == whole.dirs - whole.parent_dirs
    assert tree.dirs | tree.parent_dirs == whole.dirs | whole.parent_dirs
    assert tree.roots == whole.roots

    # The same plan, from the recorded tree as from the live one; then after a rollback (or a
    # crash rolled back), which restores the old commit's files under new inodes and its
    # manifest: the new commit again plans the changes a whole tree plans.
    for state in (synced, _rolled_back(effective, old, old_context, whole, synced, manifest)):
        if state is None:
            continue
        expected = _plan_or_problems(whole, state, manifest)
        seen = RecordedTree(state, manifest, recorded.paths_to_check(tree, manifest))
        quick = _plan_or_problems(tree, seen, manifest)
        if isinstance(expected, SyncPlan) and isinstance(quick, SyncPlan):
            assert _changes(quick) == _changes(expected)
            assert not recorded.rewrites_carried(quick, built)
            assert (
                apply_to(quick, state, new.blobs()).content()
                == apply_to(expected, state, new.blobs()).content()
            )
        else:
            assert quick == expected


def _rolled_back(
    profile: profiles.EffectiveProfile,
    old: MemorySnapshot,
    old_context: TemplateContext,
    whole: desired.DesiredTree,
    synced: MemoryTree,
    manifest: Manifest,
) -> MemoryTree | None:
    """The old commit's files restored after the new commit was applied, as a rollback leaves
    them (the manifest is the old one again)."""
    try:
        forward = apply_to(planning.plan(whole, synced, manifest), synced, {})
        # A rollback restores the old files from its journal; planning the old tree onto the
        # new one, without the manifest, stands in for it, and cannot where a file the new
        # commit made sits where the old commit has a folder (it is not Stoker's to replace).
        back = planning.plan(desired.build(profile, old, old_context), forward)
    except (PlanRefused, KeyError):
        return None
    return apply_to(back, forward, old.blobs())
