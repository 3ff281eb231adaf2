"""Ports to the two trees Stoker compares: a repository at one commit and the live data directory.

Adapters implement these protocols (git for the snapshot, the filesystem for the live tree);
`MemoryTree` is the in-memory live tree used by core tests and by the `apply` oracle.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Protocol, runtime_checkable

import attrs

from stoker_core.globs import GlobSet


class Kind(enum.StrEnum):
    """What a path holds."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    SUBMODULE = "submodule"
    OTHER = "other"


EXECUTABLE = 0o755
REGULAR = 0o644


def blob_id(content: bytes) -> str:
    """Return the Git blob id (SHA-1 of `blob <size>\\0<content>`) of some bytes."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % len(content))
    digest.update(content)
    return digest.hexdigest()


class RepoEntry(NamedTuple):  # a tuple: tens of thousands are made per plan
    """One path in a commit; `blob` is the Git object id (empty for directories)."""

    path: str
    kind: Kind
    blob: str = ""
    mode: int = REGULAR
    size: int = 0


class RepoSnapshot(Protocol):
    """Read-only view of a repository at one commit."""

    @property
    def commit(self) -> str:
        """The full commit id."""
        ...

    def entry(self, path: str) -> RepoEntry | None:
        """Return the entry at `path` ("" is the root directory), or None."""
        ...

    def walk(self, path: str) -> Iterable[RepoEntry]:
        """Yield every entry strictly below directory `path`, recursively, in path order."""
        ...

    def read(self, entry: RepoEntry) -> bytes:
        """Return a file entry's content."""
        ...

    def read_ahead(self, entries: Iterable[RepoEntry]) -> None:
        """A hint: these file entries are read next (a snapshot may fetch them in one pass)."""
        ...


class LiveEntry(NamedTuple):  # a tuple: one per live path, made in the walk's hot loop
    """What lstat says about one path in the data directory (links are never followed)."""

    path: str
    kind: Kind
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    mode: int = REGULAR
    ctime_ns: int = 0  # set by the kernel at any change; nobody can set it back (unlike mtime)


class LiveTree(Protocol):
    """The live data directory, read without following symbolic links."""

    def lstat(self, path: str) -> LiveEntry | None:
        """Return the entry at `path` ("" is the data directory itself), or None."""
        ...

    def walk(self, path: str, prune: Callable[[str], bool]) -> Iterable[LiveEntry]:
        """Yield entries strictly below directory `path`; do not descend where prune(dir) holds."""
        ...

    def blob_id(self, path: str) -> str:
        """Return the Git blob id of a file's current content."""
        ...


class Walked(NamedTuple):
    """A folder's whole walk at once (see BulkTree)."""

    files: dict[str, LiveEntry]  # every non-directory below it, by path
    dirs: list[str]  # every directory below it, entered or not
    pruned: list[str]  # those of them the walk did not enter


@runtime_checkable
class BulkTree(Protocol):
    """A LiveTree that may have walked a folder already (a full check's walk, done meanwhile)."""

    def walked_ahead(self, path: str, never: GlobSet) -> Walked | None:
        """The walk of folder `path` that enters no folder `never` matches, as walk() with
        `never.matches` as prune would find it, when this tree has it at hand; else None."""
        ...


