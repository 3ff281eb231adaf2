"""Reading a commit through the git CLI: what the snapshot lists and reads, what it refuses, and
that it leaves no git process behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import commit_tree, git
from stoker_agent import gitrepo
from stoker_agent.gitrepo import GitError, Repository
from stoker_core.errors import InvalidInput
from stoker_core.trees import EXECUTABLE, REGULAR, Kind


def children() -> set[int]:
    """Live child processes of this process (every thread's), zombies included."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with open(task / "children", encoding="ascii") as handle:
            found.update(int(pid) for pid in handle.read().split())
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def test_a_commit_lists_every_kind_with_the_mode_and_size_git_gives(repo: Path) -> None:
    commit_tree(repo, {"p/a.json": "{}\n", "p/deep/run.sh": "#!/bin/sh\n", "p/ünï code.txt": "x"})
    (repo / "p/deep/run.sh").chmod(0o755)
    os.symlink("a.json", repo / "p/link")
    git(repo, "add", "-A")
    # A submodule as git records it: a gitlink entry, whose ls-tree size column is "-".
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},p/sub")
    git(repo, "commit", "-q", "-m", "kinds")
    commit = git(repo, "rev-parse", "HEAD")
    with Repository(str(repo)) as opened:
        assert opened.resolve("main") == commit
        snapshot = opened.snapshot(commit)
        entries = {e.path: e for e in snapshot.walk("p")}
        assert entries["p/deep"].kind is Kind.DIR
        assert entries["p/a.json"].blob == git(repo, "hash-object", "p/a.json")
        assert (entries["p/a.json"].size, entries["p/a.json"].mode) == (3, REGULAR)
        assert entries["p/deep/run.sh"].mode == EXECUTABLE
        assert entries["p/ünï code.txt"].kind is Kind.FILE
        assert entries["p/link"].kind is Kind.SYMLINK
        assert entries["p/sub"].kind is Kind.SUBMODULE
        assert snapshot.read(entries["p/deep/run.sh"]) == b"#!/bin/sh\n"
        assert snapshot.read(entries["p/a.json"]) == b"{}\n"


def test_walking_a_folder_gives_exactly_what_lies_below_it_in_path_order(repo: Path) -> None:
    # Names that sort between "a/" and what follows it ("a-b", "a.b" before; "a0" after).
    names = ["a", "a-b", "a.b", "a0", "b", "a/x", "a/y/z", "a/y0", "a0/w", "b/a/c", "ü/x"]
    commit = commit_tree(repo, {n + "/f" if n in ("a", "a0", "b") else n: "x" for n in names})
    with Repository(str(repo)) as opened:
        snapshot = opened.snapshot(commit)
        every = [e.path for e in snapshot.walk("")]
        assert every == sorted(every)
        assert "" not in every
        for folder in ("a", "a/y", "a0", "b", "b/a", "ü"):
            below = [p for p in every if p.startswith(folder + "/")]
            assert [e.path for e in snapshot.walk(folder)] == below, folder
        assert list(snapshot.walk("a/x")) == []  # a file holds nothing


def test_a_bare_clone_opens_like_its_origin(repo: Path, tmp_path: Path) -> None:
    commit = commit_tree(repo, {"p/a.json": "{}"})
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    with Repository(str(bare)) as opened:
        assert opened.resolve("main") == commit
        assert opened.snapshot(commit).entry("p/a.json") is not None


def test_a_folder_that_is_not_a_repository_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a Git repository") as caught:
        Repository(str(tmp_path))
    assert str(tmp_path) in str(caught.value)


def test_a_folder_inside_a_clone_is_not_taken_for_the_clone(repo: Path) -> None:
    commit_tree(repo, {"p/a.json": "{}"})
    with pytest.raises(InvalidInput, match="is not a Git repository"):
        Repository(str(repo / "p"))


def test_a_missing_path_or_a_file_is_refused_by_name(repo: Path) -> None:
    commit_tree(repo, {"p/a.json": "{}"})
    for location in (repo / "nowhere", repo / "p/a.json"):
        with pytest.raises(InvalidInput, match="is not a Git repository"):
            Repository(str(location))


def test_an_unknown_ref_names_the_ref(repo: Path) -> None:
    commit_tree(repo, {"p/a.json": "{}"})
    with Repository(str(repo)) as opened, pytest.raises(InvalidInput, match='ref "nope"'):
        opened.resolve("nope")


