"""A gateway's sync history: one record per sync, a JSON line each, bounded and read defensively.

Standalone `stoker sync` appends a record to `.stoker/history.jsonl` in the data directory;
`stoker history` prints them. The file lives where the gateway can write, so reading it back
treats it as hostile input: only the newest READ_LIMIT bytes are read, a line longer than
MAX_LINE is not parsed, only known fields are taken (each of its type, strings bounded), and a
line that is not a record is counted as damaged, never raised. A last line without its newline
(a crash while appending) was never committed and is not read.

The fields `source`, `delivery` and `approvedBy` stay empty in standalone mode: they name a
receiver's delivery or an approver, which only a GatewaySync's `status.history` has
(stoker_core.fleethistory, which reads it back by the same rule, `typed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from stoker_core import jsontext
from stoker_core.fieldwise import FIELDWISE
from stoker_core.status import SyncRecord

SCHEMA_VERSION = 1
DEFAULT_LIMIT = 100  # entries kept
MAX_LIMIT = 1000
BYTE_CAP = 1 << 20  # bytes: the file is trimmed to stay at or below this
READ_LIMIT = BYTE_CAP  # bytes read back at most (the newest, from the end of the file)
MAX_LINE = 4096  # bytes: a longer line is damaged, never parsed
MAX_TEXT = 256  # characters kept of a string field (refs, names, users)
MAX_ERROR = 200  # characters kept of an error
STANDALONE = "stoker sync"  # `via` of a record written by standalone `stoker sync`


@attrs.frozen(slots=True, kw_only=True)
class Entry:
    """One sync: what it moved to, how it ended, and who or what asked for it."""

    __eq__, __hash__, __repr__ = FIELDWISE

    time: str
    result: str
    commit: str = ""
    ref: str = ""
    gateway: str = ""
    profile: str = ""
    added: int = 0
    modified: int = 0
    deleted: int = 0
    duration_seconds: float = 0.0
    dry_run: bool = False
    error: str = ""
    via: str = ""  # "stoker sync" (status.history: receiver, polling, requested-ref, spec)
    user: str = ""  # who ran `stoker sync` (--requested-by, else the OS user)
    source: str = ""  # the receiver's source (empty in standalone mode)
    delivery: str = ""  # the receiver's delivery id (empty in standalone mode)
    approved_by: str = ""  # the approving user (empty in standalone mode)


# wire name → (attribute, type, bound): the only fields read back.
_FIELDS: dict[str, tuple[str, type, int]] = {
    "time": ("time", str, 64),
    "result": ("result", str, 64),
    "commit": ("commit", str, 64),
    "ref": ("ref", str, MAX_TEXT),
    "gateway": ("gateway", str, MAX_TEXT),
    "profile": ("profile", str, MAX_TEXT),
    "added": ("added", int, 0),
    "modified": ("modified", int, 0),
    "deleted": ("deleted", int, 0),
    "durationSeconds": ("duration_seconds", float, 0),
    "dryRun": ("dry_run", bool, 0),
    "error": ("error", str, MAX_ERROR),
    "via": ("via", str, 64),
    "user": ("user", str, MAX_TEXT),
    "source": ("source", str, MAX_TEXT),
    "delivery": ("delivery", str, MAX_TEXT),
    "approvedBy": ("approved_by", str, MAX_TEXT),
}
_REQUIRED = ("time", "result")


def from_record(record: SyncRecord, *, via: str, user: str) -> Entry:
    """The history entry of a sync's status record, requested through `via` by `user`."""
    return Entry(
        time=record.time,
        result=record.result,
        commit=record.commit,
        ref=record.ref,
        gateway=record.gateway,
        profile=record.profile,
        added=len(record.added),
        modified=len(record.modified),
        deleted=len(record.deleted),
        duration_seconds=record.duration_seconds,
        dry_run=record.dry_run,
        error=record.error,
        via=via,
        user=user,
    )


def to_json(entry: Entry) -> dict[str, Any]:
    """The wire form (`-o json`, and each line of the file), strings cut to their bounds."""
    body: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
    for wire, (name, kind, bound) in _FIELDS.items():
        value = getattr(entry, name)
        if kind is str:
            value = value[:bound]
        elif kind is float:
            value = round(value, 3)
        body[wire] = value
    return body


