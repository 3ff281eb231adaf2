"""The transaction journal: its directory, its format, and the checks that refuse a journal
Stoker did not write (one naming a path outside the data directory, Stoker's own state, a slot
twice, or a staged file the transaction did not write).
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Any

import attrs

from stoker_agent.datadirs import (
    STATE_DIR,
    ApplyError,
    lstat_at,
    open_dir,
    read_state_at,
)
from stoker_core import jsontext
from stoker_core.fieldwise import FIELDWISE
from stoker_core.manifest import MANIFEST_PATH
from stoker_core.paths import is_clean, shorten
from stoker_core.plans import Action

JOURNAL = "journal.json"
UNDO_JOURNAL = "undo.json"  # the journal, renamed: the transaction is being undone
JOURNAL_VERSION = 2
STATES = ("prepared", "committing", "done")  # a journal's states, in order
LEGACY_STAGING = ".sync-staging"  # the original Go agent's leftover


@attrs.frozen(slots=True)
class Change:
    """One journaled step: the plan's operation reduced to what recovery needs."""

    __eq__, __hash__, __repr__ = FIELDWISE

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


class Txn:
    """A transaction directory (`txn` or `last` in `.stoker`) and its `new` and `old` slot
    folders, each opened once with O_NOFOLLOW: a link planted there is refused, never used."""

    def __init__(self, state_fd: int, name: str, *, create: bool = False) -> None:
        self.state_fd = state_fd
        self.name = name
        self.where = f"{STATE_DIR}/{name}"
        if create:
            os.mkdir(name, 0o755, dir_fd=state_fd)
        self.fd = open_dir(name, state_fd, self.where)
        self.new = self.old = -1

    def open_slots(self, *, create: bool = False) -> None:
        """Open (or make) `new` and `old`."""
        for part in ("new", "old"):
            if create:
                os.mkdir(part, 0o755, dir_fd=self.fd)
            setattr(self, part, open_dir(part, self.fd, f"{self.where}/{part}"))

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


def read_journal(txn: Txn) -> tuple[dict[str, Any] | None, bool]:
    """The journal and whether it is being undone; None if the transaction never wrote one
    (nothing was moved yet)."""
    for name, undoing in ((UNDO_JOURNAL, True), (JOURNAL, False)):
        try:
            body = jsontext.loads(read_state_at(txn.fd, name, txn.where))
        except FileNotFoundError:
            continue
        except ValueError:
            body = None
        valid = isinstance(body, dict) and body.get("version") == JOURNAL_VERSION
        if not (valid and body.get("state") in STATES):
            raise damaged_journal(txn.where, name)
        return body, undoing
    return None, False


def parse_changes(journal: dict[str, Any], txn: Txn) -> list[Change]:
    """The journal's changes, each checked to be one this transaction could have made."""
    items = journal.get("changes")
    if not isinstance(items, list):
        raise damaged_journal(txn.where, JOURNAL)
    changes: list[Change] = []
    slots: set[int] = set()
    for i, item in enumerate(items):
        try:
            change = Change.from_json(item)
        except ValueError:
            raise damaged_journal(txn.where, JOURNAL) from None
        why = _foreign(change, slots, txn)
        if why is not None:
            raise ApplyError(
                f'{txn.where}/{JOURNAL}: change {i} names "{shorten(change.path)}", {why}; '
                "Stoker did not write this journal: check the data directory against the "
                f"commit in {MANIFEST_PATH}, then remove {txn.where}"
            )
        changes.append(change)
    return changes


def _foreign(change: Change, slots: set[int], txn: Txn) -> str | None:
    """Why `change` is not one Stoker's own transaction holds, or None."""
    if not is_clean(change.path) or change.path.split("/")[0] in (STATE_DIR, LEGACY_STAGING):
        return "which is not a data-directory path Stoker syncs"
    if change.action in (Action.WRITE, Action.DELETE):
        if change.slot < 0 or change.slot in slots:
            return f"with slot {change.slot}, which is not one slot of its own"
        slots.add(change.slot)
    if change.action is Action.WRITE:
        staged = lstat_at(txn.new, str(change.slot))
        if staged is not None and (stat.S_ISDIR(staged.st_mode) or staged.st_ino != change.inode):
            return f"but {txn.where}/new/{change.slot} is not the file the transaction staged"
    return None


def damaged_journal(where: str, name: str = JOURNAL) -> ApplyError:
    # Stoker writes the journal atomically: a damaged one was edited, or the disk is failing.
    # Which files the transaction already replaced is then unknown, so Stoker refuses to guess.
    return ApplyError(
        f"{where}/{name}: damaged journal; check the data directory against the commit in "
        f"{MANIFEST_PATH} (the files the transaction replaced are kept in {where}/old), then "
        f"remove {where} to let Stoker go on"
    )
