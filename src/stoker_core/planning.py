"""Diffing the desired tree against the live tree and the manifest into a SyncPlan.

Deletion happens only inside managed roots: a directory destination owns its subtree, a file
destination owns exactly that file. Protected, excluded and reserved paths are never touched;
gateway-owned files, and anything at the data-directory root itself, are pruned only when the
manifest records that Stoker wrote them.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import compress, repeat

import attrs

from stoker_core.desired import DesiredFile, DesiredTree, ManagedRoot
from stoker_core.drift import is_resource_manifest
from stoker_core.errors import PlanRefused, Problem
from stoker_core.manifest import Manifest, Record
from stoker_core.model import MappingType
from stoker_core.paths import (
    GATEWAY_OWNED,
    KEPT_UNLESS_RECORDED,
    NAME_MAX,
    is_under,
    parents,
    shorten,
    too_long,
)
from stoker_core.plans import Action, Operation, Reason, SyncPlan
from stoker_core.recorded import (
    LIVE_KIND,
    LIVE_MODE,
    LIVE_STATS,
    NO_ENTRY,
    NO_RECORD,
    RECORD_BLOB,
    RECORD_STATS,
    RecordedTree,
    exec_bits,
)
from stoker_core.trees import BulkTree, Kind, LiveEntry, LiveTree


@attrs.define(slots=True)
class _Live:
    """What the walk found under the managed roots."""

    files: dict[str, LiveEntry] = attrs.field(factory=dict)  # files, links and other non-dirs
    dirs: set[str] = attrs.field(factory=set)
    kept_dirs: set[str] = attrs.field(factory=set)  # pruned (excluded/protected) directories
    # Files a RecordedTree takes from the manifest (see recorded.RecordedTree): what `records`
    # says they are, without an entry each; not in `files`. Also listed in runs of path order.
    carried: set[str] = attrs.field(factory=set)
    carried_runs: list[str] = attrs.field(factory=list)
    records: Mapping[str, Record] = attrs.field(factory=dict)

    def has_file(self, path: str) -> bool:
        """Whether a file (or link, or other non-directory) was found at `path`."""
        return path in self.files or path in self.carried

    def entry(self, path: str) -> LiveEntry | None:
        """The entry found at `path` (None: none, or a directory)."""
        if path in self.carried:
            _, size, mtime_ns, inode, mode, _, ctime_ns = self.records[path]
            return LiveEntry(path, Kind.FILE, size, mtime_ns, inode, mode, ctime_ns)
        return self.files.get(path)


def _top_dirs(roots: Iterable[ManagedRoot]) -> list[str]:
    """Directory roots not inside another directory root."""
    tops: list[str] = []
    for path in sorted({r.path for r in roots if r.kind is MappingType.DIR}):
        if not any(is_under(path, t) for t in tops):
            tops.append(path)
    return tops


def _check_ancestors(roots: Iterable[ManagedRoot], live: LiveTree) -> dict[str, LiveEntry | None]:
    """lstat every ancestor of every root; refuse links or files standing where a dir must be."""
    seen: dict[str, LiveEntry | None] = {}
    problems: list[Problem] = []
    for root in roots:
        chain = parents(root.path)
        if root.kind is MappingType.DIR and root.path:
            chain.insert(0, root.path)
        for path in chain:
            if path not in seen:
                seen[path] = live.lstat(path)
            entry = seen[path]
            if entry is not None and entry.kind is not Kind.DIR:
                problems.append(
                    Problem(
                        path=path,
                        message=f"is a {entry.kind} where mapping {root.mapping} needs a "
                        "directory; Stoker never writes through links or replaces what it does "
                        "not manage: make it a directory",
                    )
                )
    if problems:
        raise PlanRefused(dict.fromkeys(problems))
    return seen


def _check_lengths(desired: DesiredTree) -> None:
    """Refuse names and paths the file system cannot hold, before anything is written: found
    during the apply, they would stop it halfway. A file's folders are checked with it."""
    paths = (*desired.files, *(desired.dirs - desired.parent_dirs))
    if max(map(len, paths), default=0) <= NAME_MAX and "".join(paths).isascii():
        return  # every path is at most NAME_MAX bytes: nothing is too long (checked in bulk)
    problems = [
        Problem(path=shorten(path), message=why)
        for path in paths
        if (why := too_long(path)) is not None
    ]
    if problems:
        raise PlanRefused(dict.fromkeys(problems))