def line(entry: Entry) -> str:
    """The entry as one line of the history file (newline included, at most MAX_LINE bytes)."""
    text = json.dumps(to_json(entry), separators=(",", ":")) + "\n"
    if len(text) <= MAX_LINE:
        return text
    # Escaped non-ASCII text takes up to 12 bytes a character: cut every string shorter.
    body = {k: v[:16] if type(v) is str else v for k, v in to_json(entry).items()}
    return json.dumps(body, separators=(",", ":")) + "\n"


@attrs.frozen(slots=True)
class History:
    """What a history file holds: its entries oldest first, and what could not be read."""

    __eq__, __hash__, __repr__ = FIELDWISE

    entries: tuple[Entry, ...] = ()
    damaged: int = 0  # lines that are not a record (too long, not JSON, wrong fields)
    torn: bool = False  # a last line without its newline (a crash while appending)
    cut: bool = False  # the file was larger than READ_LIMIT: older entries were not read
    lines: tuple[str, ...] = ()  # each entry's line as read (newline included), for trimming


def parse(raw: bytes, *, cut: bool = False) -> History:
    """Read a history file's bytes (`cut`: they are the file's last READ_LIMIT bytes, so the
    first line is a part of one); never raises."""
    parts = raw.split(b"\n")
    tail = parts.pop()  # after the last newline: torn, or empty
    if cut and parts:
        parts.pop(0)
    entries: list[Entry] = []
    kept: list[str] = []
    damaged = 0
    for part in parts:
        entry = _entry(part)
        if entry is None:
            damaged += 1
        else:
            entries.append(entry)
            kept.append(part.decode("utf-8") + "\n")
    return History(tuple(entries), damaged, bool(tail), cut, tuple(kept))


def _entry(part: bytes) -> Entry | None:
    """The entry a line holds, or None when it is not one."""
    if len(part) + 1 > MAX_LINE:
        return None  # never parsed: a 10 MB line costs one length check
    try:
        body = jsontext.loads(part.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        return None
    if not isinstance(body, dict) or body.get("schemaVersion") != SCHEMA_VERSION:
        return None
    values: dict[str, Any] = {}
    for wire, (name, kind, bound) in _FIELDS.items():
        if wire not in body:
            if wire in _REQUIRED:
                return None
            continue
        value = typed(body[wire], kind, bound)
        if value is None:
            return None
        values[name] = value
    return Entry(**values)


# kind → whether a value read back is one (and within the bound, for text).
_CHECKS: dict[type, Callable[[Any, int], bool]] = {
    str: lambda v, bound: type(v) is str and len(v) <= bound,
    int: lambda v, _: type(v) is int and 0 <= v < 2**53,
    float: lambda v, _: type(v) in (int, float) and 0 <= v < 1e9,
    bool: lambda v, _: type(v) is bool,
}


def typed(value: Any, kind: type, bound: int) -> Any:
    """`value` if it is of `kind` (and within `bound` for text), else None (the rule every
    history read back uses: this file's lines and the controller's status.history)."""
    if not _CHECKS[kind](value, bound):
        return None
    return float(value) if kind is float else value


def repeats(last: Entry, entry: Entry) -> bool:
    """Whether `entry` says nothing `last` did not (same commit and result, nothing changed,
    no error): `stoker sync --watch` does not record a quiet drift check every interval."""
    quiet = not (entry.added or entry.modified or entry.deleted or entry.error)
    return quiet and (last.commit, last.result) == (entry.commit, entry.result)


def repeats_last(found: History, entry: Entry) -> bool:
    """Whether `entry` repeats the last entry of a history read whole and untorn."""
    whole = found.entries and not (found.torn or found.cut)
    return bool(whole) and repeats(found.entries[-1], entry)


def rewrite(history: History, new_line: str, *, limit: int, cap: int = BYTE_CAP) -> str | None:
    """The file's new text when appending `new_line` must rewrite it (a torn or damaged line to
    drop, older entries cut, too many entries or bytes), or None when appending it is enough."""
    size = sum(len(text.encode("utf-8")) for text in history.lines)
    clean = not (history.torn or history.damaged or history.cut)
    if clean and len(history.lines) < limit and size + len(new_line.encode("utf-8")) <= cap:
        return None
    kept = [new_line]
    total = len(new_line.encode("utf-8"))
    for text in reversed(history.lines):
        total += len(text.encode("utf-8"))
        if len(kept) >= limit or total > cap:
            break
        kept.append(text)
    return "".join(reversed(kept))
