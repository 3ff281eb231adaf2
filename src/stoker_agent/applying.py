"""Crash-safe application of a SyncPlan to a gateway's data directory.

One transaction at a time, under `.stoker/txn/`:

1. prepare: every new file is written under `.stoker/txn/new/` (same filesystem, never inside
   the gateway's tree), made durable with one `syncfs`, and a journal listing every change is
   written and fsynced; a failure here removes the staged files and changes nothing;
2. commit: the journal is marked `committing`, then each change runs: a replaced or deleted file
   is first kept in `.stoker/txn/old/` (hard link or rename: no copy), a new file is renamed
   into place, and a directory the commit needs is created, so no reader ever sees a torn file;
   a failure here undoes what the commit did so far (see below);
3. finish: one more `syncfs`, the new manifest is renamed into place, and the transaction
   directory becomes `.stoker/last/`, the rollback point.

A crash before `committing` leaves the data directory untouched (the transaction is dropped on
the next start); a crash after it is rolled forward on the next start, since every step is
idempotent. To undo a transaction (a failure in the commit phase, or one while rolling forward),
its journal is first renamed to `undo.json` (a rename needs no free space), then every change is
undone in reverse from what `old/` kept; undoing is idempotent too, and a crash meanwhile is
finished on the next start. If undoing fails, the transaction stays for the next start to finish.

Every path, in the data directory and in `.stoker/` alike, is opened relative to directory
descriptors with O_NOFOLLOW, so a symbolic link is never followed; and a journal naming
anything but what its transaction staged is refused by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import stat
from collections.abc import Callable, Iterable
from itertools import compress, repeat
from operator import and_, is_, is_not, itemgetter, not_
from typing import Any

import attrs

from stoker_agent.datadirs import (
    STATE_DIR,
    ApplyError,
    DataDir,
    exists_at,
    file_or_absent,
    lstat_at,
    open_to_append_at,
    read_state_at,
    real_directory_or_absent,
    write_all,
    write_state_at,
    write_state_file,
)
from stoker_agent.journals import (
    JOURNAL,
    JOURNAL_VERSION,
    LEGACY_STAGING,
    UNDO_JOURNAL,
    Change,
    Txn,
    parse_changes,
    read_journal,
)
from stoker_core.errors import Blocked, InvalidInput
from stoker_core.manifest import CTIMES_PATH, MANIFEST_PATH, Manifest, Record, ctimes_json
from stoker_core.manifestlog import (
    LOG_LIMIT,
    LOG_PATH,
    append_plan,
    compact_due,
    delta_line,
    replay,
)
from stoker_core.paths import shorten
from stoker_core.plans import Action, Operation, Reason, SyncPlan

__all__ = [  # what other modules and tests use from here
    "JOURNAL_VERSION",
    "STATE_DIR",
    "Applier",
    "ApplyError",
    "DataDir",
    "Progress",
    "real_directory_or_absent",
    "write_state_file",
]

log = logging.getLogger("stoker.apply")
TXN_DIR = f"{STATE_DIR}/txn"
LAST_DIR = f"{STATE_DIR}/last"
LOCK_FILE = f"{STATE_DIR}/lock"
FULL_CHECK_FILE = f"{STATE_DIR}/full-check"  # its mtime: when every managed file was last checked
PENDING_FILE = f"{STATE_DIR}/scan-pending.json"  # applied, not yet confirmed by a scan
REJECTED_FILE = f"{STATE_DIR}/rejected.json"  # the commit the gateway rejected, held back
# The files a sync writes as it changes the data directory, or right after (the scan it owes, a
# rejection): a directory planted at one is refused before anything changes (writing the file
# would fail only then, and a scan owed could be forgotten once the directory is gone).
SYNC_FILES = (
    LOCK_FILE,
    MANIFEST_PATH,
    LOG_PATH,
    CTIMES_PATH,
    FULL_CHECK_FILE,
    PENDING_FILE,
    REJECTED_FILE,
)
MANIFEST_NAME = os.path.basename(MANIFEST_PATH)  # in STATE_DIR
CTIMES_NAME = os.path.basename(CTIMES_PATH)  # in STATE_DIR
LOG_NAME = os.path.basename(LOG_PATH)  # in STATE_DIR; in a transaction, the line it appends
OLD_LOG_PREFIX = "manifest.old.delta."  # + the entries of it the previous manifest had
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

ContentReader = Callable[[Operation], Iterable[bytes]]
Progress = Callable[[int, int], None]  # (done, total) steps of a transaction


# Up to this many changes, each file and directory the transaction touches is fsynced on its
# own; above it, one syncfs per phase is cheaper. syncfs also waits for every other writer's
# dirty pages on that filesystem (the gateway's database, its logs, another tool's copy), which
# a one-file change should not pay for.
PER_FILE_LIMIT = 64


def _syncfs(fd: int) -> None:
    """Flush the whole filesystem holding `fd` once (one call per batch, not one per file)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "syncfs") or libc.syncfs(fd) != 0:
        os.sync()


