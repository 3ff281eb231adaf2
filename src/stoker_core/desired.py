"""The desired tree: what the data directory should hold for one gateway at one commit.

Mappings are applied in order (a later mapping wins), templates and patches are rendered, and
every path is checked against the data-directory rules before anything is planned.
"""

from __future__ import annotations

import enum
import functools
import posixpath
from collections.abc import Mapping
from itertools import compress, repeat
from operator import and_, is_, itemgetter, not_
from typing import NamedTuple

import attrs

from stoker_core import model
from stoker_core.errors import InvalidInput, Problem
from stoker_core.globs import GlobSet, match
from stoker_core.jsonpatch import apply_patch
from stoker_core.paths import (
    GATEWAY_OWNED,
    PROTECTED,
    RESERVED,
    PathEscape,
    first_unclean,
    folders_above,
    normalize,
)
from stoker_core.profiles import EffectiveProfile
from stoker_core.templates import TemplateContext, render, render_file
from stoker_core.trees import EXECUTABLE, REGULAR, Kind, RepoEntry, RepoSnapshot, blob_id

# Always excluded, whatever the profile says (the CRD default "**/.git/" never matches a file).
HARD_EXCLUDES = ("**/.git/**", "**/.git", "**/.gitkeep")
LFS_PREFIX = b"version https://git-lfs.github.com/spec/"
LFS_MAX_POINTER = 200  # pointer files are ~130 bytes; only files this small are opened to check
LFS_MIN_POINTER = len(LFS_PREFIX)  # a shorter file cannot start with the prefix: never opened
_POINTER_SIZED = range(LFS_MIN_POINTER, LFS_MAX_POINTER).__contains__


class SkipReason(enum.StrEnum):
    """Why a path from the repository (or a whole mapping) is not delivered."""

    SOURCE_MISSING = "source-missing"
    SYMLINK = "symlink-in-repository"
    SUBMODULE = "submodule"
    LFS_POINTER = "lfs-pointer"
    PROTECTED = "protected"
    GATEWAY_OWNED = "gateway-owned"
    RESERVED = "reserved"
    PATCH_UNMATCHED = "patch-matched-nothing"


@attrs.frozen(slots=True)
class Skip:
    """A path left alone, with a reason code and a sentence."""

    path: str
    reason: SkipReason
    detail: str


class DesiredFile(NamedTuple):  # a tuple: one per file, made in the hot loop
    """One file the data directory should hold (`content` is set for rendered files only)."""

    path: str
    blob: str
    mode: int
    size: int
    mapping: int
    source: RepoEntry
    content: bytes | None = None


_NEW_FILE = functools.partial(tuple.__new__, DesiredFile)  # DesiredFile's __new__ is Python
_FILE_MODES = (REGULAR, EXECUTABLE)  # by whether git's mode has an executable bit
_KIND, _BLOB, _MODE, _SIZE = (itemgetter(n) for n in range(1, 5))  # of a RepoEntry
_HEAD = itemgetter(0)  # of str.rpartition's parts: the folder


@attrs.frozen(slots=True)
class ManagedRoot:
    """A mapping's destination: a directory owns its subtree, a file owns exactly itself."""

    path: str
    kind: model.MappingType
    mapping: int
    allow_empty: bool
    gateway_owned: bool


@attrs.frozen(slots=True)
class DesiredTree:
    """Everything the planner needs to know about what should be."""

    commit: str
    files: dict[str, DesiredFile]
    dirs: frozenset[str]
    roots: tuple[ManagedRoot, ...]
    skipped: tuple[Skip, ...]
    excludes: GlobSet
    untouchable: GlobSet  # excluded, protected or reserved: never written nor deleted
    parent_dirs: frozenset[str]  # every directory above a desired file

    def is_excluded(self, path: str) -> bool:
        """Tell whether `path` matches an exclude pattern."""
        return self.excludes.matches(path)

    def is_untouchable(self, path: str) -> bool:
        """Tell whether `path` is excluded, protected or reserved."""
        return self.untouchable.matches(path)


