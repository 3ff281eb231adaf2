"""Reading a Git repository at one commit, without a working copy.

This is the read side of the agent's git adapter: `stoker sync` and `stoker plan` use it on a
local repository, on the agent's mirror, or on a shallow fetch of a remote one into a temporary
bare repository. Reading goes straight through the git CLI (`ls-tree`, `cat-file
--batch-command`), so a sync of a local repository never imports GitPython: its import alone
costs about 40 ms of every `stoker sync` process. GitPython serves the remote case of
`Repository`. A commit planned from its changes reads its diff and listings as tree objects
through the snapshot's one `cat-file --batch-command` (see gittrees): one git process per sync.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import IO, Self

from stoker_agent import gitexec, gittrees
from stoker_core.errors import InvalidInput, StokerError, TemporaryError
from stoker_core.recorded import CommitDiff
from stoker_core.redaction import redact
from stoker_core.trees import EXECUTABLE, REGULAR, Kind, RepoEntry

# ls-tree's mode column: the kind of entry, and the file mode Stoker writes for it.
_MODES = {
    "040000": (Kind.DIR, REGULAR),
    "100644": (Kind.FILE, REGULAR),
    "100755": (Kind.FILE, EXECUTABLE),
    "120000": (Kind.SYMLINK, REGULAR),
    "160000": (Kind.SUBMODULE, REGULAR),
}
_OTHER = (Kind.OTHER, REGULAR)
_HEX = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # a full SHA-1 or SHA-256 object id
log = logging.getLogger("stoker.git")
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/]+@[^/:]+:)", re.IGNORECASE)


class GitError(StokerError):
    """A git operation failed; the message is free of credentials."""


def is_remote(location: str) -> bool:
    """Tell whether `location` is a URL (https, ssh, git, scp-like) rather than a local path."""
    return bool(_REMOTE.match(location)) and not os.path.exists(location)


def git_args(git_dir: str, *args: str) -> list[str]:
    """The arguments of one git command on `git_dir`, with the bounded pack windows."""
    return ["--git-dir", git_dir, "--literal-pathspecs", *BOUNDED_MEMORY, *args]


def run_git(git_dir: str, *args: str) -> bytes:
    """Run one local git command and return its output; GitError (git's own words) if it fails."""
    done = gitexec.run(git_args(git_dir, *args), capture_output=True)
    if done.returncode != 0:
        detail = redact(done.stderr.decode("utf-8", "replace").strip())
        raise GitError(f"git {args[0]} failed in {git_dir}: {detail}")
    return bytes(done.stdout)


class _Closing:
    """`with obj:` closes obj at the end of the block (it holds git processes or a temp dir)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release what the object holds."""


class GitSnapshot(_Closing):
    """A RepoSnapshot over one commit of a repository on disk; close() stops its git reader."""

    def __init__(
        self,
        git_dir: str,
        commit: str,
        paths: Sequence[str] = (),
        *,
        ahead: bool = True,
        reader: ObjectReader | None = None,
    ) -> None:
        """`paths` limits the snapshot to those subtrees (a sparse fetch holds only them).
        `ahead`: list the commit's tree from the start, in the background (else when it is
        first needed: a sync planned from the commit's changes never needs it). `reader`: an
        idle object reader of `git_dir` to read through (else one is started when needed)."""
        self._git_dir = git_dir
        self._paths = [] if "" in paths else list(paths)
        self._commit = commit
        self._entries: dict[str, RepoEntry] | None = None
        self._sorted: list[str] = []  # every path, in order
        self._ordered: list[RepoEntry] = []  # their entries, in the same order
        self._reader = reader
        self._read: dict[str, bytes] = {}  # blobs read ahead (read_ahead), until read
        self._closed = False
        # The commit's tree is listed in the background from the start: the caller's own work
        # meanwhile (reading the manifest, recovering a journal) hides git's share of the time.
        self._listing: subprocess.Popen[bytes] | None = self._list_tree() if ahead else None

    def _list_tree(self) -> subprocess.Popen[bytes]:
        """Start listing the whole commit (or its `paths`)."""
        spec = ["--", *self._paths] if self._paths else []
        return gitexec.popen(
            git_args(
                self._git_dir, "ls-tree", "-r", "-t", "-l", "-z", "--full-tree", self._commit, *spec
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def close(self) -> None:
        """Stop the snapshot's git processes."""
        self._closed = True
        self._read.clear()
        if self._listing is not None:
            _stop(self._listing)
            self._listing = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def commit(self) -> str:
        """The full commit id."""
        return self._commit

    def _index(self) -> dict[str, RepoEntry]:
        if self._entries is None:
            entries = {"": RepoEntry("", Kind.DIR), **_parse_listing(self._listed())}
            self._entries = entries
            self._sorted = sorted(entries)  # paths are unique: sorted without a key function
            self._ordered = list(map(entries.__getitem__, self._sorted))
        return self._entries

    def diff_since(
        self, old: str, sources: Sequence[str], rendering: Sequence[str], limit: int
    ) -> CommitDiff | None:
        """What changed since commit `old` (as `git diff-tree` says), with the entries of this
        commit that building the changed part of the desired tree reads (see
        recorded.CommitDiff): None when more than `limit` paths changed. GitError when `old`
        cannot be read (a shallow fetch does not hold it). Read as tree objects through the
        snapshot's object reader; git's own commands where that could answer otherwise."""
        try:
            return self._diff_from_trees(old, sources, rendering, limit)
        except gittrees.Inexact as e:
            log.debug("the commit's changes are listed by git's commands: %s", e)
        except gittrees.MalformedTree as e:
            raise GitError(f"{e} (in {self._git_dir})") from None
        except GitError:
            self._drop_reader()  # a reply may be left half read
            raise
        return self._diff_by_commands(old, sources, rendering, limit)

    def _diff_from_trees(
        self, old: str, sources: Sequence[str], rendering: Sequence[str], limit: int
    ) -> CommitDiff | None:
        """diff_since through the object reader (see gittrees); Inexact where it could differ
        from git's `diff-tree` and `ls-tree` (a pathspec git would normalise, an id that is not
        a full one of this repository's length)."""
        if self._closed:
            raise GitError("the snapshot is closed")
        if not (_HEX.match(old) and _HEX.match(self._commit) and len(old) == len(self._commit)):
            raise gittrees.Inexact(f"commits {old!r} and {self._commit!r} are not full ids")
        named = [s for s in sources if s]
        rendered = [r for r in rendering if r]
        if not all(map(gittrees.clean, [*self._paths, *named, *rendered])):
            raise gittrees.Inexact("a pathspec git would normalise")
        if self._reader is None:
            self._reader = ObjectReader(self._git_dir)
        reader = self._reader
        raw_len = len(self._commit) // 2
        trees = gittrees.Trees(lambda ids: reader.objects([i.hex() for i in ids], b"tree"), raw_len)
        old_tree, new_tree = (bytes.fromhex(t) for t in reader.root_trees([old, self._commit]))
        changes = gittrees.diff(trees, old_tree, new_tree, gittrees.Specs(self._paths), limit)
        if changes is None:
            return None
        changed, found, files = _changed(changes)
        wanted = [*files, *rendered]
        below = gittrees.list_tree(trees, new_tree, gittrees.Specs(wanted), True) if wanted else []
        tops = gittrees.list_tree(trees, new_tree, gittrees.Specs(named), False) if named else []
        listed = self._entries_of([*below, *tops])  # the files' sizes asked for in one go
        found.update(listed[: len(below)])
        return CommitDiff(
            self._commit, changed, found, _sources_of(named, dict(listed[len(below) :]))
        )

    def _entries_of(self, listed: list[gittrees.Listed]) -> list[tuple[str, RepoEntry]]:
        """Entries as `_parse_listing` makes them of ls-tree's lines (files' sizes asked of git)."""
        assert self._reader is not None
        files = [
            oid.hex() for _, mode, oid in listed if mode in (gittrees.FILE, gittrees.EXECUTABLE)
        ]
        sizes = iter(self._reader.sizes(files))
        entries: list[tuple[str, RepoEntry]] = []
        for raw_path, mode, oid in listed:
            path = raw_path.decode("utf-8", "surrogateescape")
            kind, file_mode = _MODES[f"{mode:06o}"]
            if kind is Kind.FILE:
                entry = RepoEntry(path, kind, oid.hex(), file_mode, next(sizes))
            else:
                entry = RepoEntry(path, kind, "" if kind is Kind.DIR else oid.hex())
            entries.append((path, entry))
        return entries

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _diff_by_commands(
        self, old: str, sources: Sequence[str], rendering: Sequence[str], limit: int
    ) -> CommitDiff | None:
        """diff_since through `git diff-tree` and two `git ls-tree`: three git processes."""
        spec = ["--", *self._paths] if self._paths else []
        raw = run_git(
            self._git_dir, "diff-tree", "-r", "-t", "-z", "--no-renames", old, self._commit, *spec
        )
        fields = raw.decode("utf-8", "surrogateescape").split("\0")
        changed: dict[str, str] = {}
        trees: dict[str, RepoEntry] = {}
        files: list[str] = []
        for meta, path in zip(fields[0:-1:2], fields[1::2], strict=True):
            _, new_mode, _, _, status = meta.split()
            changed[path] = "T" if path in changed else status[0]  # a file that became a tree
            kind = _MODES.get(new_mode, _OTHER)[0]
            if kind is Kind.DIR:
                trees[path] = RepoEntry(path, Kind.DIR)
            elif status[0] != "D":
                files.append(path)
            if len(changed) > limit:
                return None
        wanted = [*files, *(r for r in rendering if r)]
        entries = {**trees, **(self._list(wanted, recursive=True) if wanted else {})}
        return CommitDiff(self._commit, changed, entries, self._sources(sources))

    def _sources(self, sources: Sequence[str]) -> dict[str, RepoEntry]:
        """Each source's entry at this commit: a file, link or submodule is listed as itself,
        a directory by its children (git has no empty ones)."""
        named = [s for s in sources if s]
        return _sources_of(named, self._list(named) if named else {})

    def _list(self, paths: Sequence[str], *, recursive: bool = False) -> dict[str, RepoEntry]:
        """`git ls-tree -l -z --full-tree` of `paths` at this commit (`recursive`: with -r -t).
        The paths follow "--" whatever they look like: a file named "-r" is a path, not a flag."""
        flags = ["-r", "-t"] if recursive else []
        return _parse_listing(
            run_git(
                self._git_dir,
                "ls-tree",
                *flags,
                "-l",
                "-z",
                "--full-tree",
                self._commit,
                "--",
                *paths,
            )
        )

    def _listed(self) -> bytes:
        if self._closed:
            raise GitError("the snapshot is closed")
        listing = self._listing or self._list_tree()
        out, err = listing.communicate()
        self._listing = None
        if listing.returncode != 0:
            detail = redact(err.decode("utf-8", "replace").strip())
            raise GitError(f"git ls-tree failed in {self._git_dir}: {detail}")
        return out

    def entry(self, path: str) -> RepoEntry | None:
        """See RepoSnapshot.entry."""
        return self._index().get(path)

    def walk(self, path: str) -> list[RepoEntry]:
        """See RepoSnapshot.walk (a slice of the ordered entries: no step per entry)."""
        self._index()
        paths = self._sorted
        if not path:
            return self._ordered[1:]  # all but the root, "", which sorts first
        start = bisect.bisect_left(paths, path + "/")
        end = bisect.bisect_left(paths, path + "0", start)  # "0" follows "/": past the subtree
        return self._ordered[start:end]

    def read(self, entry: RepoEntry) -> bytes:
        """See RepoSnapshot.read (one persistent `git cat-file --batch`)."""
        content = self._read.pop(entry.blob, None)
        if content is not None:
            return content
        if self._reader is None:
            self._reader = ObjectReader(self._git_dir)
        return self._reader.read(entry.blob)

    def read_ahead(self, entries: Iterable[RepoEntry]) -> None:
        """See RepoSnapshot.read_ahead: blobs asked for READ_AHEAD_BATCH at a time (a round
        trip to git each batch, not each blob), kept until read; only blobs of up to
        READ_AHEAD_BLOB, up to READ_AHEAD_TOTAL in all (the rest is read when asked)."""
        wanted: dict[str, None] = {}
        total = sum(map(len, self._read.values()))
        for entry in entries:
            if entry.blob in self._read or entry.blob in wanted or entry.size > READ_AHEAD_BLOB:
                continue
            total += entry.size
            if total > READ_AHEAD_TOTAL:
                break
            wanted[entry.blob] = None
        blobs = list(wanted)
        if len(blobs) < 2 or self._closed:
            return
        if self._reader is None:
            self._reader = ObjectReader(self._git_dir)
        try:
            for start in range(0, len(blobs), READ_AHEAD_BATCH):
                batch = blobs[start : start + READ_AHEAD_BATCH]
                self._read.update(zip(batch, self._reader.read_many(batch), strict=True))
        except GitError:
            # A hint only: read() asks again, through a new reader, and says what is wrong.
            self._reader.close()
            self._reader = None

    def pipeline(self, blobs: list[str]) -> BlobPipeline:
        """Read many blobs in one pass, in the order given (see BlobPipeline). The reader's
        `cat-file --batch`, idle between requests, serves it when there is one: a sync that
        read a file while planning starts one git process for its blobs, not two."""
        reader, self._reader = self._reader, None
        return BlobPipeline(self._git_dir, blobs, proc=reader.detach() if reader else None)


def _changed(
    changes: list[gittrees.Change],
) -> tuple[dict[str, str], dict[str, RepoEntry], list[str]]:
    """Of diff-tree's changes: the status by path ("T" for a path changed twice: a file that
    became a tree, or back), the trees at the new commit, and the paths still there."""
    changed: dict[str, str] = {}
    trees: dict[str, RepoEntry] = {}
    files: list[str] = []
    for raw_path, _, new_mode, status in changes:
        path = raw_path.decode("utf-8", "surrogateescape")
        changed[path] = "T" if path in changed else status
        if new_mode == gittrees.DIR:
            trees[path] = RepoEntry(path, Kind.DIR)
        elif status != "D":
            files.append(path)
    return changed, trees, files


def _sources_of(named: list[str], listed: dict[str, RepoEntry]) -> dict[str, RepoEntry]:
    """Each source's entry, of `git ls-tree` (not -r) of the sources: a source above another is
    recursed into, not listed; it is a directory when something below it is listed."""
    found: dict[str, RepoEntry] = {}
    for source in named:
        if source in listed:
            found[source] = listed[source]
        elif any(p.startswith(source + "/") for p in listed):
            found[source] = RepoEntry(source, Kind.DIR)
    return found


def _parse_listing(raw: bytes) -> dict[str, RepoEntry]:
    """`git ls-tree -l -z` output as entries by path."""
    entries: dict[str, RepoEntry] = {}
    new = tuple.__new__  # RepoEntry's own __new__ is Python code; this runs per path
    file_kind, dir_kind = Kind.FILE, Kind.DIR
    # Decoded once, not per field: this loop runs once per path of the commit.
    for record in raw.decode("utf-8", "surrogateescape").split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, _type, obj, size = meta.split()
        # Most entries are plain files and folders: made without the table's look-up.
        if mode == "100644":
            entries[path] = new(RepoEntry, (path, file_kind, obj, REGULAR, int(size)))
            continue
        if mode == "040000":
            entries[path] = new(RepoEntry, (path, dir_kind, "", REGULAR, 0))
            continue
        kind, file_mode = _MODES.get(mode, _OTHER)
        if kind is Kind.FILE:
            entries[path] = new(RepoEntry, (path, kind, obj, file_mode, int(size)))
        else:  # a tree or a submodule's commit has no size ("-"); neither is read
            entries[path] = RepoEntry(path, kind, "" if kind is Kind.DIR else obj)
    return entries


# git maps pack files into memory whole by default; bounded windows keep the agent's process
# tree small on large repositories (issue: peak RSS under 150 MB on a 1 GB repository).
BOUNDED_MEMORY = (
    "-c",
    "core.packedGitWindowSize=16m",
    "-c",
    "core.packedGitLimit=64m",
    "-c",
    "core.deltaBaseCacheLimit=16m",
)


def _read_object(
    out: IO[bytes], blob: str, chunk: int, kinds: tuple[bytes, ...] = (b"blob",)
) -> Iterator[bytes]:
    """Yield one object's content from a `git cat-file --batch-command` reply stream (`contents`
    requests), to its end; GitError unless it is of one of `kinds` (its content left unread)."""
    yield from _content(out, blob, _header(out, blob, kinds)[1], chunk)


def _header(out: IO[bytes], oid: str, kinds: tuple[bytes, ...]) -> tuple[bytes, int]:
    """The type and size of the reply's object; GitError (naming it) unless of `kinds`."""
    header = out.readline().split()
    if not header:  # git is gone: too old for --batch-command, or stopped
        raise GitError(f"git cat-file stopped before reading {oid} (Stoker needs git 2.36+)")
    if len(header) != 3 or header[1] not in kinds or not header[2].isdigit():
        kind = "/".join(k.decode() for k in kinds)
        raise GitError(f"git cat-file could not read {kind} {oid}: {header!r}")
    return header[1], int(header[2])


def _content(out: IO[bytes], blob: str, remaining: int, chunk: int) -> Iterator[bytes]:
    """Yield an object's content of `remaining` bytes, and read the newline after it."""
    if remaining == 0:
        yield b""
    while remaining > 0:
        data = out.read(min(chunk, remaining))
        if not data:
            raise GitError(f"git cat-file ended early while reading object {blob}")
        remaining -= len(data)
        yield data
    out.read(1)  # the newline after each object


_TREE_LINE = re.compile(rb"tree ([0-9a-fA-F]{40}|[0-9a-fA-F]{64})\n")


def _tree_of(commit: str, kind: bytes, content: bytes) -> str:
    """A commit's tree id, of its first line; Inexact for a tag (git peels it)."""
    if kind == b"tag":
        raise gittrees.Inexact(f"{commit} is a tag")
    found = _TREE_LINE.match(content)
    if found is None or len(found[1]) != len(commit):
        raise GitError(f"commit {commit} is malformed: no tree line")
    return found[1].decode().lower()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _cat_file(git_dir: str) -> subprocess.Popen[bytes]:
    """A `git cat-file --batch-command` of `git_dir` (git 2.36 or later), fed on stdin: it
    answers `contents <id>` with an object and `info <id>` with its type and size, and
    flushes after each (no --buffer), so a request's reply never waits for the next one."""
    return gitexec.popen(
        git_args(git_dir, "cat-file", "--batch-command"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


# Read ahead (GitSnapshot.read_ahead): requests written before their replies are read, a batch
# at a time; 48 of them (74 bytes each, `contents <SHA-256 id>`) fit in one 4 KiB page, the
# smallest buffer a pipe gets, so writing them never waits for git, which may be waiting for us
# to read.
READ_AHEAD_BATCH = 48
READ_AHEAD_BLOB = 1 << 20  # bytes: a larger blob is read when asked, never held ahead
READ_AHEAD_TOTAL = 32 << 20  # bytes held ahead at most


class ObjectReader:
    """Objects read on request through one persistent `git cat-file --batch-command`."""

    def __init__(self, git_dir: str) -> None:
        self._proc: subprocess.Popen[bytes] | None = _cat_file(git_dir)
        self._between = True  # every reply read to its end: the next request starts afresh

    def read(self, blob: str) -> bytes:
        """The whole content of one blob."""
        if self._proc is None:
            raise GitError(f"the object reader is closed; blob {blob} was not read")
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        try:
            self._proc.stdin.write(b"contents " + blob.encode() + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise GitError(f"git cat-file stopped before reading blob {blob}") from None
        self._between = False
        content = b"".join(_read_object(self._proc.stdout, blob, 1 << 20))
        self._between = True
        return content

    def read_many(self, blobs: list[str]) -> list[bytes]:
        """The whole contents of `blobs` (at most READ_AHEAD_BATCH), asked for at once: every
        request is written before any reply is read, so they must fit in the pipe's buffer."""
        if self._proc is None:
            raise GitError("the object reader is closed; no blob was read")
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        try:
            self._proc.stdin.write(b"".join(b"contents " + blob.encode() + b"\n" for blob in blobs))
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise GitError("git cat-file stopped before reading the blobs asked for") from None
        self._between = False
        out = self._proc.stdout
        contents = [b"".join(_read_object(out, blob, 1 << 20)) for blob in blobs]
        self._between = True
        return contents

    def objects(self, oids: Sequence[str], kind: bytes) -> list[bytes]:
        """The whole contents of `oids`, each of type `kind` (a GitError naming the first
        that is missing or not one), asked for READ_AHEAD_BATCH at a time."""
        contents: list[bytes] = []
        for start in range(0, len(oids), READ_AHEAD_BATCH):
            batch = oids[start : start + READ_AHEAD_BATCH]
            out = self._ask(b"contents", batch)
            contents += [b"".join(_read_object(out, oid, 1 << 20, (kind,))) for oid in batch]
            self._between = True
        return contents

    def root_trees(self, commits: Sequence[str]) -> list[str]:
        """The tree id of each commit (a tree stands for itself, as git diff-tree takes it);
        gittrees.Inexact for a tag, which git peels."""
        read: list[tuple[bytes, bytes]] = []
        out = self._ask(b"contents", commits)
        for commit in commits:
            kind, size = _header(out, commit, (b"commit", b"tree", b"tag"))
            read.append((kind, b"".join(_content(out, commit, size, 1 << 20))))
        self._between = True  # every reply read before any is looked into
        return [
            commit if kind == b"tree" else _tree_of(commit, kind, content)
            for commit, (kind, content) in zip(commits, read, strict=True)
        ]

    def sizes(self, blobs: Sequence[str]) -> list[int]:
        """The size of each blob (`info`: its content is not read), READ_AHEAD_BATCH at a time."""
        sizes: list[int] = []
        for start in range(0, len(blobs), READ_AHEAD_BATCH):
            batch = blobs[start : start + READ_AHEAD_BATCH]
            out = self._ask(b"info", batch)
            sizes += [_header(out, blob, (b"blob",))[1] for blob in batch]
            self._between = True
        return sizes

    def first_commit(self, names: Sequence[str]) -> str | None:
        """The commit the first of `names` that git resolves names (a tag peeled, as
        `git rev-parse --verify NAME^{commit}` says), or None when none does. No name may
        hold a newline (it would be a request of its own)."""
        out = self._ask(b"info", [f"{name}^{{commit}}" for name in names])
        replies = [out.readline().split() for _ in names]
        self._between = True
        if not all(replies):  # git is gone: too old for --batch-command, or stopped
            raise GitError("git cat-file stopped before naming a commit (Stoker needs git 2.36+)")
        found = (r[0] for r in replies if len(r) == 3 and r[1] == b"commit")  # else "missing"
        return next((oid.decode("ascii") for oid in found), None)

    def _ask(self, command: bytes, oids: Sequence[str]) -> IO[bytes]:
        """Write one request per id (at most READ_AHEAD_BATCH); the stream of their replies."""
        if self._proc is None:
            raise GitError("the object reader is closed; no object was read")
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        try:
            self._proc.stdin.write(b"".join(b"%s %s\n" % (command, oid.encode()) for oid in oids))
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise GitError("git cat-file stopped before reading the objects asked for") from None
        self._between = False
        return self._proc.stdout

    def detach(self) -> subprocess.Popen[bytes] | None:
        """Hand over the git process, idle between replies, and forget it (None, and the
        process stopped, when a reply was left half read: a refused object's content)."""
        proc, self._proc = self._proc, None
        if proc is None or (self._between and proc.poll() is None):
            return proc
        _stop(proc)
        return None

    def close(self) -> None:
        """Stop git."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)


class BlobPipeline:
    """Many blobs through one `git cat-file --batch`, requests written ahead by a thread.

    Asking for blobs one at a time costs a round trip each; writing every request up front lets
    git stream them back-to-back. Blobs must be read in the order given, each to its end.
    """

    def __init__(
        self,
        git_dir: str,
        blobs: list[str],
        chunk: int = 1 << 20,
        *,
        proc: subprocess.Popen[bytes] | None = None,
    ) -> None:
        """`proc`: an idle `git cat-file --batch` of `git_dir` to use (else one is started)."""
        self._chunk = chunk
        self._expected = iter(blobs)
        self._proc = proc or _cat_file(git_dir)
        self._writer = threading.Thread(target=self._write, args=(blobs,), daemon=True)
        self._writer.start()

    def _write(self, blobs: list[str]) -> None:
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            for blob in blobs:
                self._proc.stdin.write(b"contents " + blob.encode() + b"\n")
            self._proc.stdin.close()

    def next(self, blob: str) -> Iterator[bytes]:
        """Yield the content of the next blob, which must be `blob`."""
        expected = next(self._expected)
        if expected != blob:
            raise GitError(f"blob pipeline out of order: wanted {blob}, next is {expected}")
        assert self._proc.stdout is not None
        yield from _read_object(self._proc.stdout, blob, self._chunk)

    def close(self) -> None:
        """Stop git and the writer thread."""
        _stop(self._proc)
        self._writer.join()


class Repository(_Closing):
    """A repository opened for reading: a local path, or a remote fetched into a temp dir."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._remote = is_remote(location)
        self._snapshots: list[GitSnapshot] = []
        self._reader: ObjectReader | None = None  # resolve's, handed to the next snapshot
        if self._remote:
            self._temp = tempfile.TemporaryDirectory(prefix="stoker-repo-")
            self.git_dir = self._temp.name
            done = gitexec.run(["init", "--quiet", "--bare", self.git_dir], capture_output=True)
            if done.returncode != 0:
                raise GitError(f"git init failed in {self.git_dir}: {done.stderr.decode().strip()}")
        else:
            self.git_dir = _local_git_dir(location)

    def close(self) -> None:
        """Stop the snapshots' git readers and remove any temporary clone."""
        for snapshot in self._snapshots:
            snapshot.close()
        if self._reader is not None:
            self._reader.close()
        if self._temp is not None:
            self._temp.cleanup()

    def resolve(self, ref: str) -> str:
        """Return the full commit id for a branch, tag (peeled) or SHA."""
        if self._remote:
            return self._fetch(ref)
        found = None
        if "\n" not in ref:  # never a name of git's (nor a request of the reader's own)
            # Asked of the object reader the snapshot reads through next: no git process of
            # its own (a rev-parse per candidate before).
            if self._reader is None:
                self._reader = ObjectReader(self.git_dir)
            candidates = (ref, f"refs/tags/{ref}", f"refs/heads/{ref}", f"origin/{ref}")
            found = self._reader.first_commit(candidates)
        if found is not None:
            return found
        raise InvalidInput.one(
            f'ref "{ref}" not found in {self.location}; name a branch, a tag or a full commit SHA',
            field="--ref",
        )

    def _fetch(self, ref: str) -> str:
        try:
            run_git(self.git_dir, "fetch", "--depth=1", "--no-tags", "--", self.location, ref)
            return run_git(self.git_dir, "rev-parse", "FETCH_HEAD^{commit}").decode().strip()
        except GitError as e:
            if "couldn't find remote ref" in str(e) or "not our ref" in str(e):
                raise InvalidInput.one(
                    f'ref "{ref}" not found in the remote repository', field="--ref"
                ) from None
            raise TemporaryError(f"fetching {redact(self.location)}: {e}") from None

    def snapshot(self, commit: str, *, ahead: bool = True) -> GitSnapshot:
        """Return a snapshot of `commit`, closed with this repository (`ahead`: see
        GitSnapshot)."""
        reader, self._reader = self._reader, None
        snapshot = GitSnapshot(self.git_dir, commit, ahead=ahead, reader=reader)
        self._snapshots.append(snapshot)
        return snapshot


def _local_git_dir(location: str) -> str:
    """The git directory of the repository at `location` itself (never one of its parents)."""
    path = os.path.realpath(location)
    done = gitexec.run(
        ["-C", path, "rev-parse", "--absolute-git-dir", "--show-cdup"],
        trusted=path,  # the repository the user named, whoever owns it (the original's R12)
        env={"GIT_CEILING_DIRECTORIES": os.path.dirname(path)},
        capture_output=True,
        text=True,
    )
    lines = done.stdout.splitlines() if done.returncode == 0 else []
    if not lines or (len(lines) > 1 and lines[1]):  # show-cdup: not the top of the work tree
        raise InvalidInput.one(
            "is not a Git repository; pass a clone, a bare repository or a URL", path=location
        )
    return str(lines[0])
