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

On disk the manifest is a base (`.stoker/manifest.json`, format 3, named by a `generation`) and
an append-only log of the changes since (`.stoker/manifest.delta`): see `stoker_core.manifestlog`
for how the two are read, appended to and compacted. Formats 1 and 2 (a base alone) are read and
replaced by a format 3 base at the next write; a Stoker that knows only format 2 refuses format 3
by its version ("written by a newer Stoker") and rebuilds its record by hashing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

import attrs

from stoker_core import jsontext
from stoker_core.errors import InvalidInput
from stoker_core.paths import first_unclean

FORMAT_VERSION = 3  # 2 added ctime_ns, 3 the generation its delta log names; 1 and 2 are read
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
    # What planning the next commit from its changes carries forward (stoker_core.recorded):
    # the digest of the profile and template values the records were made with ("" unknown),
    # and the commit's skip reports as (path, reason, detail) (None: unknown, as from an older
    # Stoker, which drops both: the next commit is then planned whole).
    inputs: str = ""
    skipped: tuple[tuple[str, str, str], ...] | None = None
    # Where it was read from (not part of its content, so not compared): the base's generation
    # ("" for none, or a base of format 1 or 2: the next write is a whole base), how many log
    # entries were applied, both files' sizes (the compaction rule), and the paths whose record
    # differs from what is on disk (ctimes filled in from the side file: saved at the next write).
    generation: str = attrs.field(default="", eq=False)
    seq: int = attrs.field(default=0, eq=False)
    base_bytes: int = attrs.field(default=0, eq=False)
    log_bytes: int = attrs.field(default=0, eq=False)
    unsaved: frozenset[str] = attrs.field(default=frozenset(), eq=False)

    def to_json(self, generation: str) -> str:
        """Serialise as a base named `generation`, compactly with sorted paths."""
        body: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "generation": generation,
            "commit": self.commit,
            "profile": self.profile,
            "files": dict(sorted(self.records.items())),  # a record is a tuple: a JSON list
            "dirs": sorted(self.dirs),
            **carried_json(self),
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; raise InvalidInput (naming the file) if it is damaged."""
        try:
            body = jsontext.loads(text)
            version = body.get("version")
            if version not in (1, 2, FORMAT_VERSION):
                raise ValueError(f"unknown manifest version {version!r}: written by a newer Stoker")
            files = body["files"]
            generation = body["generation"] if version == FORMAT_VERSION else ""
            if version == FORMAT_VERSION and (
                type(generation) is not str or not 0 < len(generation) <= 64
            ):
                raise ValueError('"generation" is not a name of 1 to 64 characters')
            records = parse_records(files, with_ctime=version != 1)  # 1: hashed once
            dirs = parse_paths(body.get("dirs", []), '"dirs"')
            check_clean(records)
            return cls(
                commit=str(body["commit"]),
                profile=str(body["profile"]),
                records=records,
                dirs=tuple(dirs),
                inputs=parse_inputs(body),
                skipped=parse_skipped(body),
                generation=generation,
                base_bytes=len(text),
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
            body = jsontext.loads(text)
            ctimes = body["ctimes"] if isinstance(body, dict) else None
        except (ValueError, KeyError):
            return self
        if not isinstance(ctimes, dict):
            return self
        records = self.records
        filled = dict(records)
        unsaved = set(self.unsaved)
        make = tuple.__new__  # Record's own constructor is Python code: this loop runs per file
        for path, pair in ctimes.items():
            record = records.get(path)
            if record is None or record[6] or type(pair) is not list or len(pair) != 2:
                continue
            inode, ctime = pair
            if inode == record[3] and type(ctime) is int and ctime > 0:
                filled[path] = make(Record, (*record[:6], ctime))
                unsaved.add(path)
        return attrs.evolve(self, records=filled, unsaved=frozenset(unsaved))


def parse_records(files: Any, *, with_ctime: bool = True) -> dict[str, Record]:
    """{path: [blob, size, mtime, inode, mode, commit, ctime]} as records; ValueError if not."""
    if with_ctime and type(files) is dict and _well_formed(list(files.values())):
        make = tuple.__new__  # Record's own constructor is Python code: this runs per file
        return {path: make(Record, fields) for path, fields in files.items()}
    # Not the usual shape: read one record at a time, so the error names what is wrong.
    if with_ctime:
        records = {path: Record._make(fields) for path, fields in files.items()}
    else:  # format 1: no ctimes yet, so every file is hashed once
        records = {path: Record(*fields) for path, fields in files.items()}
    if {tuple(map(type, r)) for r in records.values()} - {_RECORD_SHAPE}:
        raise ValueError("a file's record is not [blob, size, mtime, inode, mode, commit, ctime]")
    return records


def _well_formed(values: list[Any]) -> bool:
    """Whether every value is a list of _RECORD_SHAPE's types, checked a column at a time
    (a few passes in C, not a Python step per file)."""
    if not values:
        return True
    if set(map(type, values)) != {list} or set(map(len, values)) != {len(_RECORD_SHAPE)}:
        return False
    columns = zip(_RECORD_SHAPE, zip(*values, strict=True), strict=True)
    return all(set(map(type, column)) == {kind} for kind, column in columns)


def parse_paths(value: Any, what: str) -> tuple[str, ...]:
    """A JSON list of plain relative paths as a tuple; ValueError if it is not one."""
    if not isinstance(value, list) or not all(type(d) is str for d in value):
        raise ValueError(f"{what} is not a list of paths")
    check_clean(value)
    return tuple(value)


def carried_json(manifest: Manifest) -> dict[str, Any]:
    """The keys planning from a commit's changes needs (none when they are not known)."""
    if not manifest.inputs or manifest.skipped is None:
        return {}
    return {"inputs": manifest.inputs, "skipped": [list(s) for s in manifest.skipped]}


def parse_inputs(body: dict[str, Any]) -> str:
    """The "inputs" digest, "" when absent; ValueError if it is not a short string."""
    value = body.get("inputs", "")
    if type(value) is not str or len(value) > 128:
        raise ValueError('"inputs" is not a digest')
    return value


def parse_skipped(body: dict[str, Any]) -> tuple[tuple[str, str, str], ...] | None:
    """The skip reports, None when absent; ValueError if they are not [path, reason, detail]."""
    value = body.get("skipped")
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        type(s) is list and len(s) == 3 and all(type(f) is str for f in s) for s in value
    ):
        raise ValueError('"skipped" is not a list of [path, reason, detail]')
    check_clean(s[0] for s in value if s[0] != ".")
    return tuple((s[0], s[1], s[2]) for s in value)


def check_clean(paths: Iterable[str]) -> None:
    """ValueError naming the first path that is not plain: planning would act on it, and ".."
    would leave the data directory."""
    listed = list(paths)
    at = first_unclean(listed)
    if at >= 0:
        raise ValueError(f'path "{listed[at]}" is not a plain relative path')


def ctimes_json(ctimes: dict[str, tuple[int, int]]) -> str:
    """The side file's text for {path: (inode, ctime_ns)} (see Manifest.with_ctimes)."""
    return json.dumps({"ctimes": ctimes}, separators=(",", ":"))


# Exact types (a bool is not an int here): the planner compares these with lstat's numbers.
_RECORD_SHAPE = (str, int, int, int, int, str, int)
