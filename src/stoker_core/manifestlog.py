"""The manifest's delta log: a one-file change appends one line instead of rewriting the base.

On disk the manifest is a base (`.stoker/manifest.json`, named by its `generation`) and a log
(`.stoker/manifest.delta`), one JSON line per transaction since the base was written:

    {"base": generation, "seq": 1, "commit": c, "profile": p, "dirs": [...],
     "set": {path: record}, "del": [path, ...]}

Rules (the adapter only reads, appends and replaces files):
- reading: the entries are applied to the base in order; each sets the commit, profile and
  empty directories and sets or drops the records it names, so applying an entry twice changes
  nothing. A log whose first entry names another base is stale (left by a compaction that was
  interrupted, or by an older Stoker that rewrote the base) and is ignored; entries that do not
  follow each other (seq 1, 2, 3…) or another base later on make the log damaged.
- a torn last line (no newline: a crash while appending) was never committed and is ignored;
  the next append cuts it off first, and skips its line if it is already the last one (a
  transaction rolled forward after a crash appends again).
- compacting: a transaction writes a whole new base, with a new generation, instead of a line
  when there is no base of format 3 yet (a first sync, or a base of format 1 or 2: the
  migration) or when the log would grow past a quarter of the base (at least COMPACT_FLOOR):
  a one-file change costs one short line, and reading stays within 1.25 times the base.
"""

from __future__ import annotations

import json
import operator
from itertools import compress
from typing import Any, NamedTuple

from stoker_core import jsontext
from stoker_core.errors import InvalidInput
from stoker_core.manifest import (
    Manifest,
    carried_json,
    check_clean,
    parse_inputs,
    parse_paths,
    parse_records,
    parse_skipped,
)

LOG_PATH = ".stoker/manifest.delta"
LOG_LIMIT = 64 * 2**20  # bytes read at most; a larger log is refused by name
COMPACT_FLOOR = 64 * 1024  # bytes: below this a log never forces a compaction
COMPACT_FRACTION = 4  # the log is folded into a new base past 1/4 of the base's size


def delta_line(previous: Manifest, new: Manifest) -> str:
    """The log line that turns `previous` (as read, with its generation) into `new`."""
    old, records = previous.records, new.records
    # A column at a time (a one-file commit records thousands unchanged): the records that
    # differ from the old ones, and those whose ctime the last sync filled in, unsaved yet.
    paths = list(records)
    differs = map(operator.ne, map(old.get, paths), records.values())
    changed = dict(compress(records.items(), differs))
    changed.update((p, records[p]) for p in previous.unsaved if p in records)
    entry: dict[str, Any] = {
        "base": previous.generation,
        "seq": previous.seq + 1,
        "commit": new.commit,
        "profile": new.profile,
        "dirs": sorted(new.dirs),
        "set": dict(sorted(changed.items())),
        "del": sorted(old.keys() - records.keys()),
        **carried_json(new),
    }
    return json.dumps(entry, separators=(",", ":")) + "\n"


def compact_due(previous: Manifest, line_bytes: int) -> bool:
    """Whether the next transaction writes a whole base rather than appending a line."""
    if not previous.generation:
        return True  # no base of format 3 to append to (first sync, or a migration)
    limit = min(LOG_LIMIT // 2, max(COMPACT_FLOOR, previous.base_bytes // COMPACT_FRACTION))
    return previous.log_bytes + line_bytes > limit


def replay(base: Manifest, text: str, entries: int | None = None) -> Manifest:
    """`base` with the log's entries applied (the first `entries` of them, if given: the
    state a rollback returns to); InvalidInput (naming the log) if it is damaged."""
    if not base.generation or not text:
        return base
    lines = text.split("\n")[:-1]  # the part after the last newline is torn: never committed
    if entries is not None:
        if len(lines) < entries:
            raise InvalidInput.one(
                f"holds {len(lines)} entries where {entries} were recorded", path=LOG_PATH
            )
        lines = lines[:entries]
    records = dict(base.records)
    commit, profile, dirs = base.commit, base.profile, base.dirs
    inputs, skipped = base.inputs, base.skipped
    seq = 0
    try:
        for number, line in enumerate(lines, 1):
            entry = jsontext.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
            if entry.get("base") != base.generation:
                if number == 1:
                    return base  # stale: written against a base that has since been replaced
                raise ValueError("names another base than the lines before it")
            if entry.get("seq") != number:
                raise ValueError(f"has seq {entry.get('seq')!r} where {number} was due")
            changed = parse_records(_object(entry.get("set")))
            dropped = parse_paths(entry.get("del"), '"del"')
            dirs = parse_paths(entry.get("dirs"), '"dirs"')
            check_clean(changed)
            commit, profile = _text(entry, "commit"), _text(entry, "profile")
            inputs, skipped = parse_inputs(entry), parse_skipped(entry)  # each line says both
            records.update(changed)
            for path in dropped:
                records.pop(path, None)
            seq = number
    except (ValueError, TypeError, AttributeError) as e:
        raise InvalidInput.one(
            f"damaged manifest log, line {seq + 1} ({e}); the data directory's files are "
            "checked by hashing them once and the manifest is written again",
            path=LOG_PATH,
        ) from None
    return Manifest(
        commit=commit,
        profile=profile,
        records=records,
        dirs=dirs,
        inputs=inputs,
        skipped=skipped,
        generation=base.generation,
        seq=seq,
        base_bytes=base.base_bytes,
        log_bytes=sum(len(line) + 1 for line in lines),
    )


class Append(NamedTuple):
    """How to append a line to the log: keep its first `keep` bytes (a torn tail is cut off),
    then write the line unless it is already the last one; or, with `replace`, put a new log
    holding only the line in its place (the log names another base: not one of ours)."""

    keep: int
    write: bool
    replace: bool = False


def append_plan(log: str, line: str) -> Append:
    """How to append `line` to a log whose text is `log` (see Append)."""
    keep = log.rfind("\n") + 1
    complete = log[:keep]
    last = complete[complete.rfind("\n", 0, keep - 1) + 1 :]
    if not last:
        return Append(0, True)
    try:
        same_base = jsontext.loads(last).get("base") == jsontext.loads(line)["base"]
    except (ValueError, AttributeError):
        same_base = False
    if not same_base:
        return Append(0, True, replace=True)
    return Append(len(complete.encode("utf-8")), last != line)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError('"set" is not an object of records')
    return value


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if type(value) is not str:
        raise ValueError(f'"{key}" is not a string')
    return value
