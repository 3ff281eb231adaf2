"""Shared fixtures: Git repositories built from files, and the bundled example repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Stoker Tests",
    "GIT_AUTHOR_EMAIL": "tests@stoker.invalid",
    "GIT_COMMITTER_NAME": "Stoker Tests",
    "GIT_COMMITTER_EMAIL": "tests@stoker.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its stdout."""
    env = {**os.environ, **GIT_ENV, "HOME": str(repo.parent)}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def commit_tree(repo: Path, files: dict[str, bytes | str], message: str = "change") -> str:
    """Make the work tree hold exactly `files`, commit, and return the commit id."""
    for child in repo.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    for rel, content in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[dict[str, bytes | str]], Path]:
    """Return a function creating a repository with one commit holding the given files."""

    def make(files: dict[str, bytes | str]) -> Path:
        repo = tmp_path / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        commit_tree(repo, files, "initial")
        return repo

    return make


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """A Git repository holding examples/config-repo in one commit."""
    repo = tmp_path / "config-repo"
    shutil.copytree(EXAMPLES / "config-repo", repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example")
    return repo


# Documented steps that need a real cluster (kind) and that no test runs; filled by
# tests/test_docs_commands.py and printed at the end of the run, so the gap stays visible.
NOT_RUN = pytest.StashKey[list[str]]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """List the documented steps the suite does not run."""
    lines = config.stash.get(NOT_RUN, [])
    if lines:
        terminalreporter.section(f"{len(lines)} documented steps not run (need a real cluster)")
        for line in lines:
            terminalreporter.write_line(line)
