"""Where `stoker sync` keeps its git mirror: never where the gateway can write.

A mirror is a git repository, and a repository carries configuration and hooks that git acts
on. Inside the data directory (the old `DATA/.stoker/git`), whoever can write there (the gateway
process, a gateway script) could make git run their code as the sync user, with the Git token
in its environment. So the mirror lives in the sync user's cache, keyed by data directory and
repository, and that directory and every directory above it must be writable only by the sync
user or root. The old mirror is removed, never opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator

from stoker_core.errors import InvalidInput

log = logging.getLogger("stoker.sync")
OLD_MIRROR = ".stoker/git"


def default_mirror_dir(data_dir: str, repo: str) -> str:
    """The sync user's cache directory for this data directory and repository."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(f"{os.path.realpath(data_dir)}\0{repo}".encode()).hexdigest()[:16]
    return os.path.join(base, "stoker", "mirrors", key)


class CacheUnwritable(InvalidInput):
    """The mirror's directory cannot be created (a read-only home, say)."""


@contextlib.contextmanager
def place(given: str | None, data_dir: str, repo: str) -> Iterator[str]:
    """The mirror's directory: the one given, else the cache, else a temporary one.

    Without a writable cache (a read-only root filesystem), each sync fetches its commit into
    a private temporary mirror, removed at the end: slower, never unsafe.
    """
    if given:
        yield given
        return
    try:
        path: str | None = prepare(default_mirror_dir(data_dir, repo), data_dir)
    except CacheUnwritable as e:
        log.info("%s; using a temporary mirror for this sync", e)
        path = None
    if path is not None:
        yield path
        return
    temp = tempfile.mkdtemp(prefix="stoker-mirror-")
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def prepare(path: str, data_dir: str) -> str:
    """Create the mirror directory (0700) after checking nobody else can write it or above it."""
    real = os.path.realpath(path)
    data = os.path.realpath(data_dir)
    if real == data or real.startswith(data.rstrip("/") + "/"):
        raise InvalidInput.one(
            "is inside the data directory, which the gateway can write; put the mirror "
            "elsewhere (the default is the sync user's ~/.cache/stoker/mirrors)",
            field="--mirror-dir",
        )
    _check_ancestors(os.path.dirname(real))
    try:
        os.makedirs(real, mode=0o700, exist_ok=True)
    except OSError as e:
        raise CacheUnwritable.one(
            f"cannot create the git mirror: {e.strerror}; give --mirror-dir (or "
            "STOKER_MIRROR_DIR) a directory the sync user can write",
            path=real,
        ) from None
    _check_one(real)
    return real


def _check_ancestors(path: str) -> None:
    """Every existing directory from `path` up to / is safe; missing ones are created 0700."""
    while True:
        with contextlib.suppress(FileNotFoundError):
            _check_one(path)
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _check_one(path: str) -> None:
    info = os.lstat(path)
    others_write = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sticky = info.st_mode & stat.S_ISVTX
    if info.st_uid not in (0, os.getuid()) or (others_write and not sticky):
        raise InvalidInput.one(
            "can be changed by another user, who could then make git run their code as the "
            "sync user; keep the git mirror under a directory only the sync user or root can "
            "write (chmod go-w, or choose another --mirror-dir)",
            path=path,
        )


def remove_old(data_dir: str) -> bool:
    """Remove `DATA/.stoker/git` left by an older Stoker, without following any link."""
    state = os.path.join(data_dir, os.path.dirname(OLD_MIRROR))
    try:
        fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False  # absent, or a link the sync refuses on its own
    name = os.path.basename(OLD_MIRROR)
    try:
        try:
            mode = os.lstat(name, dir_fd=fd).st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(mode):
            shutil.rmtree(name, dir_fd=fd)  # fd-relative, never follows a link inside
        else:
            os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
    log.warning(
        "removed %s: the gateway can write there, so Stoker no longer keeps its git mirror "
        "in the data directory",
        os.path.join(data_dir, OLD_MIRROR),
    )
    return True