class Applier:
    """Runs transactions against one data directory; one writer at a time (flock)."""

    def __init__(
        self, data_dir: str, *, crash_at: int | None = None, progress: Progress | None = None
    ) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self._progress = progress
        self._crash_at = crash_at
        self._steps = 0
        self._lock_fd: int | None = None

    # -- locking and crash injection -------------------------------------------------------

    def __enter__(self) -> Applier:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def lock(self) -> None:
        """Take the single-writer lock or raise Blocked (exit code 4)."""
        state = os.path.join(self.data_dir, STATE_DIR)
        os.makedirs(self.data_dir, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(state)
        # Said plainly here, before any work; every later use goes through descriptors opened
        # with O_NOFOLLOW, so a link planted after this check is refused too.
        for rel in (STATE_DIR, TXN_DIR, LAST_DIR):
            real_directory_or_absent(os.path.join(self.data_dir, rel))
        for rel in SYNC_FILES:
            file_or_absent(os.path.join(self.data_dir, rel))
        fd = os.open(
            os.path.join(self.data_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Blocked(
                f"another sync holds {os.path.join(self.data_dir, LOCK_FILE)}; try again later"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _step(self) -> None:
        """A crash point: tests set crash_at=N to SIGKILL the process after step N."""
        self._steps += 1
        if self._crash_at is not None and self._steps == self._crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def _report(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(done, total)

    # -- public operations -------------------------------------------------------------------

    def recover(self) -> str:
        """Finish or undo an interrupted transaction; return what was done ("none" if clean)."""
        data = DataDir(self.data_dir)
        try:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISDIR(os.lstat(LEGACY_STAGING, dir_fd=data.fd).st_mode):
                    shutil.rmtree(LEGACY_STAGING, dir_fd=data.fd)
            try:
                txn = Txn(data.dir_fd(STATE_DIR), "txn")
            except FileNotFoundError:
                return "none"
            try:
                return self._recover(data, txn)
            finally:
                txn.close()
        finally:
            data.close()

    def _recover(self, data: DataDir, txn: Txn) -> str:
        journal, undoing = read_journal(txn)
        if journal is None or (not undoing and journal["state"] == "prepared"):
            txn.drop()  # nothing was moved yet
            return "rolled-back"
        txn.open_slots()
        changes = parse_changes(journal, txn)
        if undoing:
            self._undo_all(data, txn, changes)
            return "rolled-back"
        for change in changes:
            try:
                self._run(data, txn, change)
            except (OSError, ApplyError) as e:
                # Rolling forward cannot finish (a full disk, a name the file system refuses):
                # going back is the other whole state.
                log.warning(
                    "finishing the interrupted sync failed (%s); undoing it", _cause(change, e)
                )
                self._roll_back(data, txn, changes)
                return "rolled-back"
        self._finish(data, txn)
        return "rolled-forward"

    def apply(
        self,
        plan: SyncPlan,
        read: ContentReader,
        *,
        profile: str,
        previous: Manifest | None,
        previous_file: str | None = None,
    ) -> Manifest:
        """Apply `plan` as one transaction and return the manifest now on disk.

        `previous_file`: the manifest file (`.stoker/manifest.json`) `previous` was read from
        under this lock, kept for rollback by a hard link instead of being written again.
        """
        self.recover()
        data = DataDir(self.data_dir)
        try:
            try:
                txn = Txn(data.dir_fd(STATE_DIR), "txn", create=True)
            except OSError as e:
                raise ApplyError(f"{TXN_DIR}: {e.strerror}; nothing changed{_hint(e, plan)}") from e
            try:
                with _staging(txn, plan), _naming(TXN_DIR):
                    txn.open_slots(create=True)
                return self._transact(
                    data, txn, plan, read, profile, previous or Manifest(), previous_file
                )
            finally:
                txn.close()
        finally:
            data.close()

    def rollback(self) -> bool:
        """Restore exactly what the last transaction replaced or removed; False if nothing to do."""
        self.recover()
        data = DataDir(self.data_dir)
        try:
            try:
                last = Txn(data.dir_fd(STATE_DIR), "last")
            except FileNotFoundError:
                return False
            try:
                journal, _ = read_journal(last)
                if journal is None or journal.get("rolledBack"):
                    return False
                last.open_slots()
                previous_manifest = _previous_manifest(last)
                inverse = _inverse(parse_changes(journal, last), last)
                self._transact_inverse(data, inverse, last, previous_manifest)
            finally:
                last.close()
        finally:
            data.close()
        return True

    # -- transactions ------------------------------------------------------------------------

    def _transact(
        self,
        data: DataDir,
        txn: Txn,
        plan: SyncPlan,
        read: ContentReader,
        profile: str,
        previous: Manifest,
        previous_file: str | None,
    ) -> Manifest:
        self._step()
        planned = _changes(plan)
        per_file = len(planned) <= PER_FILE_LIMIT
        with _staging(txn, plan):
            by_path = {op.path: op for op in plan.changes if op.action is Action.WRITE}
            records: dict[str, Record] = {}
            changes: list[Change] = []
            total = 2 * len(planned)
            for done, change in enumerate(planned, 1):
                if change.action is Action.WRITE:
                    op = by_path[change.path]
                    with _naming(change.path):
                        staged = self._stage(data, txn, change, read(op), op.blob, plan, per_file)
                    records[change.path] = staged
                    change = attrs.evolve(change, inode=staged.inode)
                changes.append(change)
                self._report(done, total)
            with _naming(f"{TXN_DIR}/{MANIFEST_NAME}"):
                records.update(_kept_records(data, plan, previous))
                manifest = Manifest(
                    commit=plan.commit,
                    profile=profile,
                    records=records,
                    dirs=plan.dirs,
                    inputs=plan.inputs,
                    skipped=tuple((s.path, s.reason.value, s.detail) for s in plan.skipped),
                )
                manifest = _write_manifest(txn, previous, manifest, previous_file)
                if per_file:  # the staged files were fsynced as they were written
                    os.fsync(txn.new)
                    os.fsync(txn.fd)
                else:
                    _syncfs(data.fd)
            self._step()
            with _naming(f"{TXN_DIR}/{JOURNAL}"):
                self._write_journal(txn, "prepared", changes)
                self._step()
                self._write_journal(txn, "committing", changes)
        self._step()
        self._commit(data, txn, changes, len(changes) + 1, total)
        self._finish(data, txn, changes if per_file else None)
        _record_ctimes(data, txn.state_fd, changes)
        return manifest

    def _commit(
        self, data: DataDir, txn: Txn, changes: list[Change], first: int, total: int
    ) -> None:
        """Run every change; on any failure undo them all, so the tree is wholly old again."""
        for done, change in enumerate(changes, first):
            try:
                self._run(data, txn, change)
            except (OSError, ApplyError) as e:
                cause = _cause(change, e)
                try:
                    self._roll_back(data, txn, changes)
                except ApplyError as undo:
                    raise ApplyError(f"applying the commit failed at {cause}; then {undo}") from e
                raise ApplyError(
                    f"{cause} (while applying the commit); the data directory was rolled back "
                    f"to the previous commit, nothing changed{_hint(e, None)}"
                ) from e
            self._step()
            self._report(done, total)

    def _transact_inverse(
        self, data: DataDir, changes: list[Change], last: Txn, previous_manifest: str
    ) -> None:
        txn = Txn(data.dir_fd(STATE_DIR), "txn", create=True)
        try:
            txn.open_slots(create=True)
            with _staging(txn, None), _naming(f"{TXN_DIR}/new"):
                for change in changes:
                    if change.action is Action.WRITE:
                        slot = str(change.slot)
                        os.link(
                            slot,
                            slot,
                            src_dir_fd=last.old,
                            dst_dir_fd=txn.new,
                            follow_symlinks=False,
                        )
                write_state_at(txn.fd, MANIFEST_NAME, previous_manifest, where=txn.where)
                write_state_at(txn.fd, "manifest.old.json", previous_manifest, where=txn.where)
                _syncfs(data.fd)
                self._write_journal(txn, "prepared", changes, rolled_back=True)
                self._write_journal(txn, "committing", changes, rolled_back=True)
            self._step()
            self._commit(data, txn, changes, 1, len(changes))
            self._finish(data, txn)
        finally:
            txn.close()

    def _stage(
        self,
        data: DataDir,
        txn: Txn,
        change: Change,
        chunks: Iterable[bytes],
        blob: str,
        plan: SyncPlan,
        fsync: bool,
    ) -> Record:
        """Write one new file under txn/new and return its manifest record."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(str(change.slot), flags, 0o600, dir_fd=txn.new)
        try:
            for chunk in chunks:
                write_all(fd, chunk)
            os.fchmod(fd, change.mode or 0o644)
            owner = _owner_for(data, change.path)
            if owner is not None:
                os.fchown(fd, *owner)
            if fsync:
                os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return Record(
            blob, st.st_size, st.st_mtime_ns, st.st_ino, change.mode or 0o644, plan.commit
        )

    def _run(self, data: DataDir, txn: Txn, change: Change) -> None:
        """Carry out one journaled change; safe to repeat after a crash."""
        slot = str(change.slot)
        if change.action in (Action.DELETE, Action.RMDIR):
            try:
                fd, name = data.split(change.path)
            except FileNotFoundError:
                return  # its directory is already gone: a replay after a crash
            if not exists_at(fd, name):
                return
            if change.action is Action.RMDIR:
                data.forget(change.path)
                os.rmdir(name, dir_fd=fd)
            elif not exists_at(txn.old, slot):
                os.rename(name, slot, src_dir_fd=fd, dst_dir_fd=txn.old)
        elif change.action is Action.MKDIR:
            data.make_dir(change.path)
        elif exists_at(txn.new, slot):
            fd, name = data.split(change.path)  # its folder exists, or a journaled MKDIR made it
            here = lstat_at(fd, name)
            if here is not None and not exists_at(txn.old, slot):
                if stat.S_ISREG(here.st_mode):
                    os.link(name, slot, src_dir_fd=fd, dst_dir_fd=txn.old, follow_symlinks=False)
                else:  # a link or special file stands where the file goes: move it aside
                    os.rename(name, slot, src_dir_fd=fd, dst_dir_fd=txn.old)
            os.rename(slot, name, src_dir_fd=txn.new, dst_dir_fd=fd)

    def _undo(self, data: DataDir, txn: Txn, change: Change) -> None:
        """Undo one change from what txn/old kept; safe to repeat, and a no-op if it never ran."""
        slot = str(change.slot)
        kept = exists_at(txn.old, slot)
        if change.action is Action.RMDIR:
            data.make_dir(change.path)
            return
        try:
            fd, name = data.split(change.path)
        except (FileNotFoundError, ApplyError):
            return  # its folder is gone or is no folder (a MKDIR undone): nothing of it is left
        here = lstat_at(fd, name)
        if change.action is Action.MKDIR:
            if here is None or not stat.S_ISDIR(here.st_mode):
                return  # removed already (a file may stand there again: a DELETE undone)
            data.forget(change.path)
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError as e:
                if e.errno != errno.ENOTEMPTY:
                    raise
                log.warning("%s: left in place, someone else put files in it", change.path)
            return
        if change.action is Action.DELETE or exists_at(txn.new, slot):
            # Deleted, or the new file never moved in: restore what was moved aside, if anything.
            if kept and here is None:
                os.rename(slot, name, src_dir_fd=txn.old, dst_dir_fd=fd)
        elif here is not None and here.st_ino == change.inode:  # the new file is in place
            if kept:
                os.rename(slot, name, src_dir_fd=txn.old, dst_dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)

    def _roll_back(self, data: DataDir, txn: Txn, changes: list[Change]) -> None:
        """Undo a transaction whose commit cannot finish; ApplyError if that fails too."""
        try:
            # From here on a restart undoes rather than rolls forward: a rename, which needs
            # no free space, so it works on the full disk that may have stopped the commit.
            os.rename(JOURNAL, UNDO_JOURNAL, src_dir_fd=txn.fd, dst_dir_fd=txn.fd)
            os.fsync(txn.fd)
        except OSError as e:
            raise ApplyError(
                f"rolling back failed: {TXN_DIR}/{JOURNAL}: {e.strerror}; {_HALFWAY}"
            ) from e
        self._step()
        self._undo_all(data, txn, changes)

    def _undo_all(self, data: DataDir, txn: Txn, changes: list[Change]) -> None:
        failed: str | None = None
        for change in reversed(changes):
            try:
                self._undo(data, txn, change)
            except (OSError, ApplyError) as e:
                failed = failed or _cause(change, e)  # go on: restore all that can be
            self._step()
        if failed is not None:
            raise ApplyError(f"rolling back failed at {failed}; {_HALFWAY}")
        _syncfs(data.fd)
        txn.drop()
        self._step()

    def _finish(self, data: DataDir, txn: Txn, touched: list[Change] | None = None) -> None:
        """Make the renames durable (syncfs, or an fsync per touched directory), then close."""
        try:
            if touched is None:
                _syncfs(data.fd)
            else:
                _fsync_parents(data, touched)
                os.fsync(txn.old)
                os.fsync(txn.new)
            self._step()
            state = txn.state_fd
            if exists_at(txn.fd, MANIFEST_NAME):
                os.replace(MANIFEST_NAME, MANIFEST_NAME, src_dir_fd=txn.fd, dst_dir_fd=state)
                # The log names the replaced base, so it is stale already; removed for tidiness
                # (a link to it in txn/ keeps what a rollback needs).
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(LOG_NAME, dir_fd=state)
                os.fsync(state)
            elif exists_at(txn.fd, LOG_NAME):
                _append_log(txn)
            self._step()
            # No "done" journal: writing one needs free space, and a journal still saying
            # "committing" rolls forward harmlessly (every step is a no-op by now).
            if exists_at(state, "last"):
                shutil.rmtree("last", dir_fd=state)
            os.rename(txn.name, "last", src_dir_fd=state, dst_dir_fd=state)
            os.fsync(state)
        except OSError as e:
            raise ApplyError(
                f"{TXN_DIR}: {e.strerror} while finishing; the data directory holds the new "
                "commit, and Stoker finishes the transaction on its next run"
            ) from e
        self._step()

    def _write_journal(
        self, txn: Txn, state: str, changes: list[Change], *, rolled_back: bool = False
    ) -> None:
        body = {
            "version": JOURNAL_VERSION,
            "state": state,
            "rolledBack": rolled_back,
            "changes": [c.to_json() for c in changes],
        }
        write_state_at(txn.fd, JOURNAL, json.dumps(body, separators=(",", ":")), where=txn.where)
        os.fsync(txn.fd)


_HALFWAY = (
    "the data directory is partly at the previous commit and partly at the new one. Stoker "
    f"keeps {TXN_DIR} (the replaced files are in {TXN_DIR}/old) and finishes the rollback "
    "on its next run, once this is fixed"
)


class _Named(Exception):
    """An OSError while staging `path` (internal: _staging turns it into an ApplyError)."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(path)
        self.path = path
        self.error = error


@contextlib.contextmanager
def _naming(path: str) -> Any:
    """Tag an OSError with the path being worked on."""
    try:
        yield
    except OSError as e:
        raise _Named(path, e) from e


@contextlib.contextmanager
def _staging(txn: Txn, plan: SyncPlan | None) -> Any:
    """On any failure before the commit, remove what was staged: nothing changed, and a full
    disk gets its space back. An OSError becomes an ApplyError naming the path."""
    try:
        yield
    except BaseException as e:
        with contextlib.suppress(OSError):
            txn.drop()
        if isinstance(e, _Named):
            raise ApplyError(
                f"{shorten(e.path)}: {e.error.strerror or e.error} (while staging it in "
                f"{TXN_DIR}); nothing in the data directory changed and the staged files were "
                f"removed{_hint(e.error, plan)}"
            ) from e.error
        raise


def _hint(error: BaseException, plan: SyncPlan | None) -> str:
    """What to do about a machine error, briefly."""
    if isinstance(error, OSError) and error.errno in NO_SPACE:
        need = ""
        if plan is not None:
            size = sum(op.size for op in plan.operations if op.action is Action.WRITE)
            need = f" (this commit writes {size} bytes of new files)"
        return f"; free space or inodes on the data directory's volume{need}"
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "; make it writable by the user Stoker runs as"
    return ""


def _cause(change: Change, error: BaseException) -> str:
    """`path: what went wrong`, for a change that failed."""
    if isinstance(error, OSError):
        return f"{shorten(change.path)}: {error.strerror or error}"
    return str(error)


def _changes(plan: SyncPlan) -> list[Change]:
    """The plan's operations in execution order, each with a slot for its files."""
    return [Change(op.action, op.path, op.mode, slot) for slot, op in enumerate(plan.ordered())]


def _inverse(changes: list[Change], last: Txn) -> list[Change]:
    """The changes that undo a finished transaction, using the content it kept in old/."""
    undo: list[Change] = []
    for change in reversed(changes):
        kept = lstat_at(last.old, str(change.slot))
        if change.action in (Action.WRITE, Action.DELETE) and kept is not None:
            mode = stat.S_IMODE(kept.st_mode)
            undo.append(Change(Action.WRITE, change.path, mode, change.slot, kept.st_ino))
        elif change.action is Action.WRITE:
            undo.append(Change(Action.DELETE, change.path, 0, change.slot))
        elif change.action is Action.MKDIR:
            undo.append(Change(Action.RMDIR, change.path))
        elif change.action is Action.RMDIR:
            undo.append(Change(Action.MKDIR, change.path))
    rank = {Action.DELETE: 0, Action.RMDIR: 1, Action.MKDIR: 2, Action.WRITE: 3}

    def key(c: Change) -> tuple[int, int, str]:
        depth = c.path.count("/")
        return (rank[c.action], -depth if c.action is Action.RMDIR else depth, c.path)

    return sorted(undo, key=key)


def _kept_records(data: DataDir, plan: SyncPlan, previous: Manifest) -> dict[str, Record]:
    """Manifest records for files the plan keeps: reuse trusted ones (found a column at a time,
    with no Python step each: a one-file commit keeps thousands), stat adopted ones."""
    ops = plan.operations
    keeps = list(compress(ops, map(is_, map(_ACTION, ops), repeat(Action.KEEP))))
    paths = list(map(_PATH, keeps))
    found = list(map(previous.records.get, paths))
    unchanged = map(is_, map(_REASON, keeps), repeat(Reason.UNCHANGED))
    trusted = list(map(and_, unchanged, map(is_not, found, repeat(None))))
    out = dict(zip(compress(paths, trusted), compress(found, trusted), strict=True))
    for op in compress(keeps, map(not_, trusted)):
        fd, name = data.split(op.path)
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        out[op.path] = Record(
            op.blob, st.st_size, st.st_mtime_ns, st.st_ino, op.mode, plan.commit, st.st_ctime_ns
        )
    return out


_ACTION, _PATH, _REASON = (itemgetter(n) for n in range(3))  # of an Operation


def _record_ctimes(data: DataDir, state_fd: int, changes: list[Change]) -> None:
    """Record the ctimes the commit gave the files it wrote (a rename sets them, after the
    manifest was written) in `.stoker/ctimes.json`, for the next sync to trust them unread.
    Best effort and not fsynced: without it, those files are hashed once at the next check."""
    ctimes: dict[str, tuple[int, int]] = {}
    try:
        for change in changes:
            if change.action is Action.WRITE:
                fd, name = data.split(change.path)
                st = lstat_at(fd, name)
                if st is not None and stat.S_ISREG(st.st_mode):
                    ctimes[change.path] = (st.st_ino, st.st_ctime_ns)
        write_state_at(state_fd, CTIMES_NAME, ctimes_json(ctimes), durable=False)
    except (OSError, ApplyError) as e:
        log.info("recording the written files' ctimes: %s; they are hashed once instead", e)


def _owner_for(data: DataDir, rel: str) -> tuple[int, int] | None:
    """The owner new content should have: that of the nearest existing parent directory."""
    if not data.is_root:
        return None
    parent = rel.rpartition("/")[0]
    cached = data.owners.get(parent)
    if cached is not None:
        return cached
    probe = parent
    while True:
        try:
            st = os.stat(
                os.path.join(data.root, probe) if probe else data.root, follow_symlinks=False
            )
            if stat.S_ISDIR(st.st_mode):
                data.owners[parent] = (st.st_uid, st.st_gid)
                return st.st_uid, st.st_gid
        except FileNotFoundError:
            pass
        if not probe:
            return None
        probe = probe.rpartition("/")[0]


def _write_manifest(
    txn: Txn, previous: Manifest, manifest: Manifest, previous_file: str | None
) -> Manifest:
    """Stage the new manifest in the transaction: one line for the log, or a whole new base
    when none of format 3 was read or the log is due for compaction (see manifestlog)."""
    if previous_file is not None and previous.generation:
        line = delta_line(previous, manifest)
        if not compact_due(previous, len(line)):
            write_state_at(txn.fd, LOG_NAME, line, where=txn.where)
            _reserve_log(txn, previous, len(line))
            _keep_previous_manifest(txn, previous, previous_file)
            return attrs.evolve(
                manifest,
                generation=previous.generation,
                seq=previous.seq + 1,
                base_bytes=previous.base_bytes,
                log_bytes=previous.log_bytes + len(line),
            )
    generation = os.urandom(8).hex()
    text = manifest.to_json(generation)
    write_state_at(txn.fd, MANIFEST_NAME, text, where=txn.where)
    _keep_previous_manifest(txn, previous, previous_file)
    return attrs.evolve(manifest, generation=generation, base_bytes=len(text))


def _reserve_log(txn: Txn, previous: Manifest, size: int) -> None:
    """Make the append at finish need no new inode or block, as the renames it sits among
    need none (a full disk must not stop a commit from finishing): the log exists, and space
    for the line is reserved past its end."""
    state = txn.state_fd
    if not previous.seq:  # none yet, or a stale one: an empty log says the same as either
        write_state_at(state, LOG_NAME, "", durable=False)
    fd = os.open(LOG_NAME, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=state)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            _reserve(fd, st.st_size, size)
    finally:
        os.close(fd)


def _reserve(fd: int, offset: int, size: int) -> None:
    """fallocate(FALLOC_FL_KEEP_SIZE): blocks past the end, the file's size unchanged."""
    libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(libc, "fallocate", None)
    if call is None:
        return
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if call(fd, 1, offset, size) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EOPNOTSUPP, errno.ENOSYS):
            raise OSError(code, os.strerror(code))


def _keep_previous_manifest(txn: Txn, previous: Manifest, previous_file: str | None) -> None:
    """Keep the manifest the plan was made against, for rollback: hard links to the base it
    was read from (replaced, never rewritten) and to the log, with the number of its entries
    the plan saw in the link's name (the log only grows after them), rather than 2 MB
    serialised again."""
    if previous_file is not None:
        found = lstat_at(txn.state_fd, MANIFEST_NAME)
        if found is not None and stat.S_ISREG(found.st_mode):
            _link(txn, MANIFEST_NAME, "manifest.old.json")
            if previous.seq:
                _link(txn, LOG_NAME, f"{OLD_LOG_PREFIX}{previous.seq}")
            return
    write_state_at(
        txn.fd, "manifest.old.json", previous.to_json(os.urandom(8).hex()), where=txn.where
    )


def _link(txn: Txn, name: str, as_name: str) -> None:
    os.link(name, as_name, src_dir_fd=txn.state_fd, dst_dir_fd=txn.fd, follow_symlinks=False)


def _previous_manifest(last: Txn) -> str:
    """The manifest a rollback returns to, as a whole base with a new generation (so a log
    written against the one it replaces can never be applied to it); one that cannot be read
    is replaced by an empty one: every file is then hashed once, as with a damaged manifest."""
    text = read_state_at(last.fd, "manifest.old.json", last.where)
    logs = [n for n in os.listdir(last.fd) if n.startswith(OLD_LOG_PREFIX)]
    try:
        previous = Manifest.from_json(text)
        if previous.generation and logs:
            entries = int(logs[0].removeprefix(OLD_LOG_PREFIX))
            log_text = read_state_at(last.fd, logs[0], last.where, LOG_LIMIT)
            previous = replay(previous, log_text, entries)
    except (InvalidInput, ValueError) as e:
        log.warning("the manifest before the last sync cannot be read (%s); rebuilt by hashing", e)
        previous = Manifest()
    return previous.to_json(os.urandom(8).hex())


def _append_log(txn: Txn) -> None:
    """Append the transaction's line to the manifest's log: durable, and idempotent (a torn
    tail is cut off first, a line already last is not written again, see append_plan)."""
    line = read_state_at(txn.fd, LOG_NAME, TXN_DIR, LOG_LIMIT)
    state = txn.state_fd
    fd = open_to_append_at(state, LOG_NAME)  # None: a link planted there, replaced below
    if fd is not None:
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
            raw = os.pread(fd, LOG_LIMIT + 1, 0) if regular else b"\xff"
            plan = append_plan(raw.decode("utf-8", "replace"), line)
            if not plan.replace and len(raw) <= LOG_LIMIT:
                if plan.keep < len(raw):
                    os.ftruncate(fd, plan.keep)  # a torn tail: committed lines stay as they are
                if plan.write:  # into the space _reserve_log kept: a full disk cannot stop it
                    os.lseek(fd, plan.keep, os.SEEK_SET)
                    write_all(fd, line.encode("utf-8"))
                os.fsync(fd)
                return
        finally:
            os.close(fd)
    # A log of another base, or not a log at all: a new file in its place (by rename, so a
    # link a rollback keeps to the old one is left as it was).
    write_state_at(state, LOG_NAME, line)


def _fsync_parents(data: DataDir, changes: list[Change]) -> None:
    """Fsync every data-directory folder whose entries the changes added, renamed or removed."""
    for folder in sorted({c.path.rpartition("/")[0] for c in changes}):
        try:
            fd = data.dir_fd(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed by the transaction itself; its parent is in the set too
        os.fsync(fd)
