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
from typing import Any

import attrs

from stoker_core.errors import Blocked, StokerError
from stoker_core.manifest import MANIFEST_PATH, Manifest, Record
from stoker_core.paths import is_clean, shorten
from stoker_core.plans import Action, Operation, Reason, SyncPlan

log = logging.getLogger("stoker.apply")
STATE_DIR = ".stoker"
TXN_DIR = f"{STATE_DIR}/txn"
LAST_DIR = f"{STATE_DIR}/last"
LOCK_FILE = f"{STATE_DIR}/lock"
MANIFEST_NAME = os.path.basename(MANIFEST_PATH)  # in STATE_DIR
JOURNAL = "journal.json"
UNDO_JOURNAL = "undo.json"  # the journal, renamed: the transaction is being undone
JOURNAL_VERSION = 2
JOURNAL_LIMIT = 256 << 20  # bytes; a journal lists every change once (about 100 bytes each)
STATES = ("prepared", "committing", "done")  # a journal's states, in order
LEGACY_STAGING = ".sync-staging"  # the original Go agent's leftover
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

ContentReader = Callable[[Operation], Iterable[bytes]]
Progress = Callable[[int, int], None]  # (done, total) steps of a transaction


class ApplyError(StokerError):
    """The data directory could not be changed (permissions, disk full, a link in the way)."""


@attrs.frozen(slots=True)
class Change:
    """One journaled step: the plan's operation reduced to what recovery needs."""

    action: Action
    path: str
    mode: int = 0
    slot: int = -1  # index of the file in txn/new and txn/old
    inode: int = 0  # of the staged file (WRITE): what the transaction itself put in txn/new

    def to_json(self) -> list[Any]:
        """Compact journal form."""
        return [str(self.action), self.path, self.mode, self.slot, self.inode]

    @classmethod
    def from_json(cls, item: Any) -> Change:
        """Inverse of to_json; ValueError for anything else."""
        if not (isinstance(item, list) and len(item) == 5 and isinstance(item[1], str)):
            raise ValueError(item)
        numbers = item[2:]
        if not all(type(n) is int for n in numbers):
            raise ValueError(item)
        action = Action(item[0])
        if action is Action.KEEP:
            raise ValueError(item)
        return cls(action, item[1], *numbers)


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


