"""Planning a new commit from what the commit changed, without walking the whole data directory.

A full check lstats every file under the managed roots: that is how drift and stray files are
found, and it runs at least once every `syncPeriod`. In between, a sync to a new commit only
needs the live state where the commit changes something. `RecordedTree` gives the planner that
view: every directory on the way to a changed path is listed for real, and everything else is
taken from the manifest, as Stoker last wrote it. The planner itself is unchanged, so the rules
are the same ones; it just cannot see drift outside the changed paths until the next full check.

Why this is safe: a path the plan acts on is either a changed path or inside a directory that
is listed for real, so every write, delete and rmdir is decided on real state. A directory seen
for real that the manifest knows nothing under is listed for real too, so nothing is ever
believed empty when it is not.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from stoker_core.desired import DesiredTree
from stoker_core.manifest import Manifest
from stoker_core.paths import parents
from stoker_core.trees import REGULAR, Kind, LiveEntry, LiveTree


def paths_to_check(desired: DesiredTree, manifest: Manifest) -> set[str]:
    """Paths to see for real: files whose desired state differs from what the manifest records
    Stoker wrote, and the empty directories of this commit and of the recorded one (a folder
    holding only excluded files is one: no record leads to it)."""
    records = manifest.records
    changed = {
        path
        for path, want in desired.files.items()
        if (record := records.get(path)) is None
        or record.blob != want.blob
        or record.mode != want.mode
    }
    changed.update(path for path in records if path not in desired.files)
    changed.update(desired.dirs - desired.parent_dirs)  # empty: nothing below them is recorded
    changed.update(path for path in manifest.dirs if path not in desired.dirs)  # dropped now
    return changed


def full_check_due(
    *, last_full_check: float | None, now: float, sync_period: int, same_commit: bool
) -> bool:
    """Whether this sync must check every managed file (drift, stray files) for real.

    Always for a resync of the same commit (that is what a resync is for) and when the last
    full check is older than `syncPeriod`; otherwise a new commit is planned from its changes.
    """
    if same_commit or last_full_check is None:
        return True
    return not 0 <= now - last_full_check < sync_period


class RecordedTree:
    """A LiveTree: real in the directories leading to `check`, the manifest elsewhere."""

    def __init__(self, live: LiveTree, manifest: Manifest, check: set[str]) -> None:
        self._live = live
        self._records = manifest.records
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
        if path in self._real or not self._recorded_under(path):
            yield from self._walk_real(path, prune)
        else:
            yield from self._walk_recorded(path, prune)

    def _walk_real(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        def prune_or_defer(child: str) -> bool:
            # Directories whose contents come from the manifest are walked separately below.
            if prune(child):
                return True
            if child not in self._real and self._recorded_under(child):
                deferred.append(child)
                return True
            return False

        deferred: list[str] = []
        yield from self._live.walk(path, prune_or_defer)
        for child in deferred:
            yield from self._walk_recorded(child, prune)

    def _walk_recorded(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        """Every recorded file strictly below `path`, with the directories leading to it."""
        prefix = path + "/" if path else ""
        seen: set[str] = {path}
        pruned: tuple[str, ...] = ()
        records = self._records
        entry = tuple.__new__  # LiveEntry's own __new__ is Python code: this loop runs per file
        file_kind, dir_kind = Kind.FILE, Kind.DIR
        start = bisect.bisect_left(self._sorted, prefix)
        end = bisect.bisect_left(self._sorted, prefix[:-1] + "0") if prefix else None  # "/"+1
        for file in self._sorted[start:end]:
            if pruned and file.startswith(pruned):
                continue
            directory = file.rpartition("/")[0]
            if directory not in seen:  # sorted: siblings share their parents
                new: list[str] = []  # the directories not yet yielded, innermost first
                while directory not in seen:  # `path` itself is seen: the climb stops there
                    new.append(directory)
                    directory = directory.rpartition("/")[0]
                blocked = False
                for directory in reversed(new):  # outermost first
                    seen.add(directory)
                    yield entry(LiveEntry, (directory, dir_kind, 0, 0, 0, REGULAR, 0))
                    if prune(directory):
                        pruned += (directory + "/",)
                        blocked = True
                        break
                if blocked:
                    continue
            _, size, mtime_ns, inode, mode, _, ctime_ns = records[file]
            yield entry(LiveEntry, (file, file_kind, size, mtime_ns, inode, mode, ctime_ns))

    def _recorded_under(self, path: str) -> bool:
        prefix = path + "/" if path else ""
        i = bisect.bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i].startswith(prefix)
