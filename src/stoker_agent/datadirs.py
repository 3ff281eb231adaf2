"""Descriptor-based access to a data directory and to Stoker's state in it.

Every path is opened component by component relative to a directory descriptor with
O_NOFOLLOW: whoever can write the data directory (the gateway) can plant a symbolic link
anywhere in it, `.stoker/` included, and Stoker must never follow one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from stoker_core.errors import StokerError

STATE_DIR = ".stoker"
STATE_FILE_LIMIT = 256 << 20  # bytes; the largest state file, a journal, lists every change once


class ApplyError(StokerError):
    """The data directory could not be changed (permissions, disk full, a link in the way)."""


# What stands where a real directory should, as an error names it.
_NOT_A_DIRECTORY = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISREG, "a file"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def real_directory_or_absent(path: str) -> None:
    """Refuse a state directory that is a link (or a file, a FIFO…): Stoker would write
    through it, or wait on it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        what = next((name for test, name in _NOT_A_DIRECTORY if test(mode)), "a device")
        raise ApplyError(
            f"{path} is {what}, not a directory; Stoker keeps its state only in real "
            "directories: remove it"
        )


def file_or_absent(path: str) -> None:
    """Refuse a directory where Stoker keeps a file: the file is replaced by a rename, which a
    directory refuses (late: after the sync's changes, for the manifest or its log)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise _a_directory(path)


class DirectoryInTheWay(ApplyError):
    """A directory stands where Stoker keeps one of its files (planted: Stoker makes none)."""


def _a_directory(where: str) -> DirectoryInTheWay:
    return DirectoryInTheWay(
        f"{where} is a directory, not a file; Stoker keeps its own file there: remove it"
    )


def plain_name(name: str, rel: str) -> None:
    """Refuse a path part that is not a name: ".." would climb out of the data directory."""
    if name in ("", ".", ".."):
        raise ApplyError(
            f'"{rel}": "{name}" is not a file name; Stoker never leaves the data directory'
        )


def open_dir(name: str, dir_fd: int | None, rel: str) -> int:
    """Open directory `name` in `dir_fd` (None: as a path) without following a link at its last
    part; `rel` names it in errors."""
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ApplyError(
                f"{rel}: is a symbolic link or a file, not a directory; Stoker never follows "
                "links: remove it"
            ) from None
        raise


class DataDir:
    """Descriptor-based access to one data directory; nothing here follows a symbolic link."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        self._dirs: dict[str, int] = {"": self.fd}
        self.is_root = os.geteuid() == 0
        self.owners: dict[str, tuple[int, int]] = {}  # directory → owner new files inherit

    def close(self) -> None:
        """Close every directory descriptor."""
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def dir_fd(self, rel: str, *, create: bool = False) -> int:
        """Open directory `rel` component by component with O_NOFOLLOW (creating if asked)."""
        if rel in self._dirs:
            return self._dirs[rel]
        parent, _, name = rel.rpartition("/")
        plain_name(name, rel)
        parent_fd = self.dir_fd(parent, create=create)
        try:
            fd = open_dir(name, parent_fd, rel)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent_fd)
            self._inherit_owner(parent_fd, name)
            fd = open_dir(name, parent_fd, rel)
        self._dirs[rel] = fd
        return fd

    def make_dir(self, rel: str) -> None:
        """Create directory `rel` in its existing parent (a journaled MKDIR creates one level)."""
        parent_fd, name = self.split(rel)
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        except FileExistsError:
            pass
        else:
            self._inherit_owner(parent_fd, name)
        self.dir_fd(rel)  # a link or a file standing there is refused

    def forget(self, rel: str) -> None:
        """Drop cached descriptors at or below `rel` (after removing it)."""
        for key in [k for k in self._dirs if k == rel or k.startswith(rel + "/")]:
            if key:
                os.close(self._dirs.pop(key))

    def split(self, rel: str, *, create: bool = False) -> tuple[int, str]:
        """Return (parent directory fd, base name) for `rel`."""
        parent, _, name = rel.rpartition("/")
        plain_name(name, rel)
        return self.dir_fd(parent, create=create), name

    def _inherit_owner(self, parent_fd: int, name: str) -> None:
        """New entries take the owner and group of their directory (a root sync must not leave
        root-owned files the gateway cannot rewrite)."""
        if not self.is_root:
            return
        parent = os.fstat(parent_fd)
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if (st.st_uid, st.st_gid) != (parent.st_uid, parent.st_gid):
            os.chown(name, parent.st_uid, parent.st_gid, dir_fd=parent_fd, follow_symlinks=False)

    def exists(self, rel: str) -> bool:
        """Tell whether `rel` exists (links count as existing; never followed)."""
        try:
            fd, name = self.split(rel)
            os.stat(name, dir_fd=fd, follow_symlinks=False)
            return True
        except (FileNotFoundError, ApplyError, NotADirectoryError):
            return False


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """lstat `name` in `dir_fd`, or None if absent (a link is reported, never followed)."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def exists_at(dir_fd: int, name: str) -> bool:
    """Tell whether `name` exists in `dir_fd` (a link counts; never followed)."""
    return lstat_at(dir_fd, name) is not None


def write_all(fd: int, chunk: bytes) -> None:
    """Write all of `chunk` (os.write may write less)."""
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_state_at(
    dir_fd: int, name: str, text: str, *, durable: bool = True, where: str = STATE_DIR
) -> None:
    """Write state file `name` in `dir_fd` (`where`, as errors name it) atomically and
    durably, never through a link: a leftover or planted `*.tmp` is removed first and the new
    one created exclusively. `durable=False`: no fsync, for a file whose loss costs only time
    (ctimes.json)."""
    tmp = name + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    try:
        write_all(fd, text.encode("utf-8"))
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)  # a half-written file on a full disk frees its space
        raise
    os.close(fd)
    try:
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # a link, never its target
    except IsADirectoryError:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise _a_directory(f"{where}/{name}") from None


def _open_parent(path: str) -> int:
    """The directory holding state file `path` (`.stoker`), never followed if it is a link."""
    parent = os.path.dirname(path) or "."
    return open_dir(parent, None, parent)


def write_state_file(path: str, text: str) -> None:
    """Write a small state file atomically and durably, never through a link (H3)."""
    fd = _open_parent(path)
    try:
        write_state_at(fd, os.path.basename(path), text)
    finally:
        os.close(fd)


def read_state_file(path: str, limit: int = STATE_FILE_LIMIT) -> str | None:
    """A state file's text, None when it is absent; never read through a link."""
    try:
        fd = _open_parent(path)
    except FileNotFoundError:
        return None
    try:
        return read_state_at(fd, os.path.basename(path), os.path.dirname(path), limit)
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)