@attrs.define(slots=True)
class _Builder:
    profile: EffectiveProfile
    snapshot: RepoSnapshot
    context: TemplateContext
    excludes: GlobSet
    special: GlobSet  # any rule at all: files matching none take the fast path
    files: dict[str, DesiredFile] = attrs.field(factory=dict)
    dirs: set[str] = attrs.field(factory=set)
    roots: list[ManagedRoot] = attrs.field(factory=list)
    skipped: list[Skip] = attrs.field(factory=list)

    def path(self, i: int, field: str, template: str) -> str:
        return _render_path(i, field, template, self.context)

    def add_mapping(self, i: int, mapping: model.Mapping) -> None:
        source = self.path(i, "source", mapping.source)
        dest = self.path(i, "destination", mapping.destination)
        entry = self.snapshot.entry(source)
        if entry is None or entry.kind in (Kind.SYMLINK, Kind.SUBMODULE):
            self.missing_source(i, mapping, source, dest, entry)
            return
        actual = model.MappingType.FILE if entry.kind is Kind.FILE else model.MappingType.DIR
        if mapping.type is not None and mapping.type is not actual:
            raise InvalidInput.one(
                f'type mismatch: spec says "{mapping.type}" but "{source}" is a {actual} '
                f"at commit {self.snapshot.commit[:12]}; fix the type or the source",
                field=f"mappings[{i}].type",
            )
        self.check_destination(i, dest)
        owned = GATEWAY_OWNED.matches(dest)
        self.roots.append(ManagedRoot(dest, actual, i, mapping.allow_empty, owned))
        if actual is model.MappingType.FILE:
            self.add_file_mapping(i, mapping, entry, dest, owned)
        else:
            self.add_dir_mapping(i, mapping, source, dest, owned)

    def missing_source(
        self, i: int, mapping: model.Mapping, source: str, dest: str, entry: RepoEntry | None
    ) -> None:
        what = "does not exist" if entry is None else f"is a {entry.kind}, which is never followed"
        at = f"at commit {self.snapshot.commit[:12]}"
        if mapping.required:
            raise InvalidInput.one(
                f'required source "{source}" {what} {at}', field=f"mappings[{i}].source"
            )
        self.skipped.append(
            Skip(
                dest or ".",
                SkipReason.SOURCE_MISSING,
                f'mapping {i}: optional source "{source}" {what} {at}; '
                "its destination is left as it is",
            )
        )

    def crafted(self, path: str) -> InvalidInput:
        """The error for a repository path git itself never writes ("..", "." or empty parts)."""
        return InvalidInput.one(
            f"this path in commit {self.snapshot.commit[:12]} has a part that is not a name "
            '("..", "." or empty); git never writes one, so the commit was crafted or is '
            "corrupt. Nothing was synced; fix the repository (git fsck names the tree)",
            path=path,
        )

    def check_destination(self, i: int, dest: str) -> None:
        for rules, what in ((PROTECTED, "a protected gateway path"), (RESERVED, "reserved")):
            if dest and rules.matches(dest):
                raise InvalidInput.one(
                    f'"{dest}" is {what}; Stoker never writes there',
                    field=f"mappings[{i}].destination",
                )

    def admit_dir(self, path: str) -> bool:
        """Tell whether a repository directory may be entered; record why not."""
        for rules, reason in ((PROTECTED, SkipReason.PROTECTED), (RESERVED, SkipReason.RESERVED)):
            if rules.matches(path):
                self.skipped.append(Skip(path, reason, f"{reason} directory; never written"))
                return False
        return True

    def admit(self, path: str, owned_root: bool) -> bool:
        """Tell whether a repository file may land on `path`; record why not."""
        if not self.special.matches(path):
            return True
        return self.admit_special(path, owned_root)

    def admit_special(self, path: str, owned_root: bool) -> bool:
        """admit, for a path some rule matches."""
        if self.excludes.matches(path):
            return False
        for rules, reason, detail in (
            (PROTECTED, SkipReason.PROTECTED, "gateway identity or cache; never written"),
            (RESERVED, SkipReason.RESERVED, "reserved for Stoker's own state"),
        ):
            if rules.matches(path):
                self.skipped.append(Skip(path, reason, detail))
                return False
        if not owned_root and GATEWAY_OWNED.matches(path):
            self.skipped.append(
                Skip(
                    path,
                    SkipReason.GATEWAY_OWNED,
                    "gateway-owned path; map it explicitly (destination inside it) to write it",
                )
            )
            return False
        return True

    def add_file_mapping(
        self, i: int, mapping: model.Mapping, entry: RepoEntry, dest: str, owned: bool
    ) -> None:
        if not dest:
            raise InvalidInput.one(
                "a file cannot replace the data directory; name a file path",
                field=f"mappings[{i}].destination",
            )
        name = posixpath.basename(dest)
        patches = [(p.file or name, p) for p in mapping.patches]
        if self.admit(dest, owned):
            self.add_file(i, mapping, entry, dest, name, patches)
        self.report_unmatched(i, dest, patches, {name})

    def add_dir_mapping(
        self, i: int, mapping: model.Mapping, source: str, dest: str, owned: bool
    ) -> None:
        for j, patch in enumerate(mapping.patches):
            if not patch.file:
                raise InvalidInput.one(
                    "is required for a directory mapping; name the files to patch with a glob "
                    'such as "**/config.json"',
                    field=f"mappings[{i}].patches[{j}].file",
                )
        patches = [(p.file, p) for p in mapping.patches]
        prefix = len(source) + 1 if source else 0
        base = dest + "/" if dest else ""
        skipped_dirs: list[str] = []
        seen: set[str] = set()
        entries = list(self.snapshot.walk(source))
        # Every path is checked at once; the entries before a crafted one are still taken in
        # order, so whatever one of them would refuse is refused first, as one by one.
        crafted = first_unclean([e.path for e in entries])
        plain = not patches and not mapping.template
        if plain and crafted < 0 and self.add_plain(i, mapping, entries, prefix, base):
            return
        if mapping.template and crafted < 0:  # every file is read to be rendered: in one pass
            self.snapshot.read_ahead([e for e in entries if e.kind is Kind.FILE])
        special, files, dirs = self.special.matches, self.files, self.dirs
        new = tuple.__new__  # DesiredFile's own __new__ is Python code: this runs per file
        file_kind, dir_kind = Kind.FILE, Kind.DIR
        for entry in entries if crafted < 0 else entries[:crafted]:
            from_source, kind, blob, git_mode, size = entry
            rel = from_source[prefix:]
            path = base + rel
            if skipped_dirs and any(path.startswith(d + "/") for d in skipped_dirs):
                continue
            if kind is file_kind:
                if special(path) and not self.admit_special(path, owned):
                    continue
                if plain and not LFS_MIN_POINTER <= size < LFS_MAX_POINTER:  # as add_file does
                    mode = EXECUTABLE if git_mode & 0o111 else REGULAR
                    files[path] = new(DesiredFile, (path, blob, mode, size, i, entry, None))
                    continue
                self.add_file(i, mapping, entry, path, rel, patches)
                if patches:
                    seen.add(rel)
            elif kind is dir_kind:
                if special(path) and (self.excludes.matches(path) or not self.admit_dir(path)):
                    skipped_dirs.append(path)
                else:
                    dirs.add(path)
            elif not self.excludes.matches(path):
                reason = SkipReason.SYMLINK if kind is Kind.SYMLINK else SkipReason.SUBMODULE
                self.skipped.append(Skip(path, reason, f"{kind} in the repository; not followed"))
        if crafted >= 0:
            raise self.crafted(entries[crafted].path)
        self.report_unmatched(i, dest, patches, seen)

    def add_plain(
        self, i: int, mapping: model.Mapping, entries: list[RepoEntry], prefix: int, base: str
    ) -> bool:
        """add_dir_mapping's loop for a mapping that neither renders nor patches, in bulk (a few
        passes in C, not a Python step per path); False, having added nothing, when a path
        needs a step of its own: one a rule matches, or a link or submodule. A file the size
        of an LFS pointer goes through add_file, in its place: the dict keeps the loop's order."""
        paths = [e[0] for e in entries] if prefix == len(base) else []
        if not paths or paths[0][:prefix] != base:  # another destination than the source
            paths = [base + e[0][prefix:] for e in entries]
        kinds = list(map(_KIND, entries))
        if kinds.count(Kind.FILE) + kinds.count(Kind.DIR) != len(kinds):
            return False
        if self.special.matching(paths):
            return False
        files, dirs, new = self.files, self.dirs, _NEW_FILE
        start = 0
        for at in [*compress(range(len(entries)), map(_POINTER_SIZED, map(_SIZE, entries))), None]:
            run, where = entries[start:at], paths[start:at]
            is_file = list(map(is_, kinds[start:at], repeat(Kind.FILE)))
            got = list(compress(run, is_file))
            named = list(compress(where, is_file))
            modes = map(
                _FILE_MODES.__getitem__, map(bool, map(and_, map(_MODE, got), repeat(0o111)))
            )
            rows = zip(named, map(_BLOB, got), modes, map(_SIZE, got), repeat(i), got, repeat(None))
            files.update(zip(named, map(new, rows), strict=True))
            dirs.update(compress(where, map(not_, is_file)))
            if at is None:
                return True
            self.add_file(i, mapping, entries[at], paths[at], paths[at], [])
            start = at + 1
        return True

    def add_file(
        self,
        i: int,
        mapping: model.Mapping,
        entry: RepoEntry,
        path: str,
        rel: str,
        patches: list[tuple[str, model.Patch]],
    ) -> None:
        pointer_sized = LFS_MIN_POINTER <= entry.size < LFS_MAX_POINTER
        if pointer_sized and self.snapshot.read(entry).startswith(LFS_PREFIX):
            self.skipped.append(
                Skip(path, SkipReason.LFS_POINTER, "Git LFS pointer; LFS content is not fetched")
            )
            return
        matching = [p for pattern, p in patches if match(pattern, rel)] if patches else []
        content: bytes | None = None
        if mapping.template or matching:
            content = self.snapshot.read(entry)
            if mapping.template:
                content = render_file(content, self.context, path=entry.path)
            for patch in matching:
                values = {
                    k: render(v, self.context, where=f"mappings[{i}].patches.set.{k}")
                    for k, v in patch.set_.items()
                }
                content = apply_patch(content, values, path=path)
        mode = EXECUTABLE if entry.mode & 0o111 else REGULAR
        if content is None:
            self.files[path] = DesiredFile(path, entry.blob, mode, entry.size, i, entry)
        else:
            self.files[path] = DesiredFile(
                path, blob_id(content), mode, len(content), i, entry, content
            )

    def report_unmatched(
        self, i: int, dest: str, patches: list[tuple[str, model.Patch]], seen: set[str]
    ) -> None:
        for j, (pattern, _) in enumerate(patches):
            if not any(match(pattern, rel) for rel in seen):
                self.skipped.append(
                    Skip(
                        dest or ".",
                        SkipReason.PATCH_UNMATCHED,
                        f'mappings[{i}].patches[{j}].file "{pattern}" matched no file',
                    )
                )

    def parent_dirs(self) -> set[str]:
        """Every directory above a desired file."""
        return folders_above(self.files)

    def check_conflicts(self, parents: set[str]) -> None:
        problems = []
        for parent in sorted(parents & self.files.keys()):
            below = next(p for p in sorted(self.files) if p.startswith(parent + "/"))
            problems.append(
                Problem(
                    path=below,
                    message=f"mapping {self.files[below].mapping} puts a file under "
                    f'"{parent}", which mapping {self.files[parent].mapping} makes a file',
                )
            )
        if problems:
            raise InvalidInput(problems)