def _walk(desired: DesiredTree, live: LiveTree) -> _Live:
    found = _Live()

    def prune(path: str) -> bool:
        if desired.is_untouchable(path):
            found.kept_dirs.add(path)
            return True
        return False

    recorded = live if isinstance(live, RecordedTree) else None
    deferred: list[str] = []  # directories whose contents the manifest gives (RecordedTree)
    if recorded is not None:
        found.records = recorded.records

    def entries(path: str) -> Iterator[LiveEntry]:
        if recorded is None:
            return iter(live.walk(path, prune))
        return recorded.walk_real(path, prune, deferred)

    def carry() -> None:  # in bulk: no entry per carried file
        while deferred:
            assert recorded is not None  # only a RecordedTree defers
            dirs, files = recorded.carried(deferred.pop(), prune)
            found.dirs.update(dirs)
            found.carried.update(files)
            found.carried_runs.extend(files)

    bulk = live.walked_ahead if isinstance(live, BulkTree) else None
    tops = _top_dirs(desired.roots)
    for top in tops:
        if top and live.lstat(top) is None:
            continue
        if top:
            found.dirs.add(top)
        # A walk done already (a full check's, in a child process) is taken whole: it pruned
        # the folders prune() would, and lists what the entries below would give.
        walked = bulk(top, desired.untouchable) if bulk is not None else None
        if walked is not None:
            found.files.update(walked.files)
            found.dirs.update(walked.dirs)
            found.kept_dirs.update(walked.pruned)
            continue
        files, dirs = found.files, found.dirs
        for entry in entries(top):  # the hot loop: inlined _record
            if entry.kind is Kind.DIR:
                dirs.add(entry.path)
            else:
                files[entry.path] = entry
        carry()
    # Roots the walks did not reach (a file root outside every directory root; any root in a
    # folder they pruned, such as an excluded folder inside another mapping's tree) are looked
    # at directly: otherwise what a mapping writes there would be planned as new, and
    # rewritten, at every sync. Their ancestors were checked for links above.
    for root in desired.roots:
        if root.path in tops or found.has_file(root.path) or root.path in found.dirs:
            continue
        have = live.lstat(root.path)
        if have is not None and have.kind is Kind.DIR:
            found.dirs.add(root.path)
            for child in entries(root.path):
                _record(found, child)
            carry()
        elif have is not None:
            found.files[root.path] = have
    return found


def _keep_carried(
    wanted: Mapping[str, DesiredFile], found: _Live, manifest: Manifest
) -> tuple[list[Operation], list[str]]:
    """KEEP (unchanged) for every carried file as the manifest records it, without an entry or
    a _compare: that is what _compare says of the file Stoker wrote, unchanged. And the carried
    files that must be compared after all (another content or mode: a view told to check too
    little; or another manifest's view)."""
    runs, records = found.carried_runs, manifest.records
    if found.records is not records:
        return [], [path for path in runs if path in wanted]
    make = tuple.__new__  # Operation's own __new__ is Python code: this runs per file
    keep, unchanged = Action.KEEP, Reason.UNCHANGED
    keeps = [
        make(Operation, (keep, path, unchanged, want[1], want[2], want[3], want[4], None))
        for path in runs
        if (want := wanted.get(path)) is not None
        and (record := records[path])[0] == want[1]
        and record[4] == want[2]
    ]
    if len(keeps) == len(runs):
        return keeps, []
    # Some were not kept (orphans, or files to compare): tell which.
    trusted = {op.path for op in keeps}
    return keeps, [path for path in runs if path in wanted and path not in trusted]


