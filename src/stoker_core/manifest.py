"""The manifest: a record of what the last apply wrote, so unchanged files need not be read.

Rule: a live file whose size, mtime_ns, inode and ctime_ns equal the record is trusted to hold
the recorded content without being read; any other file is hashed. The ctime is what makes the
rule hold against a writer that puts the old mtime back (`touch -d`, a restored archive): the
kernel sets it at every change, and nobody can set it back.

A file Stoker writes gets its ctime when the transaction renames it into place, after the
manifest was made durable; those ctimes are recorded just after, in a small side file
(`.stoker/ctimes.json`, see `with_ctimes`), and folded into the manifest at its next write.
A record without one (lost side file, or a manifest of format 1, which had none) is hashed once
and recorded again: it is never trusted on mtime alone.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import attrs

from stoker_core.errors import InvalidInput
from stoker_core.paths import is_clean

FORMAT_VERSION = 2  # 2 added ctime_ns; format 1 is read (without ctimes) and rewritten as 2
MANIFEST_PATH = ".stoker/manifest.json"
CTIMES_PATH = ".stoker/ctimes.json"
CTIMES_LIMIT = 64 * 2**20  # bytes: 10,000 files take about 0.8 MB


class Record(NamedTuple):  # a tuple: one per managed file, read at every sync
    """What Stoker wrote at one path."""

    blob: str
    size: int
    mtime_ns: int
    inode: int
    mode: int
    commit: str
    ctime_ns: int = 0  # 0: not known yet (hashed once, then recorded)


@attrs.frozen(slots=True, kw_only=True)
class Manifest:
    """Every file Stoker wrote or adopted in the last apply, with the commit and profile."""

    commit: str = ""
    profile: str = ""
    records: dict[str, Record] = attrs.field(factory=dict)
    dirs: tuple[str, ...] = ()  # the commit's empty directories (see SyncPlan.dirs)

    def to_json(self) -> str:
        """Serialise compactly with sorted paths (stable bytes for the same content)."""
        body: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "commit": self.commit,
            "profile": self.profile,
            "files": dict(sorted(self.records.items())),  # a record is a tuple: a JSON list
            "dirs": sorted(self.dirs),
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; raise InvalidInput (naming the file) if it is damaged."""
        try:
            body = json.loads(text)
            version = body.get("version")
            if version not in (1, FORMAT_VERSION):
                raise ValueError(f"unknown manifest version {version!r}: written by a newer Stoker")
            files = body["files"]
            if version == 1:  # migrated: no ctimes yet, so every file is hashed once
                records = {path: Record(*fields) for path, fields in files.items()}
            else:
                records = {path: Record._make(fields) for path, fields in files.items()}
            if {tuple(map(type, r)) for r in records.values()} - {_RECORD_SHAPE}:
                raise ValueError(
                    "a file's record is not [blob, size, mtime, inode, mode, commit, ctime]"
                )
            dirs = body.get("dirs", [])
            if not isinstance(dirs, list) or not all(type(d) is str for d in dirs):
                raise ValueError('"dirs" is not a list of paths')
            crafted = next((p for p in (*records, *dirs) if not is_clean(p)), None)
            if crafted is not None:  # planning would act on it: ".." would leave the directory
                raise ValueError(f'path "{crafted}" is not a plain relative path')
            return cls(
                commit=str(body["commit"]),
                profile=str(body["profile"]),
                records=records,
                dirs=tuple(dirs),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InvalidInput.one(
                f"damaged manifest ({e}); it will be rebuilt by hashing the data directory",
                path=MANIFEST_PATH,
            ) from None

    def with_ctimes(self, text: str) -> Manifest:
        """This manifest with the ctimes of `.stoker/ctimes.json` filled in where its records
        have none yet and the inode matches (a side file from another transaction, or a forged
        one, can only cause a file to be hashed: the live ctime must still be equal).

        The side file is `{"ctimes": {path: [inode, ctime_ns]}}`; a damaged one is ignored."""
        try:
            body = json.loads(text)
            ctimes = body["ctimes"] if isinstance(body, dict) else None
        except (ValueError, KeyError):
            return self
        if not isinstance(ctimes, dict):
            return self
        records = self.records
        filled = dict(records)
        make = tuple.__new__  # Record's own constructor is Python code: this loop runs per file
        for path, pair in ctimes.items():
            record = records.get(path)
            if record is None or record[6] or type(pair) is not list or len(pair) != 2:
                continue
            inode, ctime = pair
            if inode == record[3] and type(ctime) is int and ctime > 0:
                filled[path] = make(Record, (*record[:6], ctime))
        return attrs.evolve(self, records=filled)


def ctimes_json(ctimes: dict[str, tuple[int, int]]) -> str:
    """The side file's text for {path: (inode, ctime_ns)} (see Manifest.with_ctimes)."""
    return json.dumps({"ctimes": ctimes}, separators=(",", ":"))


# Exact types (a bool is not an int here): the planner compares these with lstat's numbers.
_RECORD_SHAPE = (str, int, int, int, int, str, int)