def _under_a_file(path: str, files: Mapping[str, object], known: dict[str, bool]) -> bool:
    """Whether `path` or a directory above it is a file in `files` (`known` memoises: sibling
    directories share their ancestors, so each one is looked at once)."""
    verdict = known.get(path)
    if verdict is None:
        parent = path.rpartition("/")[0]
        verdict = path in files or (bool(parent) and _under_a_file(parent, files, known))
        known[path] = verdict
    return verdict


def sources(profile: EffectiveProfile, context: TemplateContext) -> tuple[str, ...]:
    """The repository paths the profile's mappings read, rendered for this gateway.

    What a sparse fetch needs: no file outside them is ever read. "" (the whole repository)
    when a mapping reads the repository root.
    """
    rendered = [
        _render_path(i, "source", m.source, context) for i, m in enumerate(profile.mappings)
    ]
    return tuple(sorted(set(rendered)))


def mapping_paths(
    profile: EffectiveProfile, context: TemplateContext
) -> tuple[tuple[str, str], ...]:
    """Each mapping's (source, destination), rendered for this gateway, in mapping order."""
    return tuple(
        (
            _render_path(i, "source", m.source, context),
            _render_path(i, "destination", m.destination, context),
        )
        for i, m in enumerate(profile.mappings)
    )