def _keep_as_written(
    wanted: Mapping[str, DesiredFile],
    files: Mapping[str, LiveEntry],
    records: Mapping[str, Record],
    keeps: list[Operation],
) -> list[tuple[str, DesiredFile]]:
    """KEEP (unchanged), added to `keeps`, for every wanted file that _as_written trusts, found
    a column at a time (map, zip and compress run in C: no Python step per file); the others,
    to compare one by one. The same test: kind, blob, size, mtime, inode, ctime, executable bit."""
    paths, wants = list(wanted), list(wanted.values())
    haves = list(map(files.get, paths, repeat(NO_ENTRY)))
    recs = list(map(records.get, paths, repeat(NO_RECORD)))
    ours = zip(
        map(_WANT_BLOB, wants),
        map(LIVE_KIND, haves),
        map(LIVE_STATS, haves),
        exec_bits(map(LIVE_MODE, haves)),
        strict=True,
    )
    theirs = zip(
        map(RECORD_BLOB, recs),
        repeat(Kind.FILE),
        map(RECORD_STATS, recs),
        exec_bits(map(_WANT_MODE, wants)),
        strict=False,
    )
    trusted = list(map(operator.eq, ours, theirs))
    kept = list(compress(wants, trusted))
    rows = zip(
        repeat(Action.KEEP),
        compress(paths, trusted),
        repeat(Reason.UNCHANGED),
        map(_WANT_BLOB, kept),
        map(_WANT_MODE, kept),
        map(_WANT_SIZE, kept),
        map(_WANT_MAPPING, kept),
        repeat(None),
        strict=False,
    )
    keeps.extend(map(_NEW_OPERATION, rows))
    return list(compress(zip(paths, wants, strict=True), map(operator.not_, trusted)))


# Fields of a DesiredFile, for _keep_as_written's columns (a LiveEntry's and a Record's, and
# their stand-ins for none, which _as_written never trusts, are recorded's).
_WANT_BLOB, _WANT_MODE, _WANT_SIZE, _WANT_MAPPING = (operator.itemgetter(n) for n in (1, 2, 3, 4))
_NEW_OPERATION = functools.partial(tuple.__new__, Operation)  # Operation's __new__ is Python


def _in_order(keeps: list[Operation], others: Iterable[Operation]) -> tuple[Operation, ...]:
    """The operations in a plan's order: `keeps` (one per path) sorted by path, the few others
    put in place (many: all sorted together)."""
    rest = list(others)
    if len(rest) > len(keeps) // 64 + 16:
        return tuple(sorted([*keeps, *rest], key=_ORDER))
    keeps.sort(key=_PATH)
    for op in rest:
        bisect.insort(keeps, op, key=_ORDER)
    return tuple(keeps)


def _record(found: _Live, entry: LiveEntry) -> None:
    if entry.kind is Kind.DIR:
        found.dirs.add(entry.path)
    else:
        found.files[entry.path] = entry


Equivalence = Callable[[DesiredFile], bool]
_ORDER = operator.itemgetter(1, 0)  # an operation's (path, action): a plan's order
_PATH = operator.itemgetter(1)


def _as_written(want: DesiredFile, have: LiveEntry, record: Record | None) -> bool:
    """Whether `have` is, by its lstat, the file Stoker wrote for `record` and `want` the same
    content and executable bit: what _compare trusts without reading (UNCHANGED)."""
    return (
        record is not None
        and have[1] is Kind.FILE
        and record[0] == want[1]  # blob
        and have[2:5] == record[1:4]  # size, mtime_ns, inode
        and have[6] == record[6]  # ctime_ns
        and ((have[5] & 0o111) == 0) is ((want[2] & 0o111) == 0)  # the executable bit
    )