@attrs.define(slots=True)
class MemoryTree:
    """An in-memory live tree: files (content, mode), symlinks (target) and directories."""

    files: dict[str, tuple[bytes, int]] = attrs.field(factory=dict)
    links: dict[str, str] = attrs.field(factory=dict)
    dirs: set[str] = attrs.field(factory=set)
    _inodes: dict[str, int] = attrs.field(factory=dict)
    _clock: int = 1

    def put(self, path: str, content: bytes, mode: int = REGULAR) -> None:
        """Create or replace a file (parents are created)."""
        self._add_parents(path)
        self.links.pop(path, None)
        self.files[path] = (content, mode)
        self._clock += 1
        self._inodes[path] = self._clock

    def link(self, path: str, target: str) -> None:
        """Create a symbolic link."""
        self._add_parents(path)
        self.links[path] = target
        self._clock += 1
        self._inodes[path] = self._clock

    def mkdir(self, path: str) -> None:
        """Create a directory and its parents."""
        self._add_parents(path + "/x")

    def remove(self, path: str) -> None:
        """Remove a file or link."""
        self.files.pop(path, None)
        self.links.pop(path, None)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        prefix = path + "/"
        if any(p.startswith(prefix) for p in (*self.files, *self.links, *self.dirs)):
            raise OSError(f"directory not empty: {path}")
        self.dirs.discard(path)

    def _add_parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dirs.add("/".join(parts[:i]))

    def lstat(self, path: str) -> LiveEntry | None:
        """See LiveTree.lstat."""
        if path == "" or path in self.dirs:
            return LiveEntry(path, Kind.DIR, mode=EXECUTABLE)
        if path in self.links:
            return LiveEntry(path, Kind.SYMLINK, len(self.links[path]), 0, self._inodes[path])
        if path in self.files:
            content, mode = self.files[path]
            inode = self._inodes[path]
            return LiveEntry(path, Kind.FILE, len(content), inode * 1000, inode, mode)
        return None

    def walk(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        """See LiveTree.walk."""
        return _walk_known({*self.files, *self.links, *self.dirs}, self.lstat, path, prune)

    def blob_id(self, path: str) -> str:
        """See LiveTree.blob_id."""
        return blob_id(self.files[path][0])

    def content(self) -> dict[str, bytes]:
        """Return path → content of every regular file (for comparisons in tests)."""
        return {p: c for p, (c, _) in self.files.items()}

    def copy(self) -> MemoryTree:
        """Return an independent copy."""
        return MemoryTree(
            dict(self.files), dict(self.links), set(self.dirs), dict(self._inodes), self._clock
        )


@attrs.define(slots=True)
class MemorySnapshot:
    """An in-memory commit: path → content (files), plus symlinks and submodules."""

    files: dict[str, bytes] = attrs.field(factory=dict)
    executables: set[str] = attrs.field(factory=set)
    links: dict[str, str] = attrs.field(factory=dict)
    submodules: set[str] = attrs.field(factory=set)
    commit: str = "0" * 40
    _entries: dict[str, RepoEntry] | None = None

    def _index(self) -> dict[str, RepoEntry]:
        if self._entries is None:
            entries: dict[str, RepoEntry] = {"": RepoEntry("", Kind.DIR)}
            for path, content in self.files.items():
                mode = EXECUTABLE if path in self.executables else REGULAR
                entries[path] = RepoEntry(path, Kind.FILE, blob_id(content), mode, len(content))
            for path, target in self.links.items():
                entries[path] = RepoEntry(path, Kind.SYMLINK, blob_id(target.encode()), 0, 0)
            for path in self.submodules:
                entries[path] = RepoEntry(path, Kind.SUBMODULE)
            for path in list(entries):
                parts = path.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    entries.setdefault(
                        "/".join(parts[:i]), RepoEntry("/".join(parts[:i]), Kind.DIR)
                    )
            self._entries = entries
        return self._entries

    def entry(self, path: str) -> RepoEntry | None:
        """See RepoSnapshot.entry."""
        return self._index().get(path)

    def walk(self, path: str) -> Iterator[RepoEntry]:
        """See RepoSnapshot.walk."""
        prefix = path + "/" if path else ""
        for p in sorted(self._index()):
            if p and p.startswith(prefix):
                yield self._index()[p]

    def read_ahead(self, entries: Iterable[RepoEntry]) -> None:
        """See RepoSnapshot.read_ahead (in memory: nothing to fetch)."""

    def read(self, entry: RepoEntry) -> bytes:
        """See RepoSnapshot.read."""
        if entry.path in self.links:
            return self.links[entry.path].encode()
        return self.files[entry.path]

    def blobs(self) -> dict[str, bytes]:
        """Return blob id → content for every file (what an applier would fetch)."""
        return {blob_id(c): c for c in self.files.values()}


@attrs.define(slots=True)
class IndexTree:
    """A LiveTree made of blob ids only: the tree some other commit would produce.

    Used to compare two commits with no data directory (`stoker plan --base-ref`).
    """

    files: dict[str, tuple[str, int, int]] = attrs.field(factory=dict)  # blob, size, mode
    dirs: set[str] = attrs.field(factory=set)

    def add(self, path: str, blob: str, size: int, mode: int) -> None:
        """Add a file and its parent directories."""
        self.files[path] = (blob, size, mode)
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dirs.add("/".join(parts[:i]))

    def lstat(self, path: str) -> LiveEntry | None:
        """See LiveTree.lstat (mtime and inode are 0, matching the manifest built alongside)."""
        if path == "" or path in self.dirs:
            return LiveEntry(path, Kind.DIR, mode=EXECUTABLE)
        if path in self.files:
            _, size, mode = self.files[path]
            return LiveEntry(path, Kind.FILE, size, 0, 0, mode)
        return None

    def walk(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        """See LiveTree.walk."""
        return _walk_known({*self.files, *self.dirs}, self.lstat, path, prune)

    def blob_id(self, path: str) -> str:
        """See LiveTree.blob_id."""
        return self.files[path][0]


def _walk_known(
    paths: Iterable[str],
    lstat: Callable[[str], LiveEntry | None],
    path: str,
    prune: Callable[[str], bool],
) -> Iterator[LiveEntry]:
    """Walk an in-memory tree: every known path strictly below `path`, pruned subtrees left out."""
    prefix = path + "/" if path else ""
    pruned: list[str] = []
    for p in sorted(paths):
        if not p.startswith(prefix) or any(p.startswith(d + "/") for d in pruned):
            continue
        entry = lstat(p)
        assert entry is not None
        if entry.kind is Kind.DIR and prune(p):
            pruned.append(p)
        yield entry