def _render_path(i: int, field: str, template: str, context: TemplateContext) -> str:
    where = f"mappings[{i}].{field}"
    rendered = render(template, context, where=where)
    try:
        return normalize(rendered)
    except PathEscape as e:
        if rendered == template:  # nothing was rendered: the path is the CR's own text
            raise InvalidInput.one(str(e), field=where) from None
        # A rendered path may hold a variable's value: name the template, never the result.
        raise InvalidInput.one(
            f"the path rendered from {template!r} {_escape_reason(rendered)}; a destination "
            "stays inside the data directory",
            field=where,
        ) from None


def _escape_reason(path: str) -> str:
    """Why a rendered path was refused, without quoting it."""
    if path.startswith("/"):
        return "is absolute"
    if "\0" in path:
        return "holds a NUL byte"
    return 'leaves its root through ".."'


def never_patterns(profile: EffectiveProfile) -> tuple[str, ...]:
    """The patterns of the paths never written nor deleted: excluded, protected or reserved
    (what DesiredTree.untouchable holds: a live walk never enters a folder they match)."""
    excludes = GlobSet((*profile.exclude_patterns, *HARD_EXCLUDES))
    return (*excludes.patterns, *PROTECTED.patterns, *RESERVED.patterns)


def outer_destinations(profile: EffectiveProfile, context: TemplateContext) -> tuple[str, ...]:
    """The mappings' destinations that lie in no other one: what a full check walks (the
    folders among them); () when one cannot be rendered (build says why)."""
    try:
        dests = sorted({dest for _, dest in mapping_paths(profile, context)})
    except InvalidInput:
        return ()
    outer: list[str] = []
    for dest in dests:
        if not any(not top or dest.startswith(top + "/") for top in outer):
            outer.append(dest)
    return tuple(outer)


