"""The live walk of a full check, done by a child process while the desired tree is built
(LocalTree.prefetch): it gives what the walk here gives, or the walk here is done after all."""

from __future__ import annotations

import gc
import marshal
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.helpers import context, gs_with
from stoker_agent import localtree
from stoker_agent.localtree import _FLAGS, _WALKER, LocalTree
from stoker_core import desired, planning, profiles
from stoker_core.globs import GlobSet
from stoker_core.manifest import Manifest
from stoker_core.trees import Kind, LiveEntry, MemorySnapshot

NEVER = ["**/.resources/**", ".stoker/**"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for rel in ["p/a/x.json", "p/a/b/y.json", "p/é n/z", "p/.resources/c", ".stoker/m", "q/f"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "p/empty").mkdir()
    (root / "p/exe").write_text("#!")
    (root / "p/exe").chmod(0o755)
    os.symlink("/etc", root / "p/to-dir")  # reported, never entered
    os.symlink("a/x.json", root / "p/to-file")
    os.mkfifo(root / "p/fifo")
    return root


def walk(
    tree: LocalTree, top: str, prune: Callable[[str], bool]
) -> tuple[list[LiveEntry], list[str]]:
    asked: list[str] = []

    def recorded(path: str) -> bool:
        asked.append(path)
        return prune(path)

    return list(tree.walk(top, recorded)), asked


def test_the_childs_walk_gives_what_the_walk_here_gives_and_asks_the_same_folders(
    data: Path,
) -> None:
    prune = GlobSet(NEVER).matches
    for top in ["", "p", "q", "missing"]:
        ahead = LocalTree(str(data))
        ahead.prefetch([top], NEVER)
        assert walk(ahead, top, prune) == walk(LocalTree(str(data)), top, prune), top


def test_a_folder_the_child_left_out_but_the_walk_enters_is_walked_here(data: Path) -> None:
    prune = GlobSet([".stoker/**"]).matches  # enters p/.resources
    ahead = LocalTree(str(data))
    ahead.prefetch([""], NEVER)
    entries, asked = walk(ahead, "", prune)
    assert (entries, asked) == walk(LocalTree(str(data)), "", prune)
    assert "p/.resources/c" in [e.path for e in entries]


def test_what_the_child_found_below_a_folder_the_walk_leaves_out_is_dropped(data: Path) -> None:
    prune = GlobSet([*NEVER, "p/a/**"]).matches
    ahead = LocalTree(str(data))
    ahead.prefetch(["p"], NEVER)  # enters p/a and p/a/b
    entries, asked = walk(ahead, "p", prune)
    assert (entries, asked) == walk(LocalTree(str(data)), "p", prune)
    assert "p/a" in asked
    assert "p/a/b" not in asked
    assert not [e for e in entries if e.path.startswith("p/a/")]


def test_a_child_that_fails_leaves_the_walk_to_this_process(data: Path) -> None:
    prune = GlobSet(NEVER).matches
    ahead = LocalTree(str(data))
    ahead.prefetch([""], ["[unclosed"])  # the child cannot read its patterns
    assert walk(ahead, "", prune) == walk(LocalTree(str(data)), "", prune)


def test_the_walk_here_is_not_repeated_once_the_child_walked(data: Path) -> None:
    ahead = LocalTree(str(data))
    ahead.prefetch(["q"], NEVER)
    assert ahead._child is not None
    ahead._child.wait()  # it has listed q
    (data / "q/g").write_text("after")
    assert [e.path for e in ahead.walk("q", GlobSet(NEVER).matches)] == ["q/f"]
    assert [e.path for e in ahead.walk("q", GlobSet(NEVER).matches)] == ["q/f", "q/g"]


def test_a_walk_never_taken_leaves_no_process_behind(data: Path) -> None:
    ahead = LocalTree(str(data))
    ahead.prefetch([""], NEVER)
    child = ahead._child
    assert child is not None
    del ahead
    gc.collect()
    assert child.returncode is not None


def test_a_child_that_would_decode_names_otherwise_refuses_to_walk(data: Path) -> None:
    # Its names must be the very strings this process would read (else every file would look
    # stray); it is told this process's encoding and stops when its own differs.
    code = _WALKER.format(paths=[str(Path(localtree.__file__).parents[1])])
    ours = [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()]
    for encoding, status in [(ours, 0), ([ours[0], "strict"], 3)]:
        done = subprocess.run(
            [sys.executable, *_FLAGS, "-c", code],
            input=marshal.dumps((str(data), ["q"], NEVER, encoding)),
            capture_output=True,
            check=False,
        )
        assert done.returncode == status, done.stderr


def test_the_child_never_walks_a_folder_reached_through_a_link(data: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    os.symlink(outside, data / "p/out")
    ahead = LocalTree(str(data))
    ahead.prefetch(["p/out", "p/out/deeper", "q"], NEVER)
    prune = GlobSet(NEVER).matches
    assert walk(ahead, "q", prune) == walk(LocalTree(str(data)), "q", prune)
    # Planning refuses a link on the way to a root before walking it; the child leaves it to
    # this process, so a walk, if asked, is the one it always was.
    assert ahead._ahead == {"p/out": None, "p/out/deeper": None}


def _walked_here(
    tree: LocalTree, top: str, never: GlobSet
) -> tuple[dict[str, LiveEntry], set[str], set[str]]:
    pruned: set[str] = set()

    def prune(path: str) -> bool:
        if never.matches(path):
            pruned.add(path)
            return True
        return False

    entries = list(tree.walk(top, prune))
    files = {e.path: e for e in entries if e.kind is not Kind.DIR}
    return files, {e.path for e in entries if e.kind is Kind.DIR}, pruned


def test_the_childs_walk_taken_whole_is_what_the_walk_here_gives(data: Path) -> None:
    never = GlobSet(NEVER)
    for top in ["", "p", "q"]:
        ahead = LocalTree(str(data))
        ahead.prefetch([top], NEVER)
        walked = ahead.walked_ahead(top, never)
        assert walked is not None, top
        files, dirs, pruned = _walked_here(LocalTree(str(data)), top, never)
        assert walked.files == files, top
        assert list(map(type, walked.files.values())) == [LiveEntry] * len(files)
        assert (set(walked.dirs), set(walked.pruned)) == (dirs, pruned), top
        assert len(walked.dirs) == len(dirs)
    assert ahead.walked_ahead("q", never) is None  # taken once


def test_the_childs_walk_is_taken_whole_only_for_the_folders_it_never_entered(data: Path) -> None:
    ahead = LocalTree(str(data))
    ahead.prefetch(["", "missing"], NEVER)
    assert ahead.walked_ahead("", GlobSet([".stoker/**"])) is None  # it would enter p/.resources
    assert ahead.walked_ahead("p", GlobSet(NEVER)) is None  # not a folder it walked
    assert ahead.walked_ahead("missing", GlobSet(NEVER)) is None  # not a folder at all
    # walk() still takes the child's walk, as it always did.
    prune = GlobSet([".stoker/**"]).matches
    assert walk(ahead, "", prune) == walk(LocalTree(str(data)), "", prune)


def test_a_full_checks_walk_done_by_the_child_is_planned_taken_whole(data: Path) -> None:
    effective = profiles.resolve(
        gs_with([{"source": "src", "destination": "p"}], excludePatterns=["**/b/**"]).spec.sync,
        None,
    )
    snap = MemorySnapshot(files={"src/a/x.json": b"new", "src/exe": b"#!", "src/n": b"n"})
    tree = desired.build(effective, snap, context())

    class Counting(LocalTree):
        handed = 0

        def walk(self, path: str, prune: Callable[[str], bool]) -> Iterator[LiveEntry]:
            for entry in super().walk(path, prune):
                self.handed += 1
                yield entry

    ahead = Counting(str(data))
    ahead.prefetch(
        desired.outer_destinations(effective, context()), desired.never_patterns(effective)
    )
    here = Counting(str(data))
    assert planning.plan(tree, ahead, Manifest()) == planning.plan(tree, here, Manifest())
    assert here.handed > 10
    assert ahead.handed == 0


def test_lstat_many_stats_each_path_through_real_folders_only(data: Path, tmp_path: Path) -> None:
    tree = LocalTree(str(data))
    # A folder moved out and a link left in its place: what is below it is not stat'd through
    # the link (it would stat the same as before), nor through a file or a FIFO.
    (data / "p/a/b").rename(tmp_path / "moved")
    os.symlink(tmp_path / "moved", data / "p/a/b")
    asked = ["q/f", "p/a/b/y.json", "p/exe", "p/to-dir/passwd", "p/a/x.json/no", "p/fifo/no"]
    asked += ["p/é n/z", "absent/x", "p/a", "p/a/b"]
    found = tree.lstat_many(asked)
    expected = {path: tree.lstat(path) for path in ["q/f", "p/exe", "p/é n/z", "p/a", "p/a/b"]}
    assert found == [expected.get(path) for path in asked]
    assert found[asked.index("p/a/b")] is not None  # the link itself, by name
    assert found[asked.index("p/a/b")].kind is Kind.SYMLINK  # type: ignore[union-attr]


def test_lstat_many_keeps_no_more_folders_open_than_a_path_is_deep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    paths = [f"f{i:03}/g/h/x.json" for i in range(300)]
    for path in paths:
        (root / path).parent.mkdir(parents=True)
        (root / path).write_text("{}")
    opened: list[int] = []
    real_open = os.open

    def counting_open(*args: object, **kwargs: object) -> int:
        fd = real_open(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(fd)
        return fd

    before = len(os.listdir("/proc/self/fd"))
    with monkeypatch.context() as patched:
        patched.setattr(os, "open", counting_open)
        found = LocalTree(str(root)).lstat_many(list(reversed(paths)))
    assert all(entry is not None and entry.kind is Kind.FILE for entry in found)
    assert len(opened) == 1 + 300 * 3  # the root, then each folder once
    assert len(set(opened)) <= 4  # closed as it goes: at most the root and a path's depth
    assert len(os.listdir("/proc/self/fd")) == before


def test_lstat_many_leaves_a_path_deeper_than_its_bound_to_be_seen_for_real(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    deep = "/".join(["d"] * 100) + "/x.json"  # a planted manifest may name one
    (root / deep).parent.mkdir(parents=True)
    (root / deep).write_text("{}")
    (root / "d/y.json").write_text("{}")
    before = len(os.listdir("/proc/self/fd"))
    found = LocalTree(str(root)).lstat_many([deep, "d/y.json"])
    assert found[0] is None  # not stat'd: its folders are listed for real instead
    assert found[1] is not None
    assert found[1].kind is Kind.FILE
    assert len(os.listdir("/proc/self/fd")) == before
