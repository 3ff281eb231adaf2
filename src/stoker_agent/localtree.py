"""The live data directory on the local filesystem, read without following symbolic links."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import marshal
import os
import stat
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import stoker_agent
import stoker_core
from stoker_agent.walker import ENTERED, PRUNED, STATED, listing
from stoker_core.globs import BadPattern, GlobSet
from stoker_core.trees import REGULAR, Kind, LiveEntry, Walked

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


# A folder opened to stat its entries by name: never through a link, nothing read (O_PATH).
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | getattr(os, "O_PATH", 0)
_DEEPEST = 64  # folders: Ignition's deepest paths are about 15


def _within(folder: str, outer: str) -> bool:
    """Whether `folder` is `outer` or below it ("" is the data directory)."""
    return folder == outer or not outer or folder.startswith(outer + "/")


def _open_folder(name: str, parent: int | None) -> int | None:
    """The folder `name` in `parent` opened, or None: absent, a link or not a folder."""
    if parent is None:
        return None
    try:
        return os.open(name, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:  # a link where a folder was
            return None
        raise


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


# The child's program: stoker_agent.walker, found where this process found it (-I: no
# environment variable, no user site, not the working directory; -S: no site-packages scan,
# it needs none; -B: it writes no bytecode). It decodes file names as this process does (the
# UTF-8 mode is passed on; the walker checks the encoding).
_WALKER = "import sys; sys.path[:0] = {paths!r}; from stoker_agent import walker; walker.main()"
_FLAGS = ("-I", "-S", "-B")


class LocalTree:
    """A LiveTree over a directory; paths are relative, `/`-separated."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._child: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._tops: tuple[str, ...] = ()
        self._never: tuple[str, ...] = ()  # the patterns of the folders the child never entered
        self._ahead: dict[str, Any] = {}

    def prefetch(self, tops: Sequence[str], never: Sequence[str]) -> None:
        """Walk folders `tops` in a child process (stoker_agent.walker), never entering a folder
        that a pattern of `never` matches: a full check's walk then runs on another core while
        the desired tree is built, and walk() of one of them takes its result. Whatever the
        child cannot do, walk() does itself."""
        paths = sorted({os.path.dirname(os.path.dirname(p.__file__ or "")) for p in _PACKAGES})
        code = _WALKER.format(paths=paths)
        # Its output goes to an unnamed file, not a pipe: it never waits for this process.
        try:
            output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _prefetched or _reap)
        except OSError:
            return  # no writable temporary directory: walked here, later
        try:
            child = subprocess.Popen(
                [sys.executable, *_FLAGS, "-X", f"utf8={sys.flags.utf8_mode}", "-c", code],
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            output.close()
            return  # walked here, later
        weakref.finalize(self, _reap, child, output)
        self._child, self._output, self._tops = child, output, tuple(tops)
        self._never = tuple(never)
        assert child.stdin is not None
        try:
            encoding = [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()]
            child.stdin.write(marshal.dumps((self.root, list(tops), list(never), encoding)))
            child.stdin.close()
        except OSError:
            pass  # it ended: walked here

    def _prefetched(self, path: str) -> Any:
        """The child's columns for folder `path`, once; None if it has none (or failed)."""
        child, output = self._child, self._output
        if child is not None and output is not None and path in self._tops:
            self._child = self._output = None
            lists: object = []
            with output:
                if child.wait() == 0:
                    output.seek(0)
                    with contextlib.suppress(EOFError, ValueError, TypeError):
                        lists = marshal.loads(output.read())
            if isinstance(lists, list) and len(lists) == len(self._tops):
                self._ahead = dict(zip(self._tops, lists, strict=True))
        return self._ahead.pop(path, None)

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

    def lstat_many(self, paths: list[str]) -> list[LiveEntry | None]:
        """Each path's lstat, in order, reached through real folders only: each folder on the
        way is opened once (never through a link: None below one, or below anything that is not
        a folder), and its entries are stat'd by name; at most a path's depth stays open. A path
        more than _DEEPEST folders down is not stat'd (None: the caller sees it for real), so a
        planted manifest cannot make this hold more descriptors open than that."""
        found: list[LiveEntry | None] = [None] * len(paths)
        root = os.open(self.root, _FOLDER_FLAGS)
        chain: list[tuple[str, int | None]] = [("", root)]  # the folders open, outermost first
        try:
            for index in sorted(range(len(paths)), key=paths.__getitem__):
                path = paths[index]
                folder, _, name = path.rpartition("/")
                if folder.count("/") >= _DEEPEST:
                    continue
                while not _within(folder, chain[-1][0]):
                    _close(chain.pop()[1])
                below, fd = chain[-1]
                rest = folder[len(below) + bool(below) :].split("/") if folder != below else ()
                for part in rest:
                    below = f"{below}/{part}" if below else part
                    fd = _open_folder(part, fd)
                    chain.append((below, fd))
                if fd is not None:
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        stat_result = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        found[index] = _entry(path, stat_result)
        finally:
            for _, fd in chain:
                _close(fd)
        return found

    def walk(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        """See LiveTree.walk (scandir; symbolic links are reported, never entered)."""
        found = self._prefetched(path)
        if found is None:
            return self._walk_here(path, prune)
        answers: dict[str, bool] = {}  # each folder is asked once, whoever walks

        def ask(folder: str) -> bool:
            answer = answers.get(folder)
            if answer is None:
                answer = answers[folder] = prune(folder)
            return answer

        try:
            replayed = _replay(zip(*found, strict=True), ask)
        except (ValueError, TypeError):  # not the lists the walker writes
            replayed = None
        return iter(replayed) if replayed is not None else self._walk_here(path, ask)

    def walked_ahead(self, path: str, never: GlobSet) -> Walked | None:
        """See BulkTree.walked_ahead: the child's walk of folder `path`, taken apart a column at a
        time, when it never entered exactly the folders `never` matches; else None."""
        if path not in self._tops or never.patterns != _patterns(self._never):
            return None
        found = self._prefetched(path)
        if found is None:
            return None
        try:
            return _walked(*found)
        except (ValueError, TypeError):  # not the columns the walker writes
            return None

    def _walk_here(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
        # Once per live path of every full check: entries are made by tuple.__new__ (a
        # NamedTuple's own __new__ is Python code). The listing is the child's (walker).
        entry = tuple.__new__
        file_kind, dir_kind = Kind.FILE, Kind.DIR
        is_file = stat.S_ISREG
        for rel, st, _ in listing(path, self._abs(path), lambda folder: not prune(folder)):
            if st is None:
                yield entry(LiveEntry, (rel, dir_kind, 0, 0, 0, REGULAR, 0))
                continue
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


_PACKAGES = (stoker_agent, stoker_core)


def _replay(found: Iterable[Any], prune: Callable[[str], bool]) -> list[LiveEntry] | None:
    """The entries the walk would yield, from the child's list: `prune` is asked of the same
    folders, in the same order, as the walk would ask; None when the child left out a folder
    that `prune` enters (then the caller walks itself)."""
    entries: list[LiveEntry] = []
    add, entry = entries.append, tuple.__new__
    file_kind, dir_kind = Kind.FILE, Kind.DIR
    is_file = stat.S_ISREG
    left: set[str] = set()  # folders pruned here: what the child found below them is dropped
    for rel, what, size, mtime, inode, mode, ctime in found:
        if left and rel.rpartition("/")[0] in left:
            if what != STATED:
                left.add(rel)
            continue
        if what == STATED:
            kind = file_kind if is_file(mode) else _kind(mode)
            add(entry(LiveEntry, (rel, kind, size, mtime, inode, mode & 0o7777, ctime)))
            continue
        add(entry(LiveEntry, (rel, dir_kind, 0, 0, 0, REGULAR, 0)))
        if not prune(rel):
            if what != ENTERED:  # left out there, entered here
                return None
        elif what == ENTERED:  # entered there (so listed below), left out here
            left.add(rel)
    return entries


def _patterns(never: tuple[str, ...]) -> tuple[str, ...] | None:
    """The patterns the child's GlobSet holds (None: it could not make one, and walked not)."""
    try:
        return GlobSet(never).patterns
    except BadPattern:
        return None


# The entry kind of each file type (stat.S_IFMT of st_mode); any other is Kind.OTHER.
_KINDS = {stat.S_IFREG: Kind.FILE, stat.S_IFDIR: Kind.DIR, stat.S_IFLNK: Kind.SYMLINK}
# Per mark, a bytes.translate table turning the child's `what` column into a selector for it.
_ONLY = {mark: bytes(byte == mark for byte in range(256)) for mark in (ENTERED, PRUNED, STATED)}
_MARKS = bytes([ENTERED, PRUNED, STATED])
_NEW_ENTRY = functools.partial(tuple.__new__, LiveEntry)  # a LiveEntry from a row, in C


def _walked(
    paths: list[str],
    what: bytes,
    sizes: list[int],
    mtimes: list[int],
    inodes: list[int],
    modes: list[int],
    ctimes: list[int],
) -> Walked | None:
    """The child's columns taken apart with no Python step per entry (translate, compress,
    map and zip run in C); None for an entry stated as a folder (one appeared between the
    child's readdir and its lstat), which the replay in walk() gives as the walk here would."""
    if len({len(paths), len(what), len(sizes), len(mtimes), len(inodes), len(modes)}) != 1:
        raise ValueError("columns of different lengths")
    if len(ctimes) != len(paths) or not isinstance(what, bytes) or what.translate(None, _MARKS):
        raise ValueError("not the walker's columns")
    stated, others = what.translate(_ONLY[STATED]), itertools.repeat(Kind.OTHER)
    names = list(itertools.compress(paths, stated))
    kinds = list(map(_KINDS.get, map(stat.S_IFMT, itertools.compress(modes, stated)), others))
    if Kind.DIR in kinds:
        return None
    rows = zip(
        names,
        kinds,
        itertools.compress(sizes, stated),
        itertools.compress(mtimes, stated),
        itertools.compress(inodes, stated),
        map(int.__and__, itertools.compress(modes, stated), itertools.repeat(0o7777)),
        itertools.compress(ctimes, stated),
        strict=True,
    )
    pruned = list(itertools.compress(paths, what.translate(_ONLY[PRUNED])))
    dirs = list(itertools.compress(paths, what.translate(_ONLY[ENTERED])))
    return Walked(dict(zip(names, map(_NEW_ENTRY, rows), strict=True)), dirs + pruned, pruned)


def _reap(child: subprocess.Popen[bytes], output: IO[bytes]) -> None:
    """Stop and wait for a walker whose result was never taken."""
    if child.poll() is None:
        child.kill()
    child.wait()
    if child.stdin is not None:
        child.stdin.close()
    output.close()
