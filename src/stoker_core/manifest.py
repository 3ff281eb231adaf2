"""The manifest: a record of what the last apply wrote, so unchanged files need not be read.

Rule: a live file whose size, mtime_ns and inode equal the record is trusted to hold the
recorded content without being read; any other file is hashed.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import attrs

from stoker_core.errors import InvalidInput
from stoker_core.paths import is_clean

FORMAT_VERSION = 1
MANIFEST_PATH = ".stoker/manifest.json"


class Record(NamedTuple):  # a tuple: one per managed file, read at every sync
    """What Stoker wrote at one path."""

    blob: str
    size: int
    mtime_ns: int
    inode: int
    mode: int
    commit: str


@attrs.frozen(slots=True, kw_only=True)
class Manifest:
    """Every file Stoker wrote or adopted in the last apply, with the commit and profile."""

    commit: str = ""
    profile: str = ""
    records: dict[str, Record] = attrs.field(factory=dict)

    def to_json(self) -> str:
        """Serialise compactly with sorted paths (stable bytes for the same content)."""
        body: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "commit": self.commit,
            "profile": self.profile,
            "files": dict(sorted(self.records.items())),  # a record is a tuple: a JSON list
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; raise InvalidInput (naming the file) if it is damaged."""
        try:
            body = json.loads(text)
            if body.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown manifest version {body.get('version')!r}")
            files = body["files"]
            records = {path: Record._make(fields) for path, fields in files.items()}
            if {tuple(map(type, r)) for r in records.values()} - {_RECORD_SHAPE}:
                raise ValueError("a file's record is not [blob, size, mtime, inode, mode, commit]")
            crafted = next((path for path in records if not is_clean(path)), None)
            if crafted is not None:  # planning would act on it: ".." would leave the directory
                raise ValueError(f'path "{crafted}" is not a plain relative path')
            return cls(commit=str(body["commit"]), profile=str(body["profile"]), records=records)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InvalidInput.one(
                f"damaged manifest ({e}); it will be rebuilt by hashing the data directory",
                path=MANIFEST_PATH,
            ) from None


# Exact types (a bool is not an int here): the planner compares these with lstat's numbers.
_RECORD_SHAPE = (str, int, int, int, int, str)
