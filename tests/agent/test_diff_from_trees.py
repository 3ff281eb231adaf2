"""GitSnapshot.diff_since reads a commit's changes as tree objects through its one
`git cat-file --batch-command` (gittrees): whatever the repositories, it answers exactly as the
three git commands it replaces (`diff-tree`, `ls-tree -r -t`, `ls-tree` of the sources), and a
tree object git would refuse is a GitError naming it, never a traceback or a hang."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import GIT_ENV, commit_tree, git
from stoker_agent import gittrees
from stoker_agent.gitrepo import GitError, GitSnapshot, _parse_listing
from stoker_core.recorded import CommitDiff
from stoker_core.trees import Kind, RepoEntry

# Names that sort around each other in git's tree order ("a" file < "a-b" < "a.b" < "a/" dir).
NAMES = st.sampled_from(["a", "a-b", "a.b", "a0", "b", "x y", "ä"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
# An entry's mode and content: plain, executable, a link, a submodule (a commit id).
KINDS = st.sampled_from(
    ["100644"] * 6 + ["100755", "100755", "120000", "120000", "120000", "160000"]
)
CONTENTS = st.sampled_from([b"1", b"2", b"3", b"4", b"{}", b""])
STATE = st.dictionaries(PATHS, st.tuples(KINDS, CONTENTS), max_size=10)


def _consistent(state: dict[str, tuple[str, bytes]]) -> dict[str, tuple[str, bytes]]:
    """Drop each path that is a folder of another (a file there and under it cannot both be)."""
    return {p: v for p, v in state.items() if not any(o.startswith(p + "/") for o in state)}


def _around(state: dict[str, tuple[str, bytes]]) -> list[str]:
    """The paths of a state, the folders above them and a path below each (a file's would make
    it a folder), and one absent."""
    found = {"zz"}
    for path in state:
        parts = path.split("/")
        found.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
        found.add(path + "/a")
    return sorted(found)


def _step(draw: st.DrawFn, state: dict[str, tuple[str, bytes]]) -> dict[str, tuple[str, bytes]]:
    """The next commit's state: some paths set, whatever was there (a file where a folder is,
    or the other way) replaced; some taken away."""
    near = st.sampled_from(_around(state))
    new = dict(state)
    for path in draw(st.lists(st.one_of(near, PATHS), min_size=1, max_size=4)):
        new = {p: v for p, v in new.items() if not (p + "/").startswith(path + "/")}
        new = {p: v for p, v in new.items() if not path.startswith(p + "/")}
        new[path] = draw(st.tuples(KINDS, CONTENTS))
    for path in draw(st.lists(near, max_size=2)):
        new = {p: v for p, v in new.items() if not (p + "/").startswith(path + "/")}
    return new


def _build(repo: Path, states: list[dict[str, tuple[str, bytes]]], sha256: bool) -> list[str]:
    """A repository holding one commit per state (through git fast-import); their ids."""
    fmt = "sha256" if sha256 else "sha1"
    git(repo, "init", "-q", "--bare", f"--object-format={fmt}")
    gitlink = ("5" * 64) if sha256 else ("5" * 40)
    stream = bytearray()
    for n, state in enumerate(states):
        stream += b"commit refs/heads/c%d\ncommitter T <t@t> 0 +0000\ndata 1\nc\n" % n
        stream += b"deleteall\n"
        for path, (mode, content) in sorted(state.items()):
            name = path.encode()
            if mode == "160000":
                tail = content.hex().encode() or b"0"
                stream += b"M 160000 %s %s\n" % (gitlink[: -len(tail)].encode() + tail, name)
            else:
                stream += b"M %s inline %s\ndata %d\n%s\n" % (
                    mode.encode(),
                    name,
                    len(content),
                    content,
                )
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=repo, input=bytes(stream), check=True,
        env={**GIT_ENV, "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return [git(repo, "rev-parse", f"c{n}") for n in range(len(states))]


def _git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "--literal-pathspecs", *args], check=True, capture_output=True
    ).stdout


def _by_commands(
    git_dir: str, old: str, new: str, paths: Sequence[str], sources: Sequence[str],
    rendering: Sequence[str], limit: int,
) -> CommitDiff | None:  # fmt: skip
    """The oracle: the three git commands diff_since answered with before."""
    spec = ["--", *paths] if paths and "" not in paths else []
    raw = _git(git_dir, "diff-tree", "-r", "-t", "-z", "--no-renames", old, new, *spec)
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    changed: dict[str, str] = {}
    trees: dict[str, RepoEntry] = {}
    files: list[str] = []
    for meta, path in zip(fields[0:-1:2], fields[1::2], strict=True):
        _, new_mode, _, _, status = meta.split()
        changed[path] = "T" if path in changed else status[0]
        if new_mode == "040000":
            trees[path] = RepoEntry(path, Kind.DIR)
        elif status[0] != "D":
            files.append(path)
        if len(changed) > limit:
            return None

    def listing(flags: list[str], specs: list[str]) -> dict[str, RepoEntry]:
        args = [*flags, "-l", "-z", "--full-tree", new, "--", *specs]
        return _parse_listing(_git(git_dir, "ls-tree", *args))

    wanted = [*files, *(r for r in rendering if r)]
    entries = {**trees, **(listing(["-r", "-t"], wanted) if wanted else {})}
    named = [s for s in sources if s]
    listed = listing([], named) if named else {}
    found: dict[str, RepoEntry] = {}
    for source in named:
        if source in listed:
            found[source] = listed[source]
        elif any(p.startswith(source + "/") for p in listed):
            found[source] = RepoEntry(source, Kind.DIR)
    return CommitDiff(new, changed, entries, found)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), first=STATE, sha256=st.booleans())
def test_the_diff_read_from_tree_objects_is_what_gits_commands_say(
    data: st.DataObject, first: dict[str, tuple[str, bytes]], sha256: bool
) -> None:
    states = [_consistent(first)]
    for _ in range(data.draw(st.integers(1, 3))):
        states.append(_step(data.draw, states[-1]))
    pair = data.draw(st.tuples(st.integers(0, 3), st.integers(0, 3)))
    specs = st.lists(st.sampled_from(sorted({*_around(states[0]), *_around(states[-1])})))
    paths = data.draw(st.one_of(st.just([]), st.just([]), specs.filter(lambda s: len(s) < 3)))
    sources = data.draw(specs.filter(lambda s: len(s) < 4))
    rendering = data.draw(specs.filter(lambda s: len(s) < 3))
    limit = data.draw(st.sampled_from([0, 3, 512, 512, 512, 512, 512]))
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo.git"
        repo.mkdir()
        commits = _build(repo, states, sha256)
        first_index = pair[0] % len(commits)  # and another one: never the same commit
        old = commits[first_index]
        new = commits[(first_index + 1 + pair[1] % (len(commits) - 1)) % len(commits)]
        expected = _by_commands(str(repo), old, new, paths, sources, rendering, limit)
        logger = logging.getLogger("stoker.git")
        fallbacks: list[str] = []
        handler = _Collect(fallbacks)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            with GitSnapshot(str(repo), new, paths, ahead=False) as snapshot:
                got = snapshot.diff_since(old, sources, rendering, limit)
        finally:
            logger.removeHandler(handler)
        assert got == expected
        if got is not None and expected is not None:
            assert list(got.changed.items()) == list(expected.changed.items())  # git's order
            assert list(got.entries.items()) == list(expected.entries.items())
        event("git's commands" if fallbacks else "tree objects")
        if expected is not None:
            event("no change" if not expected.changed else "changes")
            event("a type changed" if "T" in expected.changed.values() else "no type changed")
        if fallbacks:  # only a changed submodule is left to git's commands
            assert all("submodule" in m for m in fallbacks), fallbacks


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


def _tree(entries: list[tuple[bytes, bytes, bytes]]) -> bytes:
    return b"".join(mode + b" " + name + b"\0" + oid for mode, name, oid in entries)


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, str]:
    """A bare repository with one good commit; plant() adds a commit whose tree is given."""
    repo = tmp_path / "repo.git"
    repo.mkdir()
    (first,) = _build(repo, [{"a": ("100644", b"1"), "d/b": ("100644", b"2")}], sha256=False)
    return repo, first


def _commit_of(repo: Path, tree: bytes) -> str:
    """A commit whose root tree object is `tree`, written as is (git would not make it)."""
    tree_id = _hash(repo, "tree", tree)
    body = f"tree {tree_id}\ncommitter T <t@t> 0 +0000\n\nc\n".encode()
    return _hash(repo, "commit", body)


def _hash(repo: Path, kind: str, content: bytes) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(repo), "hash-object", "-w", "--literally", "-t", kind, "--stdin"],
        input=content, check=True, capture_output=True,
    )  # fmt: skip
    return done.stdout.decode().strip()


BLOB = bytes.fromhex("d00491fd7e5bb6fa28c517a0bb32b8b506539d4d")  # "1\n", absent from the repo


@pytest.mark.parametrize(
    ("tree", "says"),
    [
        (_tree([(b"100644", b"a", BLOB)])[:-3], "too-short tree"),
        (_tree([(b"100644", b"a", BLOB)]) + b"1006", "too-short tree"),
        (_tree([(b"10x644", b"a", BLOB)]), "malformed mode"),
        (_tree([(b"", b"a", BLOB)]), "malformed mode"),
        (_tree([(b"100644", b"", BLOB)]), "empty filename"),
    ],
)
def test_a_malformed_tree_object_is_a_git_error_naming_it(
    planted: tuple[Path, str], tree: bytes, says: str
) -> None:
    repo, first = planted
    bad = _commit_of(repo, tree)
    bad_tree = git(repo, "rev-parse", f"{bad}^{{tree}}")
    for old, new in ((first, bad), (bad, first)):
        with GitSnapshot(str(repo), new, ahead=False) as snapshot:
            with pytest.raises(GitError, match=f"tree {bad_tree} is malformed: {says}"):
                snapshot.diff_since(old, [], [], 512)
            # The reader still serves what is whole.
            entry = RepoEntry("a", Kind.FILE, git(repo, "rev-parse", f"{first}:a"))
            assert snapshot.read(entry) == b"1"


def test_a_missing_tree_or_blob_or_commit_is_a_git_error_naming_it(
    planted: tuple[Path, str],
) -> None:
    repo, first = planted
    gone_tree = bytes.fromhex("1" * 40)
    missing_dir = _commit_of(repo, _tree([(b"40000", b"d", gone_tree)]))
    with (
        GitSnapshot(str(repo), missing_dir, ahead=False) as snapshot,
        pytest.raises(GitError, match=f"could not read tree {'1' * 40}"),
    ):
        snapshot.diff_since(first, [], [], 512)
    missing_blob = _commit_of(repo, _tree([(b"100644", b"a", BLOB)]))
    with (
        GitSnapshot(str(repo), missing_blob, ahead=False) as snapshot,
        pytest.raises(GitError, match=f"could not read blob {BLOB.hex()}"),
    ):
        snapshot.diff_since(first, [], [], 512)
    with (
        GitSnapshot(str(repo), first, ahead=False) as snapshot,
        pytest.raises(GitError, match=f"could not read .*{'2' * 40}.*missing"),
    ):
        snapshot.diff_since("2" * 40, [], [], 512)


def test_a_tree_git_would_walk_unsorted_is_left_to_gits_commands(
    planted: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    repo, first = planted
    blob = bytes.fromhex(git(repo, "rev-parse", f"{first}:a"))
    unsorted = _commit_of(repo, _tree([(b"100644", b"b", blob), (b"100644", b"a", blob)]))
    caplog.set_level(logging.DEBUG, "stoker.git")
    with GitSnapshot(str(repo), unsorted, ahead=False) as snapshot:
        got = snapshot.diff_since(first, [], [], 512)
    assert got == _by_commands(str(repo), first, unsorted, [], [], [], 512)
    assert "is not sorted" in caplog.text


def test_a_tree_nested_deeper_than_pythons_stack_is_compared_without_recursion(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo.git"
    repo.mkdir()
    (first,) = _build(repo, [{"a": ("100644", b"1")}], sha256=False)
    tree = _tree([(b"100644", b"f", bytes.fromhex(git(repo, "rev-parse", f"{first}:a")))])
    for _ in range(3000):
        tree = _tree([(b"40000", b"d", bytes.fromhex(_hash(repo, "tree", tree)))])
    deep = _commit_of(repo, tree)
    with GitSnapshot(str(repo), deep, ahead=False) as snapshot:
        got = snapshot.diff_since(first, [], [], 10_000)
    assert got is not None
    assert len(got.changed) == 3000 + 1 + 1  # the trees, the file and "a" deleted
    assert got.entries["/".join(["d"] * 3000) + "/f"].size == 1


def test_tree_entries_sort_as_git_compares_them() -> None:
    # A file "a" sorts before "a-b", a folder "a" after "a.b" (it compares as "a/").
    oid = b"\1" * 20
    data = _tree([(b"100644", b"a", oid), (b"100644", b"a-b", oid), (b"40000", b"a", oid)])
    assert [(e[1], e[2]) for e in gittrees.parse_tree(data, 20, "t")] == [
        (b"a", gittrees.FILE),
        (b"a-b", gittrees.FILE),
        (b"a", gittrees.DIR),
    ]
    assert gittrees.parse_tree(_tree([(b"100664", b"a", oid)]), 20, "t")[0][2] == gittrees.FILE


def test_the_commands_fallback_lists_a_file_named_like_a_flag_as_a_path(
    make_repo: Callable[[dict[str, bytes | str]], Path],
) -> None:
    # ls-tree's flags and paths were told apart by a leading "-": a changed file named
    # "--name-only" went in as a flag, and the listing came back in another format.
    repo = make_repo({"--name-only": "1", "-r/a": "1", "b": "1"})
    first = git(repo, "rev-parse", "HEAD")
    commit_tree(repo, {"--name-only": "2", "-r/a": "2", "b": "1"}, "two")
    second = git(repo, "rev-parse", "HEAD")
    git_dir = str(repo / ".git")
    with GitSnapshot(git_dir, second, ahead=False) as snapshot:
        by_trees = snapshot.diff_since(first, ["-r"], [], 512)
        by_commands = snapshot._diff_by_commands(first, ["-r"], [], 512)
    assert by_commands == by_trees == _by_commands(git_dir, first, second, [], ["-r"], [], 512)
    assert by_trees is not None
    assert set(by_trees.changed) == {"--name-only", "-r", "-r/a"}
