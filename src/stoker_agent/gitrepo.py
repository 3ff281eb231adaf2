"""Reading a Git repository at one commit (GitPython plus the git CLI), without a working copy.

This is the read side of the agent's git adapter: `stoker plan` uses it on a local repository
or on a shallow fetch of a remote one into a temporary bare repository.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType

import git

from stoker_core.errors import InvalidInput, StokerError, TemporaryError
from stoker_core.redaction import redact
from stoker_core.trees import EXECUTABLE, REGULAR, Kind, RepoEntry

_MODES = {
    b"040000": Kind.DIR,
    b"100644": Kind.FILE,
    b"100755": Kind.FILE,
    b"120000": Kind.SYMLINK,
    b"160000": Kind.SUBMODULE,
}
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/]+@[^/:]+:)", re.IGNORECASE)


class GitError(StokerError):
    """A git operation failed; the message is free of credentials."""


def is_remote(location: str) -> bool:
    """Tell whether `location` is a URL (https, ssh, git, scp-like) rather than a local path."""
    return bool(_REMOTE.match(location)) and not os.path.exists(location)


class GitSnapshot:
    """A RepoSnapshot over one commit of a repository on disk."""

    def __init__(self, repo: git.Repo, commit: str, paths: Sequence[str] = ()) -> None:
        """`paths` limits the snapshot to those subtrees (a sparse fetch holds only them)."""
        self._repo = repo
        self._paths = [] if "" in paths else list(paths)
        settings = dict(kv.split("=", 1) for kv in BOUNDED_MEMORY[1::2])
        env = {"GIT_CONFIG_COUNT": str(len(settings)), "GIT_LITERAL_PATHSPECS": "1"}
        for i, (key, value) in enumerate(settings.items()):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        repo.git.update_environment(**env)
        self._commit = commit
        self._entries: dict[str, RepoEntry] | None = None
        self._sorted: list[str] = []

    @property
    def commit(self) -> str:
        """The full commit id."""
        return self._commit

    def _index(self) -> dict[str, RepoEntry]:
        if self._entries is None:
            spec = ["--", *self._paths] if self._paths else []
            raw = self._repo.git.ls_tree(
                "-r", "-t", "-l", "-z", "--full-tree", self._commit, *spec, stdout_as_string=False
            )
            entries: dict[str, RepoEntry] = {"": RepoEntry("", Kind.DIR)}
            for record in raw.split(b"\0"):
                if not record:
                    continue
                meta, _, name = record.partition(b"\t")
                mode, _type, obj, size = meta.split()
                kind = _MODES.get(mode, Kind.OTHER)
                path = name.decode("utf-8", "surrogateescape")
                entries[path] = RepoEntry(
                    path,
                    kind,
                    obj.decode() if kind is not Kind.DIR else "",
                    EXECUTABLE if mode == b"100755" else REGULAR,
                    int(size) if size != b"-" else 0,
                )
            self._entries = entries
            self._sorted = sorted(entries)
        return self._entries

    def entry(self, path: str) -> RepoEntry | None:
        """See RepoSnapshot.entry."""
        return self._index().get(path)

    def walk(self, path: str) -> Iterator[RepoEntry]:
        """See RepoSnapshot.walk."""
        index = self._index()
        prefix = path + "/" if path else ""
        start = bisect.bisect_left(self._sorted, prefix)
        for p in self._sorted[start:]:
            if not p.startswith(prefix):
                break
            if p:
                yield index[p]

    def read(self, entry: RepoEntry) -> bytes:
        """See RepoSnapshot.read (one persistent `git cat-file --batch`)."""
        data: bytes = self._repo.odb.stream(bytes.fromhex(entry.blob)).read()
        return data

    def pipeline(self, blobs: list[str]) -> BlobPipeline:
        """Read many blobs in one pass, in the order given (see BlobPipeline)."""
        return BlobPipeline(str(self._repo.git_dir), blobs)


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


class BlobPipeline:
    """Many blobs through one `git cat-file --batch`, requests written ahead by a thread.

    Asking for blobs one at a time costs a round trip each; writing every request up front lets
    git stream them back-to-back. Blobs must be read in the order given, each to its end.
    """

    def __init__(self, git_dir: str, blobs: list[str], chunk: int = 1 << 20) -> None:
        self._chunk = chunk
        self._expected = iter(blobs)
        self._proc = subprocess.Popen(
            ["git", "--git-dir", git_dir, *BOUNDED_MEMORY, "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._writer = threading.Thread(target=self._write, args=(blobs,), daemon=True)
        self._writer.start()

    def _write(self, blobs: list[str]) -> None:
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            for blob in blobs:
                self._proc.stdin.write(blob.encode() + b"\n")
            self._proc.stdin.close()

    def next(self, blob: str) -> Iterator[bytes]:
        """Yield the content of the next blob, which must be `blob`."""
        expected = next(self._expected)
        if expected != blob:
            raise GitError(f"blob pipeline out of order: wanted {blob}, next is {expected}")
        out = self._proc.stdout
        assert out is not None
        header = out.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise GitError(f"git cat-file could not read blob {blob}: {header!r}")
        remaining = int(header[2])
        if remaining == 0:
            yield b""
        while remaining > 0:
            data = out.read(min(self._chunk, remaining))
            if not data:
                raise GitError(f"git cat-file ended early while reading blob {blob}")
            remaining -= len(data)
            yield data
        out.read(1)  # the newline after each object

    def close(self) -> None:
        """Stop git and the writer thread."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._writer.join()


class Repository:
    """A repository opened for reading: a local path, or a remote fetched into a temp dir."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._remote = is_remote(location)
        if self._remote:
            self._temp = tempfile.TemporaryDirectory(prefix="stoker-repo-")
            self.repo = git.Repo.init(self._temp.name, bare=True)
        else:
            try:
                self.repo = git.Repo(location)
            except (git.NoSuchPathError, git.InvalidGitRepositoryError):
                raise InvalidInput.one(
                    "is not a Git repository; pass a clone, a bare repository or a URL",
                    path=location,
                ) from None

    def __enter__(self) -> Repository:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop git helper processes and remove any temporary clone."""
        self.repo.close()
        if self._temp is not None:
            self._temp.cleanup()

    def resolve(self, ref: str) -> str:
        """Return the full commit id for a branch, tag (peeled) or SHA."""
        if self._remote:
            return self._fetch(ref)
        for candidate in (ref, f"refs/tags/{ref}", f"refs/heads/{ref}", f"origin/{ref}"):
            try:
                sha: str = self.repo.git.rev_parse("--verify", "--quiet", f"{candidate}^{{commit}}")
                return sha.strip()
            except git.GitCommandError:
                continue
        raise InvalidInput.one(
            f'ref "{ref}" not found in {self.location}; name a branch, a tag or a full commit SHA',
            field="--ref",
        )

    def _fetch(self, ref: str) -> str:
        try:
            self.repo.git.fetch("--depth=1", "--no-tags", self.location, ref)
            sha: str = self.repo.git.rev_parse("FETCH_HEAD^{commit}")
            return sha.strip()
        except git.GitCommandError as e:
            detail = redact(str(e.stderr or e).strip())
            if "couldn't find remote ref" in detail or "not our ref" in detail:
                raise InvalidInput.one(
                    f'ref "{ref}" not found in the remote repository', field="--ref"
                ) from None
            raise TemporaryError(f"fetching {redact(self.location)}: {detail}") from None

    def snapshot(self, commit: str) -> GitSnapshot:
        """Return a snapshot of `commit`."""
        return GitSnapshot(self.repo, commit)