def test_a_ref_resolves_as_rev_parse_verify_resolves_it(repo: Path) -> None:
    # Resolved through the snapshot's object reader now, by the rules rev-parse had: the name
    # itself, then as a tag, a branch, a remote's branch; a tag peeled to its commit.
    first = commit_tree(repo, {"p/a.json": "{}"}, "one")
    git(repo, "tag", "-a", "-m", "annotated", "v1")
    git(repo, "tag", "light", first)
    commit_tree(repo, {"p/a.json": "[]"}, "two")
    git(repo, "branch", "side", first)
    git(repo, "update-ref", "refs/remotes/origin/gone", first)
    names = ["main", "HEAD", "v1", "light", "side", "refs/heads/side", "gone", first, first[:12]]
    names += ["HEAD~1", "nope", "main\nHEAD", "main HEAD", "-x", "v1^{tree}"]
    with Repository(str(repo)) as opened:
        for name in names:
            expected = None
            for candidate in (name, f"refs/tags/{name}", f"refs/heads/{name}", f"origin/{name}"):
                done = subprocess.run(
                    ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                     f"{candidate}^{{commit}}"],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if done.returncode == 0 and "\n" not in name:
                    expected = done.stdout.strip()
                    break
            if expected is None:
                with pytest.raises(InvalidInput, match="not found"):
                    opened.resolve(name)
            else:
                assert opened.resolve(name) == expected, name


def test_a_commit_the_repository_lacks_is_a_git_error(repo: Path) -> None:
    commit_tree(repo, {"p/a.json": "{}"})
    with Repository(str(repo)) as opened, pytest.raises(GitError, match="ls-tree failed"):
        opened.snapshot("0" * 40).entry("p")


def test_blobs_read_ahead_are_read_in_batches_and_given_without_asking_git_again(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"c/{i:03}.json": f'{{"n": {i}}}' + " " * (i % 7) for i in range(120)}
    files["c/big.bin"] = "b" * 5000
    commit = commit_tree(repo, {**files, "c/same.json": files["c/000.json"]})
    monkeypatch.setattr(gitrepo, "READ_AHEAD_BLOB", 4000)  # big.bin is read when asked
    with Repository(str(repo)) as opened:
        snapshot = opened.snapshot(commit)
        entries = [e for e in snapshot.walk("c") if e.kind is Kind.FILE]
        snapshot.read_ahead(entries)  # 121 distinct blobs: three batches of at most 48
        held = snapshot._reader
        assert held is not None
        held.close()  # what was read ahead needs no git from here on
        for entry in entries:
            if entry.path not in ("c/big.bin", "c/same.json"):  # same.json: 000's blob, taken
                assert snapshot.read(entry) == files[entry.path].encode(), entry.path
        with pytest.raises(GitError, match="closed"):
            snapshot.read(snapshot.entry("c/big.bin"))  # type: ignore[arg-type]


def test_a_blob_git_lacks_among_those_read_ahead_is_refused_when_read(repo: Path) -> None:
    commit = commit_tree(repo, {"c/a.json": "{}", "c/b.json": "[]"})
    with Repository(str(repo)) as opened:
        snapshot = opened.snapshot(commit)
        a, b = (snapshot.entry(p) for p in ("c/a.json", "c/b.json"))
        assert a is not None
        assert b is not None
        lacking = a._replace(path="c/x.json", blob="1" * 40)
        snapshot.read_ahead([a, lacking, b])  # a hint: says nothing of what it could not read
        assert snapshot.read(b) == b"[]"
        assert snapshot.read(a) == b"{}"
        with pytest.raises(GitError, match="1" * 40):
            snapshot.read(lacking)


def test_closing_the_repository_stops_every_git_process_it_started(repo: Path) -> None:
    commit = commit_tree(repo, {"p/a.json": "{}", "p/b.json": "[]"})
    before = children()
    with Repository(str(repo)) as opened:
        read = opened.snapshot(commit)  # listed, then read: an ls-tree and a cat-file
        assert read.read(read.entry("p/a.json")) == b"{}"  # type: ignore[arg-type]
        opened.snapshot(commit)  # never used: its ls-tree still runs until closed
        assert children() - before
    assert children() - before == set()
