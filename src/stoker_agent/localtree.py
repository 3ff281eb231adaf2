"""The live data directory on the local filesystem, read without following symbolic links."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator

from stoker_core.trees import REGULAR, Kind, LiveEntry

_CHUNK = 1024 * 1024


def _kind(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.DIR
    if stat.S_ISLNK(mode):
        return Kind.SYMLINK
    return Kind.OTHER


def _entry(path: str, st: os.stat_result) -> LiveEntry:
    return LiveEntry(
        path,
        _kind(st.st_mode),
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
        st.st_mode & 0o7777,
        st.st_ctime_ns,
    )


class LocalTree:
    """A LiveTree over a directory; paths are relative, `/`-separated."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def _abs(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def lstat(self, path: str) -> LiveEntry | None:
        """See LiveTree.lstat."""
        try:
            return _entry(path, os.lstat(self._abs(path)))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def walk(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        """See LiveTree.walk (scandir; symbolic links are reported, never entered)."""
        # Once per live path of every full check: the absolute directory rides on the stack
        # (no join per directory) and entries are made by tuple.__new__ (a NamedTuple's own
        # __new__ is Python code).
        entry = tuple.__new__
        file_kind, dir_kind = Kind.FILE, Kind.DIR
        is_file = stat.S_ISREG
        stack = [(path, self._abs(path))]
        while stack:
            current, absolute = stack.pop()
            prefix = current + "/" if current else ""
            try:
                with os.scandir(absolute) as it:
                    children = list(it)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for child in children:
                rel = prefix + child.name
                if child.is_dir(follow_symlinks=False):
                    # The directory type comes from readdir itself: no stat call needed.
                    yield entry(LiveEntry, (rel, dir_kind, 0, 0, 0, REGULAR, 0))
                    if not prune(rel):
                        stack.append((rel, child.path))
                    continue
                st = child.stat(follow_symlinks=False)
                mode = st.st_mode
                kind = file_kind if is_file(mode) else _kind(mode)
                size, mtime, inode, ctime = st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns
                yield entry(LiveEntry, (rel, kind, size, mtime, inode, mode & 0o7777, ctime))

    def read(self, path: str) -> bytes:
        """Return a file's content (opened without following links)."""
        fd = os.open(self._abs(path), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def blob_id(self, path: str) -> str:
        """See LiveTree.blob_id (streams the file; opened without following links)."""
        fd = os.open(self._abs(path), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