def _compare(
    want: DesiredFile,
    have: LiveEntry | None,
    manifest: Manifest,
    live: LiveTree,
    stamped: Equivalence | None,
) -> tuple[Action, Reason]:
    if have is None:
        return Action.WRITE, Reason.NEW
    if have.kind is not Kind.FILE:
        return Action.WRITE, Reason.REPLACES_NON_FILE
    record = manifest.records.get(want.path)
    mode_differs = bool(have.mode & 0o111) != bool(want.mode & 0o111)
    if (
        record is not None
        and record.blob == want.blob
        and (record.size, record.mtime_ns, record.inode, record.ctime_ns)
        == (have.size, have.mtime_ns, have.inode, have.ctime_ns)
    ):
        # Trusted without reading: this is the file Stoker wrote (or accepted) last time.
        return (
            (Action.WRITE, Reason.MODE_CHANGED) if mode_differs else (Action.KEEP, Reason.UNCHANGED)
        )
    if have.size == want.size and live.blob_id(want.path) == want.blob:
        if mode_differs:
            return Action.WRITE, Reason.MODE_CHANGED
        return Action.KEEP, Reason.VERIFIED if record is not None else Reason.ADOPTED
    if stamped is not None and is_resource_manifest(want.path) and stamped(want):
        return Action.KEEP, Reason.GATEWAY_STAMPED
    return Action.WRITE, Reason.CONTENT_CHANGED


def _owner(path: str, roots: list[ManagedRoot]) -> ManagedRoot | None:
    """The innermost root that owns `path` (a file root owns only itself)."""
    best: ManagedRoot | None = None
    for root in roots:
        owns = path == root.path if root.kind is MappingType.FILE else is_under(path, root.path)
        if owns and (best is None or len(root.path) >= len(best.path)):
            best = root
    return best


def _deletable(path: str, root: ManagedRoot, desired: DesiredTree, manifest: Manifest) -> bool:
    if desired.is_untouchable(path):
        return False
    if any(desired.is_excluded(p) for p in parents(path) if is_under(p, root.path)):
        return False
    recorded = path in manifest.records
    if not recorded and (GATEWAY_OWNED.matches(path) or KEPT_UNLESS_RECORDED.matches(path)):
        return False
    # The data directory itself as a root owns only what Stoker wrote there.
    return bool(root.path) or recorded


def plan(
    desired: DesiredTree,
    live: LiveTree,
    manifest: Manifest | None = None,
    *,
    stamped: Equivalence | None = None,
) -> SyncPlan:
    """Plan the changes that make `live` equal `desired` inside the managed roots.

    `stamped(file)` tells whether a live resource.json differs from the desired one only by
    what Ignition writes itself (see drift.stamped_equal); without it such files are rewritten.
    """
    manifest = manifest or Manifest()
    _check_lengths(desired)
    ancestors = _check_ancestors(desired.roots, live)
    found = _walk(desired, live)
    ops: dict[tuple[str, Action], Operation] = {}
    make = tuple.__new__  # Operation's own __new__ is Python code: this loop runs per file
    files, carried, wanted = found.files, found.carried, desired.files
    keeps, to_compare = _keep_carried(wanted, found, manifest)
    todo: Iterable[tuple[str, DesiredFile]]
    if carried:
        todo = [(p, wanted[p]) for p in itertools.chain(wanted.keys() - carried, to_compare)]
    else:  # every file walked for real: those _as_written trusts are kept in bulk
        todo = _keep_as_written(wanted, files, manifest.records, keeps)
    records, keep, unchanged = manifest.records, Action.KEEP, Reason.UNCHANGED
    for path, want in todo:
        have = files.get(path) if path not in carried else found.entry(path)
        if have is not None and _as_written(want, have, records.get(path)):
            # What _compare answers first, without the call; with the KEEPs _in_order sorts
            # (nothing looks a KEEP up by its key).
            keeps.append(
                make(Operation, (keep, path, unchanged, want[1], want[2], want[3], want[4], None))
            )
            continue
        action, reason = _compare(want, have, manifest, live, stamped)
        content = want.content if action is Action.WRITE else None
        ops[(path, action)] = make(
            Operation,
            (action, path, reason, want.blob, want.mode, want.size, want.mapping, content),
        )
    roots = list(desired.roots)
    kept: set[str] = set(found.kept_dirs)
    deleted: list[str] = []
    for path in [*found.files, *carried.difference(desired.files)]:
        if path in desired.files:
            continue
        root = _owner(path, roots)
        if root is not None and _deletable(path, root, desired, manifest):
            entry = found.entry(path)
            assert entry is not None
            ops[(path, Action.DELETE)] = Operation(
                Action.DELETE, path, Reason.ORPHAN, size=entry.size, mapping=root.mapping
            )
            deleted.append(path)
        else:
            kept.add(path)
    _plan_dirs(desired, found, ancestors, kept, ops)
    _guard_empty_roots(desired, deleted)
    return SyncPlan(
        commit=desired.commit,
        operations=_in_order(keeps, ops.values()),
        skipped=tuple(sorted(desired.skipped, key=lambda s: (s.path, s.reason))),
        dirs=tuple(sorted(desired.dirs - desired.parent_dirs)),
    )


