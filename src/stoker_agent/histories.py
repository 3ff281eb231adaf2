"""The history file of standalone `stoker sync`: `.stoker/history.jsonl`, read and appended.

The rules (bounds, what a damaged line is, when to rewrite) are stoker_core.history's; here is
only the I/O, never through a link (the gateway can write the data directory):
- an append that keeps the file within its bounds and finds it clean writes one line at its
  end and fsyncs it: a crash leaves at most a torn last line, which is never read back;
- otherwise (a torn or damaged line, too many entries or bytes, a link or a non-file in the
  way) the newest entries and the new one are written to a temporary file, fsynced, and
  renamed over it: a crash leaves the old file or the new one, whole.
"""

from __future__ import annotations

import getpass
import logging
import os
import stat

import attrs

from stoker_agent.datadirs import (
    STATE_DIR,
    ApplyError,
    open_dir,
    open_state_at,
    open_to_append_at,
    real_directory_or_absent,
    write_all,
    write_state_at,
)
from stoker_core import history
from stoker_core.fieldwise import FIELDWISE
from stoker_core.status import SyncRecord

log = logging.getLogger(__name__)

NAME = "history.jsonl"
HISTORY_FILE = f"{STATE_DIR}/{NAME}"


def os_user() -> str:
    """The OS user running this process (its uid when it has no name, as in a container)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def read(data_dir: str) -> history.History:
    """The history of `data_dir` (empty when there is none); ApplyError when a link stands
    at `.stoker` or at the file."""
    state = os.path.join(data_dir, STATE_DIR)
    try:
        dir_fd = open_dir(state, None, state)
    except FileNotFoundError:
        return history.History()
    try:
        try:
            fd = open_state_at(dir_fd, NAME, os.O_RDONLY | os.O_NONBLOCK, STATE_DIR)
        except FileNotFoundError:
            return history.History()
        try:
            return _read_fd(fd)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def _read_fd(fd: int) -> history.History:
    """Parse the newest READ_LIMIT bytes of an open history file (a non-file reads as empty)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return history.History(damaged=1)
    start = max(0, st.st_size - history.READ_LIMIT)
    return history.parse(os.pread(fd, history.READ_LIMIT, start), cut=start > 0)


def append(
    data_dir: str, entry: history.Entry, *, limit: int, collapse_repeats: bool = False
) -> None:
    """Add `entry` to the history of `data_dir`, keeping its newest `limit` entries and
    BYTE_CAP bytes (`collapse_repeats`: not when it repeats the last entry, see repeats)."""
    state = os.path.join(data_dir, STATE_DIR)
    real_directory_or_absent(state)
    os.makedirs(state, exist_ok=True)
    dir_fd = open_dir(state, None, state)
    try:
        _append_at(dir_fd, entry, limit, collapse_repeats)
    finally:
        os.close(dir_fd)


def _append_at(dir_fd: int, entry: history.Entry, limit: int, collapse_repeats: bool) -> None:
    new_line = history.line(entry)
    fd = open_to_append_at(dir_fd, NAME)  # None: a link planted there, replaced below
    text = new_line
    if fd is not None:
        try:
            st = os.fstat(fd)
            found = _read_fd(fd)
            if stat.S_ISREG(st.st_mode):
                if collapse_repeats and history.repeats_last(found, entry):
                    return
                rewritten = history.rewrite(found, new_line, limit=limit)
                if rewritten is None:
                    os.lseek(fd, st.st_size, os.SEEK_SET)
                    write_all(fd, new_line.encode("utf-8"))
                    os.fsync(fd)
                    return
                text = rewritten
        finally:
            os.close(fd)
    write_state_at(dir_fd, NAME, text)


def record(
    data_dir: str,
    entry: history.Entry,
    *,
    limit: int,
    collapse_repeats: bool = False,
    quiet: bool = False,
) -> None:
    """append(), for the end of a sync: a history that cannot be written is a warning (only
    logged with `quiet`: the sync failed on the machine and says so), never the sync's failure."""
    if not os.path.isdir(data_dir):
        return
    try:
        append(data_dir, entry, limit=limit, collapse_repeats=collapse_repeats)
    except (OSError, ApplyError) as e:
        log.log(logging.DEBUG if quiet else logging.WARNING, "%s not written: %s", HISTORY_FILE, e)


@attrs.frozen(slots=True)
class Recording:
    """How standalone `stoker sync` records its syncs (None in a pod: the agent's status
    ConfigMap and, next, the controller's status.history hold them)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    limit: int = history.DEFAULT_LIMIT
    user: str = ""
    collapse_repeats: bool = False  # --watch: a quiet pass like the last one is not recorded

    def add(self, data_dir: str, sync: SyncRecord, *, quiet: bool = False) -> None:
        """Record one sync's status record (a warning, never a failure, if it cannot be)."""
        entry = history.from_record(sync, via=history.STANDALONE, user=self.user)
        limit, collapse = self.limit, self.collapse_repeats
        record(data_dir, entry, limit=limit, collapse_repeats=collapse, quiet=quiet)