def build(
    profile: EffectiveProfile, snapshot: RepoSnapshot, context: TemplateContext
) -> DesiredTree:
    """Compute the desired tree for one gateway; raise InvalidInput naming the mapping or file."""
    excludes = GlobSet((*profile.exclude_patterns, *HARD_EXCLUDES))
    never = (*excludes.patterns, *PROTECTED.patterns, *RESERVED.patterns)
    special = GlobSet((*never, *GATEWAY_OWNED.patterns))
    builder = _Builder(profile, snapshot, context, excludes, special)
    for i, mapping in enumerate(profile.mappings):
        builder.add_mapping(i, mapping)
    parent_dirs = builder.parent_dirs()
    builder.check_conflicts(parent_dirs)
    # An empty directory never displaces a file another mapping delivers at or above it. (One
    # holding a desired file is under no file: check_conflicts refused that.)
    known: dict[str, bool] = {}
    empty = builder.dirs - parent_dirs
    dirs = (builder.dirs & parent_dirs) | {
        d for d in empty if not _under_a_file(d, builder.files, known)
    }
    return DesiredTree(
        commit=snapshot.commit,
        files=builder.files,
        dirs=frozenset(dirs),
        roots=tuple(builder.roots),
        skipped=tuple(builder.skipped),
        excludes=excludes,
        untouchable=GlobSet(never),
        parent_dirs=frozenset(parent_dirs),
    )