def _plan_dirs(
    desired: DesiredTree,
    found: _Live,
    ancestors: dict[str, LiveEntry | None],
    kept: set[str],
    ops: dict[tuple[str, Action], Operation],
) -> None:
    """Add MKDIR for missing directories and RMDIR for managed ones left empty."""
    needed: set[str] = set(desired.parent_dirs)
    needed |= desired.dirs
    for path in desired.dirs - desired.parent_dirs:  # the others' parents are already in
        needed.update(parents(path))
    occupied = needed | kept
    for path in kept:
        occupied.update(parents(path))
    problems: list[Problem] = []
    for path, want in desired.files.items() if not found.dirs.isdisjoint(desired.files) else ():
        if path in found.dirs and path in occupied:
            problems.append(
                Problem(
                    path=path,
                    message="is a directory holding files Stoker must keep, so the file from "
                    f"mapping {want.mapping} cannot replace it; move those files",
                )
            )
    for path in sorted(needed - found.dirs):
        known = ancestors.get(path)
        if known is not None and known.kind is Kind.DIR:
            continue
        if found.has_file(path) and (path, Action.DELETE) not in ops:
            problems.append(
                Problem(
                    path=path,
                    message="is a file Stoker must keep, but the commit needs a "
                    "directory here; move or remove it",
                )
            )
            continue
        ops[(path, Action.MKDIR)] = Operation(Action.MKDIR, path, Reason.NEEDED_DIR)
    roots = {r.path for r in desired.roots}
    for path in found.dirs - occupied - roots:
        ops[(path, Action.RMDIR)] = Operation(Action.RMDIR, path, Reason.EMPTY_DIR)
    if problems:
        raise PlanRefused(problems)


def _guard_empty_roots(desired: DesiredTree, deleted: list[str]) -> None:
    """Refuse a plan that deletes every file of a directory root, unless allowEmpty is set."""
    problems: list[Problem] = []
    for root in desired.roots:
        if root.kind is not MappingType.DIR or root.allow_empty:
            continue
        deletes = sum(1 for path in deleted if is_under(path, root.path))
        if deletes and not any(is_under(p, root.path) for p in desired.files):
            problems.append(
                Problem(
                    path=root.path or ".",
                    message=f"mapping {root.mapping} would delete all {deletes} file(s) here and "
                    "write none; if the source really is empty set allowEmpty: true on the "
                    "mapping, otherwise check its source path",
                )
            )
    if problems:
        raise PlanRefused(problems)