def remove_state_file(path: str) -> bool:
    """Remove a state file; False if it was absent. A link at its directory is never followed."""
    try:
        fd = _open_parent(path)
    except FileNotFoundError:
        return False
    try:
        os.unlink(os.path.basename(path), dir_fd=fd)
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)
    return True


def open_state_at(dir_fd: int, name: str, flags: int, where: str) -> int:
    """Open state file `name` in `dir_fd` with `flags`, never through a link: a link there is
    an ApplyError naming `where/name`."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ApplyError(
                f"{where}/{name}: is a symbolic link; Stoker never follows links: remove it"
            ) from None
        if e.errno == errno.EISDIR:  # opened to write
            raise _a_directory(f"{where}/{name}") from None
        raise


def open_to_append_at(dir_fd: int, name: str) -> int | None:
    """Open an append-only state file (a log) to read and write, creating it if absent, never
    through a link: None when a link stands there (the caller replaces it by a rename)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK  # a FIFO planted there does not block
    try:
        return open_state_at(dir_fd, name, flags, STATE_DIR)
    except ApplyError:
        return None


def read_state_at(dir_fd: int, name: str, where: str, limit: int = STATE_FILE_LIMIT) -> str:
    """A state file's text, never through a link, at most `limit` bytes."""
    # Non-blocking: opening a FIFO planted there would wait for a writer (and then stall reads).
    fd = open_state_at(dir_fd, name, os.O_RDONLY | os.O_NONBLOCK, where)
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode):
        os.close(fd)
        raise ApplyError(f"{where}/{name}: is a FIFO; Stoker reads only files there: remove it")
    if stat.S_ISDIR(mode):  # opened to read: only reading it fails
        os.close(fd)
        raise _a_directory(f"{where}/{name}")
    with open(fd, "rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"{where}/{name} is larger than {limit} bytes")
    return raw.decode("utf-8")
