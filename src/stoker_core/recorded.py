"""Planning a new commit from what the commit changed, without walking the whole data directory.

A full check lstats every file under the managed roots: that is how drift and stray files are
found, and it runs at least once every `syncPeriod`. In between, a sync to a new commit only
needs the live state where the commit changes something. `RecordedTree` gives the planner that
view: every directory on the way to a changed path is listed for real, and everything else is
taken from the manifest, as Stoker last wrote it. The rules are the planner's own; it just
cannot see drift outside the changed paths until the next full check. It takes the recorded part
in bulk: a file carried forward as recorded is kept without a walk entry or a comparison of
its own (what remains per file is its KEEP operation).

Why this is safe: a path the plan acts on is either a changed path or inside a directory that
is listed for real, so every write, delete and rmdir is decided on real state. A directory seen
for real that the manifest knows nothing under is listed for real too, so nothing is ever
believed empty when it is not.

The desired tree of a new commit is built from what the commit changed, too (`from_diff`), when
the manifest says which commit, profile and template values its records were made with: only
the paths `git diff-tree` names between the two commits (and every file of a mapping that
renders: templates, patches) go through the desired-tree rules, and every other record carries
forward as it is. Where that could differ from building the tree whole, the rules in
`whole_because` and `whole_because_diff` say so and the tree is built whole; the property test
(tests/core/test_properties.py) holds the two to the same plan.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import compress, repeat
from typing import NamedTuple

import attrs

from stoker_core import desired, model
from stoker_core.desired import DesiredFile, DesiredTree, Skip, SkipReason
from stoker_core.manifest import Manifest, Record
from stoker_core.paths import folders_above, parents
from stoker_core.plans import Action, SyncPlan
from stoker_core.profiles import EffectiveProfile
from stoker_core.templates import TemplateContext
from stoker_core.trees import REGULAR, Kind, LiveEntry, LiveTree, RepoEntry


def paths_to_check(desired: DesiredTree, manifest: Manifest) -> set[str]:
    """Paths to see for real: files whose desired state differs from what the manifest records
    Stoker wrote, and the empty directories of this commit and of the recorded one (a folder
    holding only excluded files is one: no record leads to it)."""
    records = manifest.records
    changed = _differing(desired.files, manifest)
    changed.update(path for path in records if path not in desired.files)
    changed.update(desired.dirs - desired.parent_dirs)  # empty: nothing below them is recorded
    changed.update(path for path in manifest.dirs if path not in desired.dirs)  # dropped now
    return changed


def _differing(files: Mapping[str, DesiredFile], manifest: Manifest) -> set[str]:
    """The files whose content or mode differs from the manifest's record of them, or that
    have none."""
    records = manifest.records
    return {
        path
        for path, want in files.items()
        if (record := records.get(path)) is None
        or record.blob != want.blob
        or record.mode != want.mode
    }


def full_check_due(
    *, last_full_check: float | None, now: float, sync_period: int, asked: bool = False
) -> bool:
    """Whether this sync must check every managed file (drift, stray files) for real.

    When asked (the agent's periodic drift check, `stoker sync --full-check`), when none was
    made yet, and when the last one is older than `syncPeriod`. Otherwise a new commit is
    planned from its changes, and a resync of the recorded commit stats every recorded file
    (`unlike_records`) but lists no folder: a stray file waits for the next full check.
    """
    if asked or last_full_check is None:
        return True
    return not 0 <= now - last_full_check < sync_period


def unlike_records(
    manifest: Manifest, lstat_many: Callable[[list[str]], list[LiveEntry | None]]
) -> set[str]:
    """The recorded files that `lstat_many` (each path's lstat, reached through real folders
    only, never a link) does not show as the manifest records them (size, mtime, inode, ctime,
    executable bit): what a resync of the recorded commit sees for real when its full check is
    not due, beside paths_to_check (which holds the commit's empty folders). No content is read
    and no folder listed. Compared a column at a time (no step per file)."""
    paths, records = list(manifest.records), list(manifest.records.values())
    haves = [NO_ENTRY if have is None else have for have in lstat_many(paths)]
    ours = zip(
        map(LIVE_KIND, haves), map(LIVE_STATS, haves), exec_bits(map(LIVE_MODE, haves)), strict=True
    )
    theirs = zip(
        repeat(Kind.FILE),
        map(RECORD_STATS, records),
        exec_bits(map(RECORD_MODE, records)),
        strict=False,  # repeat is endless
    )
    return set(compress(paths, map(operator.ne, ours, theirs)))


def exec_bits(modes: Iterable[int]) -> Iterator[bool]:
    """Whether each mode has an executable bit."""
    return map(bool, map(operator.and_, modes, repeat(0o111)))


# Fields of a LiveEntry and a Record, compared a column at a time (here and by the planner);
# stand-ins for no live file and no record, never equal to a real one.
LIVE_KIND, LIVE_STATS, LIVE_MODE = (operator.itemgetter(*n) for n in ((1,), (2, 3, 4, 6), (5,)))
RECORD_BLOB, RECORD_STATS = operator.itemgetter(0), operator.itemgetter(1, 2, 3, 6)
RECORD_MODE = operator.itemgetter(4)
NO_ENTRY = LiveEntry("", Kind.OTHER, -1, -1, -1, 0, -1)
NO_RECORD = Record("", -1, -1, -1, 0, "", -1)


class RecordedTree:
    """A LiveTree: real in the directories leading to `check`, the manifest elsewhere.

    The planner takes the recorded part in bulk (`walk_real`, then `carried`): a file carried
    forward as recorded needs no entry of its own, and costs no comparison.
    """

    def __init__(self, live: LiveTree, manifest: Manifest, check: Iterable[str]) -> None:
        self._live = live
        self.records = manifest.records  # what the carried files are taken to be
        self._sorted = sorted(manifest.records)
        self._real: set[str] = {""}
        for path in check:
            self._real.update(parents(path))

    def lstat(self, path: str) -> LiveEntry | None:
        """See LiveTree.lstat (always real: used for a few root ancestors only)."""
        return self._live.lstat(path)

    def blob_id(self, path: str) -> str:
        """See LiveTree.blob_id."""
        return self._live.blob_id(path)

    def walk(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        """See LiveTree.walk."""
        deferred: list[str] = []
        yield from self.walk_real(path, prune, deferred)
        entry = tuple.__new__  # LiveEntry's own __new__ is Python code: this loop runs per file
        records, file_kind, dir_kind = self.records, Kind.FILE, Kind.DIR
        for child in deferred:
            dirs, files = self.carried(child, prune)
            for directory in dirs:
                yield entry(LiveEntry, (directory, dir_kind, 0, 0, 0, REGULAR, 0))
            for file in files:
                _, size, mtime_ns, inode, mode, _, ctime_ns = records[file]
                yield entry(LiveEntry, (file, file_kind, size, mtime_ns, inode, mode, ctime_ns))

    def walk_real(
        self, path: str, prune: Callable[[str], bool], deferred: list[str]
    ) -> Iterator[LiveEntry]:
        """What is real of walk(path): the directories whose contents come from the manifest
        (`path` itself, or ones below it) are not walked but added to `deferred`."""
        if path not in self._real and self._recorded_under(path):
            deferred.append(path)
            return

        def prune_or_defer(child: str) -> bool:
            if prune(child):
                return True
            if child not in self._real and self._recorded_under(child):
                deferred.append(child)
                return True
            return False

        yield from self._live.walk(path, prune_or_defer)

    def carried(self, path: str, prune: Callable[[str], bool]) -> tuple[list[str], list[str]]:
        """The directories strictly below `path` that lead to recorded files, and those files
        (not the ones in a directory `prune` holds; that directory is listed, as a walk yields
        it), in path order."""
        prefix = path + "/" if path else ""
        start = bisect.bisect_left(self._sorted, prefix)
        end = bisect.bisect_left(self._sorted, prefix[:-1] + "0") if prefix else None  # "/"+1
        files = self._sorted[start:end]
        dirs: list[str] = []
        seen: set[str] = {path}
        pruned: tuple[str, ...] = ()
        for file in files:
            if pruned and file.startswith(pruned):
                continue
            directory = file.rpartition("/")[0]
            if directory in seen:  # sorted: siblings share their parents
                continue
            new: list[str] = []  # the directories not yet listed, innermost first
            while directory not in seen:  # `path` itself is seen: the climb stops there
                new.append(directory)
                directory = directory.rpartition("/")[0]
            for directory in reversed(new):  # outermost first
                seen.add(directory)
                dirs.append(directory)
                if prune(directory):
                    pruned += (directory + "/",)
                    break
        if pruned:
            files = [file for file in files if not file.startswith(pruned)]
        return dirs, files

    def _recorded_under(self, path: str) -> bool:
        prefix = path + "/" if path else ""
        i = bisect.bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i].startswith(prefix)


# -- The desired tree from the commit's changes ---------------------------------------------------

CHANGE_LIMIT = 512  # paths changed: past this, listing the commit whole costs no more
ROOT = RepoEntry("", Kind.DIR)


class CommitDiff(NamedTuple):
    """What changed between the recorded commit and the new one (`git diff-tree -r -t`), and
    the entries of the new commit that building its changed part reads."""

    commit: str  # the new commit
    changed: Mapping[str, str]  # path -> "A" added, "D" deleted, "M" modified, "T" type changed
    # At the new commit: every changed path that is still there, every entry under the source
    # of a mapping that renders (see rendering_sources), with the trees leading to them.
    entries: Mapping[str, RepoEntry]
    sources: Mapping[str, RepoEntry]  # at the new commit: each mapping's source that exists


def inputs_digest(profile: EffectiveProfile, context: TemplateContext) -> str:
    """A digest of everything the desired tree depends on besides the commit's content.

    The commit id and ref are left out (they change at every commit): a mapping that renders
    files is built whole at every commit instead (see rendering_sources), so a template that
    names them is still exact. Rendered mapping paths are in, as they may name any value.
    """
    general = attrs.evolve(context, commit="", ref="")
    text = repr((profile, general, desired.mapping_paths(profile, context)))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def rendering_sources(profile: EffectiveProfile, context: TemplateContext) -> tuple[str, ...]:
    """The sources of the directory mappings that render files (templates or patches): those
    are built whole at every commit (a template may name the commit; which files a patch
    matches follows the whole folder), so a diff must list them whole."""
    paths = desired.mapping_paths(profile, context)
    return tuple(sorted({paths[i][0] for i, m in enumerate(profile.mappings) if _renders(m)}))


def _renders(mapping: model.Mapping) -> bool:
    return mapping.template or bool(mapping.patches)


def whole_because(
    manifest: Manifest | None, profile: EffectiveProfile, context: TemplateContext, commit: str
) -> str | None:
    """Why the desired tree of `commit` must be built whole rather than from the changes since
    the manifest's commit (None: it may be built from them). Needs no git."""
    if manifest is None or not manifest.commit:
        return "no commit is recorded"
    if manifest.skipped is None or not manifest.inputs:
        return "the manifest does not record the profile it was made with"
    if manifest.inputs != inputs_digest(profile, context):
        return "the GatewaySync, its profile or its template values changed"
    dests = [dest for _, dest in desired.mapping_paths(profile, context)]
    for i, a in enumerate(dests):
        for b in dests[i + 1 :]:
            if a == b or not a or not b or a.startswith(b + "/") or b.startswith(a + "/"):
                return f'mappings overlap at "{max(a, b, key=len) or "."}" (one may win a path)'
    if "" in rendering_sources(profile, context):
        return "a mapping that renders files reads the whole repository"
    return None


def whole_because_diff(
    diff: CommitDiff, profile: EffectiveProfile, context: TemplateContext
) -> str | None:
    """Why the tree must be built whole after all, given the diff (None: from the changes)."""
    if len(diff.changed) > CHANGE_LIMIT:
        return f"more than {CHANGE_LIMIT} paths changed"
    for source, _ in desired.mapping_paths(profile, context):
        if diff.changed.get(source, "M") != "M":
            return f'the source "{source or "."}" of a mapping appeared, went or changed kind'
    return None


@attrs.frozen(slots=True)
class FromDiff:
    """A desired tree built from a commit's changes; `built`: the files that went through the
    rules (every other file is a record carried forward); `check`: what paths_to_check says of
    the tree, found from the changes."""

    tree: DesiredTree
    built: frozenset[str]
    check: frozenset[str]


class _DiffView:
    """The RepoSnapshot the desired-tree rules see: only what the diff lists."""

    def __init__(
        self,
        diff: CommitDiff,
        read: Callable[[RepoEntry], bytes],
        read_ahead: Callable[[Iterable[RepoEntry]], None] | None,
    ) -> None:
        self._diff = diff
        self._read = read
        self._read_ahead = read_ahead
        self._sorted = sorted(diff.entries)

    @property
    def commit(self) -> str:
        return self._diff.commit

    def entry(self, path: str) -> RepoEntry | None:
        if not path:
            return ROOT
        return self._diff.sources.get(path) or self._diff.entries.get(path)

    def walk(self, path: str) -> Iterator[RepoEntry]:
        prefix = path + "/" if path else ""
        entries = self._diff.entries
        for p in self._sorted[bisect.bisect_left(self._sorted, prefix) :]:
            if not p.startswith(prefix):
                break
            yield entries[p]

    def read(self, entry: RepoEntry) -> bytes:
        return self._read(entry)

    def read_ahead(self, entries: Iterable[RepoEntry]) -> None:
        if self._read_ahead is not None:
            self._read_ahead(entries)


class _Whole(Exception):
    """Building from the changes would not be exact here: build the tree whole."""


def from_diff(
    profile: EffectiveProfile,
    context: TemplateContext,
    manifest: Manifest,
    diff: CommitDiff,
    read: Callable[[RepoEntry], bytes],
    read_ahead: Callable[[Iterable[RepoEntry]], None] | None = None,
) -> FromDiff | str:
    """The desired tree at `diff.commit`, built from the changes since `manifest.commit` and the
    manifest's records; or why it must be built whole. Call only when whole_because and
    whole_because_diff found no reason. Raises InvalidInput as desired.build does."""
    part = desired.build(profile, _DiffView(diff, read, read_ahead), context)
    paths = desired.mapping_paths(profile, context)
    touched: set[str] = set(part.files)
    whole: list[str] = []  # destinations of mappings built whole
    dir_roots: list[tuple[str, int]] = []
    for root in part.roots:
        if root.kind is not model.MappingType.DIR:
            continue
        base = root.path + "/" if root.path else ""
        dir_roots.append((base, root.mapping))
        if _renders(profile.mappings[root.mapping]):
            whole.append(base)
            continue
        source = paths[root.mapping][0]
        prefix = source + "/" if source else ""
        for changed in (diff.changed, diff.entries):
            touched.update(base + p[len(prefix) :] for p in changed if p.startswith(prefix))
    whole_prefixes = tuple(whole)
    try:
        files, left = _carried(manifest, touched, whole_prefixes, dir_roots)
    except _Whole as e:
        return str(e)
    built = frozenset(part.files)
    files.update(part.files)
    parent_dirs = folders_above(files)
    scope = set(touched)
    for path in touched:
        scope.update(parents(path))

    def in_scope(path: str) -> bool:
        return path in scope or path.startswith(whole_prefixes)

    empty = {d for d in manifest.dirs if not in_scope(d)}
    empty.update(d for d in part.dirs if in_scope(d) and d not in parent_dirs)
    mapping_level = (SkipReason.SOURCE_MISSING, SkipReason.PATCH_UNMATCHED)
    try:
        old = [Skip(p, SkipReason(r), d) for p, r, d in manifest.skipped or ()]
    except ValueError:
        return "the manifest records a skip reason this version does not know"
    skipped = [s for s in old if s.reason not in mapping_level and not in_scope(s.path)]
    skipped.extend(part.skipped)
    tree = attrs.evolve(
        part,
        files=files,
        dirs=frozenset(parent_dirs | empty),
        skipped=tuple(skipped),
        parent_dirs=frozenset(parent_dirs),
    )
    # paths_to_check(tree, manifest), from what was built: a carried file is as recorded.
    check = {path for path in left if path not in files}
    check.update(_differing(part.files, manifest))
    check.update(tree.dirs - tree.parent_dirs)
    check.update(path for path in manifest.dirs if path not in tree.dirs)
    return FromDiff(tree, built, frozenset(check))


def _carried(
    manifest: Manifest,
    touched: set[str],
    whole: tuple[str, ...],
    dir_roots: list[tuple[str, int]],
) -> tuple[dict[str, DesiredFile], list[str]]:
    """The records the commit did not touch, as desired files (the mapping: the one directory
    root they are under; destinations do not overlap here), and the records it did (or that a
    mapping built whole holds), whose paths are to be checked. Each root's records are one
    span of the sorted paths: taken by the span, not matched one by one."""
    records = manifest.records
    paths = sorted(records)
    spans = sorted(_span(paths, base) for base, _ in dir_roots)
    if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
        raise _Whole("mappings overlap")  # whole_because says so first: a guard
    files: dict[str, DesiredFile] = {}
    make = tuple.__new__  # DesiredFile's own __new__ is Python code: this loop runs per file
    file_kind = Kind.FILE
    for base, mapping in dir_roots:
        if base.startswith(whole):
            continue
        lo, hi = _span(paths, base)
        for path in paths[lo:hi]:
            blob, size, _, _, mode, _, _ = records[path]
            source = make(RepoEntry, (path, file_kind, blob, mode, size))
            files[path] = make(DesiredFile, (path, blob, mode, size, mapping, source, None))
    left = [path for path in touched if files.pop(path, None) is not None or path in records]
    for base in whole:
        lo, hi = _span(paths, base)
        left.extend(paths[lo:hi])
    outside = [path for path in _gaps(paths, spans) if path not in touched]
    if outside:
        first = next(path for path in records if path in set(outside))  # as the manifest has it
        raise _Whole(f'the recorded file "{first}" is under no mapping now')
    return files, left


def _span(paths: list[str], base: str) -> tuple[int, int]:
    """Where the sorted `paths` under `base` ("" or a folder with its "/") are."""
    if not base:
        return 0, len(paths)
    return bisect.bisect_left(paths, base), bisect.bisect_left(paths, base[:-1] + "0")  # "/"+1


def _gaps(paths: list[str], spans: list[tuple[int, int]]) -> Iterator[str]:
    """The sorted `paths` in none of the sorted, disjoint `spans`."""
    at = 0
    for lo, hi in spans:
        yield from paths[at:lo]
        at = max(at, hi)
    yield from paths[at:]


def rewrites_carried(plan: SyncPlan, built: FromDiff) -> bool:
    """Whether the plan writes a file carried forward from the manifest (drift seen beside a
    change): its content, rendered or not, is then taken from a tree built whole."""
    return any(op.action is Action.WRITE and op.path not in built.built for op in plan.changes)