def real_directory_or_absent(path: str) -> None:
    """Refuse a state directory that is a link (or a file): Stoker would write through it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        raise ApplyError(
            f"{path} is a symbolic link, not a directory; Stoker keeps its state only in real "
            "directories: remove it"
        )


def _plain(name: str, rel: str) -> None:
    """Refuse a path part that is not a name: ".." would climb out of the data directory."""
    if name in ("", ".", ".."):
        raise ApplyError(
            f'"{rel}": "{name}" is not a file name; Stoker never leaves the data directory'
        )


def _open_dir(name: str, dir_fd: int, rel: str) -> int:
    """Open directory `name` in `dir_fd` without following a link; `rel` names it in errors."""
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
        _plain(name, rel)
        parent_fd = self.dir_fd(parent, create=create)
        try:
            fd = _open_dir(name, parent_fd, rel)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent_fd)
            self._inherit_owner(parent_fd, name)
            fd = _open_dir(name, parent_fd, rel)
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
        _plain(name, rel)
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


class _Txn:
    """A transaction directory (`txn` or `last` in `.stoker`) and its `new` and `old` slot
    folders, each opened once with O_NOFOLLOW: a link planted there is refused, never used."""

    def __init__(self, state_fd: int, name: str, *, create: bool = False) -> None:
        self.state_fd = state_fd
        self.name = name
        self.where = f"{STATE_DIR}/{name}"
        if create:
            os.mkdir(name, 0o755, dir_fd=state_fd)
        self.fd = _open_dir(name, state_fd, self.where)
        self.new = self.old = -1

    def open_slots(self, *, create: bool = False) -> None:
        """Open (or make) `new` and `old`."""
        for part in ("new", "old"):
            if create:
                os.mkdir(part, 0o755, dir_fd=self.fd)
            setattr(self, part, _open_dir(part, self.fd, f"{self.where}/{part}"))

    def close(self) -> None:
        """Close the descriptors."""
        for fd in (self.fd, self.new, self.old):
            if fd >= 0:
                os.close(fd)
        self.fd = self.new = self.old = -1

    def drop(self) -> None:
        """Remove the transaction directory and everything staged in it."""
        shutil.rmtree(self.name, dir_fd=self.state_fd)
        os.fsync(self.state_fd)


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
                txn = _Txn(data.dir_fd(STATE_DIR), "txn")
            except FileNotFoundError:
                return "none"
            try:
                return self._recover(data, txn)
            finally:
                txn.close()
        finally:
            data.close()

    def _recover(self, data: DataDir, txn: _Txn) -> str:
        journal, undoing = _read_journal(txn)
        if journal is None or (not undoing and journal["state"] == "prepared"):
            txn.drop()  # nothing was moved yet
            return "rolled-back"
        txn.open_slots()
        changes = _parse_changes(journal, txn)
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
                txn = _Txn(data.dir_fd(STATE_DIR), "txn", create=True)
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
                last = _Txn(data.dir_fd(STATE_DIR), "last")
            except FileNotFoundError:
                return False
            try:
                journal, _ = _read_journal(last)
                if journal is None or journal.get("rolledBack"):
                    return False
                last.open_slots()
                previous_manifest = _read_at(last.fd, "manifest.old.json", last.where)
                inverse = _inverse(_parse_changes(journal, last), last)
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
        txn: _Txn,
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
            by_path = {op.path: op for op in plan.operations if op.action is Action.WRITE}
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
                manifest = Manifest(commit=plan.commit, profile=profile, records=records)
                _write_state_at(txn.fd, MANIFEST_NAME, manifest.to_json())
                _keep_previous_manifest(txn, previous, previous_file)
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
        return manifest

    def _commit(
        self, data: DataDir, txn: _Txn, changes: list[Change], first: int, total: int
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
        self, data: DataDir, changes: list[Change], last: _Txn, previous_manifest: str
    ) -> None:
        txn = _Txn(data.dir_fd(STATE_DIR), "txn", create=True)
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
                _write_state_at(txn.fd, MANIFEST_NAME, previous_manifest)
                _write_state_at(txn.fd, "manifest.old.json", previous_manifest)
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
        txn: _Txn,
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
                _write_all(fd, chunk)
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

    def _run(self, data: DataDir, txn: _Txn, change: Change) -> None:
        """Carry out one journaled change; safe to repeat after a crash."""
        slot = str(change.slot)
        if change.action in (Action.DELETE, Action.RMDIR):
            try:
                fd, name = data.split(change.path)
            except FileNotFoundError:
                return  # its directory is already gone: a replay after a crash
            if not _lexists(fd, name):
                return
            if change.action is Action.RMDIR:
                data.forget(change.path)
                os.rmdir(name, dir_fd=fd)
            elif not _lexists(txn.old, slot):
                os.rename(name, slot, src_dir_fd=fd, dst_dir_fd=txn.old)
        elif change.action is Action.MKDIR:
            data.make_dir(change.path)
        elif _lexists(txn.new, slot):
            fd, name = data.split(change.path)  # its folder exists, or a journaled MKDIR made it
            here = _lstat(fd, name)
            if here is not None and not _lexists(txn.old, slot):
                if stat.S_ISREG(here.st_mode):
                    os.link(name, slot, src_dir_fd=fd, dst_dir_fd=txn.old, follow_symlinks=False)
                else:  # a link or special file stands where the file goes: move it aside
                    os.rename(name, slot, src_dir_fd=fd, dst_dir_fd=txn.old)
            os.rename(slot, name, src_dir_fd=txn.new, dst_dir_fd=fd)

    def _undo(self, data: DataDir, txn: _Txn, change: Change) -> None:
        """Undo one change from what txn/old kept; safe to repeat, and a no-op if it never ran."""
        slot = str(change.slot)
        kept = _lexists(txn.old, slot)
        if change.action is Action.RMDIR:
            data.make_dir(change.path)
            return
        try:
            fd, name = data.split(change.path)
        except (FileNotFoundError, ApplyError):
            return  # its folder is gone or is no folder (a MKDIR undone): nothing of it is left
        here = _lstat(fd, name)
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
        if change.action is Action.DELETE or _lexists(txn.new, slot):
            # Deleted, or the new file never moved in: restore what was moved aside, if anything.
            if kept and here is None:
                os.rename(slot, name, src_dir_fd=txn.old, dst_dir_fd=fd)
        elif here is not None and here.st_ino == change.inode:  # the new file is in place
            if kept:
                os.rename(slot, name, src_dir_fd=txn.old, dst_dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)

    def _roll_back(self, data: DataDir, txn: _Txn, changes: list[Change]) -> None:
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

    def _undo_all(self, data: DataDir, txn: _Txn, changes: list[Change]) -> None:
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

    def _finish(self, data: DataDir, txn: _Txn, touched: list[Change] | None = None) -> None:
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
            if _lexists(txn.fd, MANIFEST_NAME):
                os.replace(MANIFEST_NAME, MANIFEST_NAME, src_dir_fd=txn.fd, dst_dir_fd=state)
                os.fsync(state)
            self._step()
            # No "done" journal: writing one needs free space, and a journal still saying
            # "committing" rolls forward harmlessly (every step is a no-op by now).
            if _lexists(state, "last"):
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
        self, txn: _Txn, state: str, changes: list[Change], *, rolled_back: bool = False
    ) -> None:
        body = {
            "version": JOURNAL_VERSION,
            "state": state,
            "rolledBack": rolled_back,
            "changes": [c.to_json() for c in changes],
        }
        _write_state_at(txn.fd, JOURNAL, json.dumps(body, separators=(",", ":")))
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
def _staging(txn: _Txn, plan: SyncPlan | None) -> Any:
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


def _inverse(changes: list[Change], last: _Txn) -> list[Change]:
    """The changes that undo a finished transaction, using the content it kept in old/."""
    undo: list[Change] = []
    for change in reversed(changes):
        kept = _lstat(last.old, str(change.slot))
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
    """Manifest records for files the plan keeps: reuse trusted ones, stat adopted ones."""
    out: dict[str, Record] = {}
    for op in plan.operations:
        if op.action is not Action.KEEP:
            continue
        record = previous.records.get(op.path)
        if op.reason is Reason.UNCHANGED and record is not None:
            out[op.path] = record
            continue
        fd, name = data.split(op.path)
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        out[op.path] = Record(op.blob, st.st_size, st.st_mtime_ns, st.st_ino, op.mode, plan.commit)
    return out


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


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _lexists(dir_fd: int, name: str) -> bool:
    return _lstat(dir_fd, name) is not None


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _keep_previous_manifest(txn: _Txn, previous: Manifest, previous_file: str | None) -> None:
    """Keep the manifest the plan was made against, for rollback: a hard link to the file it
    was read from (replaced, never rewritten, at finish) rather than 2 MB serialised again."""
    if previous_file is not None:
        found = _lstat(txn.state_fd, MANIFEST_NAME)
        if found is not None and stat.S_ISREG(found.st_mode):
            os.link(
                MANIFEST_NAME,
                "manifest.old.json",
                src_dir_fd=txn.state_fd,
                dst_dir_fd=txn.fd,
                follow_symlinks=False,
            )
            return
    _write_state_at(txn.fd, "manifest.old.json", previous.to_json())


def _fsync_parents(data: DataDir, changes: list[Change]) -> None:
    """Fsync every data-directory folder whose entries the changes added, renamed or removed."""
    for folder in sorted({c.path.rpartition("/")[0] for c in changes}):
        try:
            fd = data.dir_fd(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed by the transaction itself; its parent is in the set too
        os.fsync(fd)


def _write_state_at(dir_fd: int, name: str, text: str) -> None:
    """Write state file `name` in `dir_fd` atomically and durably, never through a link: a
    leftover or planted `*.tmp` is removed first and the new one created exclusively."""
    tmp = name + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    try:
        _write_all(fd, text.encode("utf-8"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)  # a half-written file on a full disk frees its space
        raise
    os.close(fd)
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces a link, never its target


def write_state_file(path: str, text: str) -> None:
    """Write a small state file atomically and durably, never through a link at its name."""
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        _write_state_at(fd, os.path.basename(path), text)
    finally:
        os.close(fd)


def _read_at(dir_fd: int, name: str, where: str) -> str:
    """A state file's text, never through a link, at most JOURNAL_LIMIT bytes."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ApplyError(
                f"{where}/{name}: is a symbolic link; Stoker never follows links: remove it"
            ) from None
        raise
    with open(fd, "rb") as handle:
        raw = handle.read(JOURNAL_LIMIT + 1)
    if len(raw) > JOURNAL_LIMIT:
        raise ValueError(f"{where}/{name} is larger than {JOURNAL_LIMIT} bytes")
    return raw.decode("utf-8")


