"""Crash-safe application of a SyncPlan to a gateway's data directory.

One transaction at a time, under `.stoker/txn/`:

1. prepare: every new file is written under `.stoker/txn/new/` (same filesystem, never inside
   the gateway's tree), made durable with one `syncfs`, and a journal listing every change is
   written and fsynced;
2. commit: the journal is marked `committing`, then each change runs: a replaced or deleted file
   is first kept in `.stoker/txn/old/` (hard link or rename: no copy), and a new file is renamed
   into place, so no reader ever sees a torn file;
3. finish: one more `syncfs`, the new manifest is renamed into place, and the transaction
   directory becomes `.stoker/last/`, the rollback point.

A crash before `committing` leaves the data directory untouched (the transaction is dropped on
the next start); a crash after it is rolled forward on the next start, since every step is
idempotent. Paths are opened relative to directory descriptors with O_NOFOLLOW, so a symbolic
link in the data directory is never followed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import stat
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from stoker_core.errors import Blocked, StokerError
from stoker_core.manifest import MANIFEST_PATH, Manifest, Record
from stoker_core.plans import Action, Operation, Reason, SyncPlan

STATE_DIR = ".stoker"
TXN_DIR = f"{STATE_DIR}/txn"
LAST_DIR = f"{STATE_DIR}/last"
LOCK_FILE = f"{STATE_DIR}/lock"
JOURNAL = "journal.json"
STATES = ("prepared", "committing", "done")  # a journal's states, in order
LEGACY_STAGING = ".sync-staging"  # the original Go agent's leftover

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

    def to_json(self) -> list[Any]:
        """Compact journal form."""
        return [str(self.action), self.path, self.mode, self.slot]

    @classmethod
    def from_json(cls, item: list[Any]) -> Change:
        """Inverse of to_json."""
        return cls(Action(item[0]), str(item[1]), int(item[2]), int(item[3]))


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
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        try:
            fd = os.open(name, flags, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent_fd)
            self._inherit_owner(parent_fd, name)
            fd = os.open(name, flags, dir_fd=parent_fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ApplyError(
                    f"{rel}: is a symbolic link or a file; Stoker never follows links"
                ) from None
            raise
        self._dirs[rel] = fd
        return fd

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
        # Stoker's own files (journal, manifest, staged files) go through plain paths below
        # .stoker: a link there, planted by anyone who can write the data directory, would send
        # them, and the transaction's deletions, elsewhere.
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

    # -- public operations -------------------------------------------------------------------

    def recover(self) -> str:
        """Finish or drop an interrupted transaction; return what was done ("none" if clean)."""
        txn = os.path.join(self.data_dir, TXN_DIR)
        legacy = os.path.join(self.data_dir, LEGACY_STAGING)
        if os.path.isdir(legacy) and not os.path.islink(legacy):
            shutil.rmtree(legacy)
        if not os.path.isdir(txn):
            return "none"
        journal = _read_journal(txn)
        if journal is None or journal["state"] == "prepared":
            shutil.rmtree(txn)
            return "rolled-back"
        try:
            changes = [Change.from_json(c) for c in journal["changes"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise _damaged_journal(txn) from None
        data = DataDir(self.data_dir)
        try:
            if journal["state"] == "committing":
                for change in changes:
                    self._run(data, txn, change)
            self._finish(data, txn)
        finally:
            data.close()
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

        `previous_file`: the file `previous` was read from under this lock, kept for rollback
        by a hard link instead of being written again.
        """
        self.recover()
        changes = _changes(plan)
        return self._transact(changes, plan, read, profile, previous or Manifest(), previous_file)

    def rollback(self) -> bool:
        """Restore exactly what the last transaction replaced or removed; False if nothing to do."""
        self.recover()
        last = os.path.join(self.data_dir, LAST_DIR)
        journal = _read_journal(last) if os.path.isdir(last) else None
        if journal is None or journal.get("rolledBack"):
            return False
        previous_manifest = _read_text(os.path.join(last, "manifest.old.json"))
        inverse = _inverse([Change.from_json(c) for c in journal["changes"]], last)
        self._transact_inverse(inverse, last, previous_manifest)
        return True

    # -- transactions ------------------------------------------------------------------------

    def _transact(
        self,
        changes: list[Change],
        plan: SyncPlan,
        read: ContentReader,
        profile: str,
        previous: Manifest,
        previous_file: str | None,
    ) -> Manifest:
        txn = os.path.join(self.data_dir, TXN_DIR)
        os.makedirs(os.path.join(txn, "new"))
        os.makedirs(os.path.join(txn, "old"))
        self._step()
        data = DataDir(self.data_dir)
        try:
            by_path = {op.path: op for op in plan.operations if op.action is Action.WRITE}
            records: dict[str, Record] = {}
            total = 2 * len(changes)
            per_file = len(changes) <= PER_FILE_LIMIT
            for done, change in enumerate(changes, 1):
                if change.action is Action.WRITE:
                    op = by_path[change.path]
                    staged = self._stage(data, txn, change, read(op), op.blob, plan, per_file)
                    records[change.path] = staged
                self._report(done, total)
            records.update(_kept_records(data, plan, previous))
            manifest = Manifest(commit=plan.commit, profile=profile, records=records)
            write_state_file(os.path.join(txn, "manifest.json"), manifest.to_json())
            _keep_previous_manifest(txn, previous, previous_file)
            if per_file:  # the staged files were fsynced as they were written
                _fsync_dir(os.path.join(txn, "new"))
                _fsync_dir(txn)
            else:
                _syncfs(data.fd)
            self._step()
            self._write_journal(txn, "prepared", changes)
            self._step()
            self._write_journal(txn, "committing", changes)
            self._step()
            for done, change in enumerate(changes, len(changes) + 1):
                self._run(data, txn, change)
                self._step()
                self._report(done, total)
            self._finish(data, txn, changes if per_file else None)
        finally:
            data.close()
        return manifest

    def _report(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(done, total)

    def _transact_inverse(self, changes: list[Change], last: str, previous_manifest: str) -> None:
        txn = os.path.join(self.data_dir, TXN_DIR)
        os.makedirs(os.path.join(txn, "new"))
        os.makedirs(os.path.join(txn, "old"))
        for change in changes:
            if change.action is Action.WRITE:
                os.link(
                    os.path.join(last, "old", str(change.slot)),
                    os.path.join(txn, "new", str(change.slot)),
                )
        write_state_file(os.path.join(txn, "manifest.json"), previous_manifest)
        write_state_file(os.path.join(txn, "manifest.old.json"), previous_manifest)
        data = DataDir(self.data_dir)
        try:
            _syncfs(data.fd)
            self._write_journal(txn, "prepared", changes, rolled_back=True)
            self._write_journal(txn, "committing", changes, rolled_back=True)
            self._step()
            for change in changes:
                self._run(data, txn, change)
                self._step()
            self._finish(data, txn)
        finally:
            data.close()

    def _stage(
        self,
        data: DataDir,
        txn: str,
        change: Change,
        chunks: Iterable[bytes],
        blob: str,
        plan: SyncPlan,
        fsync: bool,
    ) -> Record:
        """Write one new file under txn/new and return its manifest record."""
        target = os.path.join(txn, "new", str(change.slot))
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            size = 0
            for chunk in chunks:
                _write_all(fd, chunk)
                size += len(chunk)
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

    def _run(self, data: DataDir, txn: str, change: Change) -> None:
        """Carry out one journaled change; safe to repeat after a crash."""
        new = os.path.join(txn, "new", str(change.slot))
        old = os.path.join(txn, "old", str(change.slot))
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
            elif not os.path.lexists(old):
                os.rename(name, old, src_dir_fd=fd)
        elif change.action is Action.MKDIR:
            data.dir_fd(change.path, create=True)
        elif os.path.lexists(new):
            fd, name = data.split(change.path, create=True)
            if not os.path.lexists(old) and _lexists(fd, name):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    os.link(name, old, src_dir_fd=fd, follow_symlinks=False)
                else:  # a link or special file stands where the file goes: move it aside
                    os.rename(name, old, src_dir_fd=fd)
            os.rename(new, name, dst_dir_fd=fd)

    def _finish(self, data: DataDir, txn: str, touched: list[Change] | None = None) -> None:
        """Make the renames durable (syncfs, or an fsync per touched directory), then close."""
        if touched is None:
            _syncfs(data.fd)
        else:
            _fsync_parents(data, touched)
            _fsync_dir(os.path.join(txn, "old"))
            _fsync_dir(os.path.join(txn, "new"))
        self._step()
        staged = os.path.join(txn, "manifest.json")
        if os.path.exists(staged):
            os.replace(staged, os.path.join(self.data_dir, MANIFEST_PATH))
            _fsync_dir(os.path.join(self.data_dir, STATE_DIR))
        self._step()
        journal = _read_journal(txn) or {"changes": []}
        self._write_journal(
            txn,
            "done",
            [Change.from_json(c) for c in journal["changes"]],
            rolled_back=bool(journal.get("rolledBack")),
        )
        last = os.path.join(self.data_dir, LAST_DIR)
        if os.path.isdir(last):
            shutil.rmtree(last)
        os.rename(txn, last)
        _fsync_dir(os.path.join(self.data_dir, STATE_DIR))
        self._step()

    def _write_journal(
        self, txn: str, state: str, changes: list[Change], *, rolled_back: bool = False
    ) -> None:
        body = {
            "version": 1,
            "state": state,
            "rolledBack": rolled_back,
            "changes": [c.to_json() for c in changes],
        }
        write_state_file(os.path.join(txn, JOURNAL), json.dumps(body, separators=(",", ":")))
        _fsync_dir(txn)


def _changes(plan: SyncPlan) -> list[Change]:
    """The plan's operations in execution order, each with a slot for its files."""
    return [Change(op.action, op.path, op.mode, slot) for slot, op in enumerate(plan.ordered())]


def _inverse(changes: list[Change], last: str) -> list[Change]:
    """The changes that undo a finished transaction, using the content it kept in old/."""
    undo: list[Change] = []
    for change in reversed(changes):
        kept = os.path.join(last, "old", str(change.slot))
        had_old = os.path.lexists(kept)
        if change.action in (Action.WRITE, Action.DELETE) and had_old:
            mode = stat.S_IMODE(os.lstat(kept).st_mode)
            undo.append(Change(Action.WRITE, change.path, mode, change.slot))
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


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _keep_previous_manifest(txn: str, previous: Manifest, previous_file: str | None) -> None:
    """Keep the manifest the plan was made against, for rollback: a hard link to the file it
    was read from (replaced, never rewritten, at finish) rather than 2 MB serialised again."""
    kept = os.path.join(txn, "manifest.old.json")
    if previous_file is not None:
        with contextlib.suppress(FileNotFoundError):
            os.link(previous_file, kept)
            return
    write_state_file(kept, previous.to_json())


def _fsync_parents(data: DataDir, changes: list[Change]) -> None:
    """Fsync every data-directory folder whose entries the changes added, renamed or removed."""
    for folder in sorted({c.path.rpartition("/")[0] for c in changes}):
        try:
            fd = data.dir_fd(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed by the transaction itself; its parent is in the set too
        os.fsync(fd)


def write_state_file(path: str, text: str) -> None:
    """Write a small state file atomically and durably, never through a link: a leftover or
    planted `*.tmp` is removed first and the new one created exclusively."""
    tmp = path + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)  # replaces a link at `path` itself, never its target


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _read_journal(txn: str) -> dict[str, Any] | None:
    """The journal, or None if the transaction never wrote one (nothing was moved yet)."""
    try:
        body = json.loads(_read_text(os.path.join(txn, JOURNAL)))
    except FileNotFoundError:
        return None
    except ValueError:
        body = None
    if not (isinstance(body, dict) and body.get("version") == 1 and body.get("state") in STATES):
        raise _damaged_journal(txn)
    return body


def _damaged_journal(txn: str) -> ApplyError:
    # Stoker writes the journal atomically: a damaged one was edited, or the disk is failing.
    # Which files the transaction already replaced is then unknown, so Stoker refuses to guess.
    where = os.path.join(STATE_DIR, os.path.basename(txn))
    return ApplyError(
        f"{where}/{JOURNAL}: damaged journal; check the data directory against the commit in "
        f"{MANIFEST_PATH} (the files the transaction replaced are kept in {where}/old), then "
        f"remove {where} to let Stoker go on"
    )
