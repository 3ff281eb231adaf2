"""The live walk of a full check, done by a child process while the desired tree is built
(LocalTree.prefetch): it gives what the walk here gives, or the walk here is done after all."""

from __future__ import annotations

import gc
import marshal
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stoker_agent import localtree
from stoker_agent.localtree import _FLAGS, _WALKER, LocalTree
from stoker_core.globs import GlobSet
from stoker_core.trees import LiveEntry

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


def walk(tree: LocalTree, top: str, prune: Callable[[str], bool]) -> tuple[list[LiveEntry], list]:
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