def _read_journal(txn: _Txn) -> tuple[dict[str, Any] | None, bool]:
    """The journal and whether it is being undone; None if the transaction never wrote one
    (nothing was moved yet)."""
    for name, undoing in ((UNDO_JOURNAL, True), (JOURNAL, False)):
        try:
            body = json.loads(_read_at(txn.fd, name, txn.where))
        except FileNotFoundError:
            continue
        except ValueError:
            body = None
        valid = isinstance(body, dict) and body.get("version") == JOURNAL_VERSION
        if not (valid and body.get("state") in STATES):
            raise _damaged_journal(txn.where, name)
        return body, undoing
    return None, False


def _parse_changes(journal: dict[str, Any], txn: _Txn) -> list[Change]:
    """The journal's changes, each checked to be one this transaction could have made."""
    items = journal.get("changes")
    if not isinstance(items, list):
        raise _damaged_journal(txn.where, JOURNAL)
    changes: list[Change] = []
    slots: set[int] = set()
    for i, item in enumerate(items):
        try:
            change = Change.from_json(item)
        except ValueError:
            raise _damaged_journal(txn.where, JOURNAL) from None
        why = _foreign(change, slots, txn)
        if why is not None:
            raise ApplyError(
                f'{txn.where}/{JOURNAL}: change {i} names "{shorten(change.path)}", {why}; '
                "Stoker did not write this journal: check the data directory against the "
                f"commit in {MANIFEST_PATH}, then remove {txn.where}"
            )
        changes.append(change)
    return changes


def _foreign(change: Change, slots: set[int], txn: _Txn) -> str | None:
    """Why `change` is not one Stoker's own transaction holds, or None."""
    if not is_clean(change.path) or change.path.split("/")[0] in (STATE_DIR, LEGACY_STAGING):
        return "which is not a data-directory path Stoker syncs"
    if change.action in (Action.WRITE, Action.DELETE):
        if change.slot < 0 or change.slot in slots:
            return f"with slot {change.slot}, which is not one slot of its own"
        slots.add(change.slot)
    if change.action is Action.WRITE:
        staged = _lstat(txn.new, str(change.slot))
        if staged is not None and (stat.S_ISDIR(staged.st_mode) or staged.st_ino != change.inode):
            return f"but {txn.where}/new/{change.slot} is not the file the transaction staged"
    return None


def _damaged_journal(where: str, name: str = JOURNAL) -> ApplyError:
    # Stoker writes the journal atomically: a damaged one was edited, or the disk is failing.
    # Which files the transaction already replaced is then unknown, so Stoker refuses to guess.
    return ApplyError(
        f"{where}/{name}: damaged journal; check the data directory against the commit in "
        f"{MANIFEST_PATH} (the files the transaction replaced are kept in {where}/old), then "
        f"remove {where} to let Stoker go on"
    )
