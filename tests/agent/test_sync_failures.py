"""`stoker sync` when the machine or a crash gets in the way: the status tells the truth, the
staging is cleaned, the path is named, and a scan owed by an interrupted sync is still made."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import commit_tree, git
from support.gateway_data import files_of
from support.ignition_sim import GatewaySimulator
from support.stokercli import (
    killed_sync_args,
    run_command,
    run_module,
    run_stoker,
    sync_args,
    sync_command,
)

CR = """\
apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata:
  name: site
spec:
  git:
    repo: https://git.example/plant.git
    ref: main
  gateway:
    api:
      secretName: ignition-api-key
  sync:
    profiles:
      default:
        mappings:
          - source: p
            destination: projects
"""
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount, chattr)")


def status_of(data: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((data / ".stoker/status.json").read_text())
    return result


@contextlib.contextmanager
def small_volume(path: Path, **options: str) -> Iterator[Path]:
    """A tmpfs of its own (size, nr_inodes), unmounted afterwards."""
    path.mkdir()
    opts = ",".join(f"{k}={v}" for k, v in options.items())
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def plain_sync(repo: Path, data: Path, cr: Path) -> list[str]:
    """`stoker sync` arguments for `data`, without a gateway."""
    return [
        "stoker_agent.cli",
        *sync_command(cr, repo, data, "--gateway-name", "gw", "--output", "json"),
    ]


def add_crafted(repo: Path, folder: str, name: str) -> None:
    """Commit, on top of HEAD, a file `name` in a new `folder` (one level below a top folder)
    straight into git's objects: names no file system holds can only be made this way."""

    def run(*args: str, text: str = "") -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, input=text, capture_output=True, text=True, check=True
        ).stdout.strip()

    top, sub = folder.split("/")
    blob = run("hash-object", "-w", "--stdin", text="3")
    inner = run("mktree", text=f"100644 blob {blob}\t{name}\n")
    listing = run("ls-tree", f"HEAD:{top}") + f"\n040000 tree {inner}\t{sub}\n"
    outer = run("mktree", text=listing.lstrip("\n"))
    root = run("mktree", text=f"040000 tree {outer}\t{top}\n")
    commit = git(repo, "commit-tree", root, "-p", "HEAD", "-m", "a name too long")
    git(repo, "update-ref", "HEAD", commit)


@pytest.fixture
def cr(tmp_path: Path) -> Path:
    path = tmp_path / "cr.yaml"
    path.write_text(CR)
    return path


# -- H4 -----------------------------------------------------------------------------------------


def test_H4_a_sync_killed_after_its_commit_still_has_the_gateway_scan_on_the_next_run(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    args = killed_sync_args(example_repo, data, sim, token)
    killed = run_module("support.killedsync", json.dumps(args))
    assert killed.returncode == -9, killed.stderr
    assert (data / ".stoker/txn/journal.json").exists()  # the commit ran; it did not finish
    assert [s for s in sim.scans if s.trigger != "boot"] == []
    rerun = run_stoker(*sync_args(example_repo, data, sim, token, "--output", "json"))
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["added"] == []  # rolled forward: nothing left to change ...
    assert report["result"] == "Synced"  # ... and still the scan the killed sync owed
    assert [s.kind for s in sim.scans if s.trigger != "boot"] == ["projects", "config"]
    assert {"blue", "global"} <= set(sim.loaded_projects())
    assert not (data / ".stoker/scan-pending.json").exists()
    assert status_of(data)["result"] == "Synced"


# -- H7 -----------------------------------------------------------------------------------------


@needs_root
def test_H7_a_full_disk_leaves_an_honest_status_no_staged_files_and_names_the_path(
    make_repo: Any, cr: Path, tmp_path: Path
) -> None:
    repo = make_repo({"p/a.json": "{}"})
    with small_volume(tmp_path / "vol", size="1m") as vol:
        data = vol / "data"
        data.mkdir()
        first = run_module(*plain_sync(repo, data, cr))
        assert first.returncode == 0, first.stderr
        assert status_of(data)["result"] == "Synced"
        before = files_of(data)
        commit_tree(repo, {"p/a.json": "{}", "p/big.bin": os.urandom(2 << 20)}, "too big")
        free = os.statvfs(data).f_bavail
        failed = run_module(*plain_sync(repo, data, cr))
        assert failed.returncode == 1
        assert "Traceback" not in failed.stderr
        error = json.loads(failed.stdout)["error"]
        assert error.startswith("projects/big.bin: No space left on device"), error
        status = status_of(data)
        assert (status["result"], status["error"]) == ("Error", error)
        assert not (data / ".stoker/txn").exists()
        assert os.statvfs(data).f_bavail >= free - 2  # the space is back (a status block)
        assert files_of(data) == before


@needs_root
def test_H7_a_sub_folder_that_refuses_writes_leaves_an_honest_status_and_names_the_path(
    make_repo: Any, cr: Path, tmp_path: Path
) -> None:
    repo = make_repo({"p/a.json": "1", "p/locked/b.json": "1"})
    data = tmp_path / "data"
    data.mkdir()
    assert run_module(*plain_sync(repo, data, cr)).returncode == 0
    before = files_of(data)
    commit_tree(repo, {"p/a.json": "2", "p/locked/b.json": "2"}, "both change")
    locked = data / "projects/locked"
    subprocess.run(["chattr", "+i", str(locked)], check=True)  # EPERM, even for root
    try:
        failed = run_module(*plain_sync(repo, data, cr))
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert failed.returncode == 1
    error = json.loads(failed.stdout)["error"]
    assert error.startswith("projects/locked/b.json: Operation not permitted"), error
    assert "rolled back to the previous commit" in error
    status = status_of(data)
    assert (status["result"], status["error"]) == ("Error", error)
    assert files_of(data) == before  # a.json, changed first, is old again
    assert not (data / ".stoker/txn").exists()


def test_H7_a_name_the_file_system_refuses_leaves_an_honest_status_and_names_the_file(
    make_repo: Any, cr: Path, tmp_path: Path
) -> None:
    files: dict[str, bytes | str] = {f"p/f{i:02}.json": "1" for i in range(20)}
    repo = make_repo(files)
    data = tmp_path / "data"
    data.mkdir()
    assert run_module(*plain_sync(repo, data, cr)).returncode == 0
    before = files_of(data)
    commit_tree(repo, dict.fromkeys(files, "2"), "ordinary changes")
    add_crafted(repo, "p/m", "n" * 300 + ".json")  # no file system lets git check it out
    failed = run_module(*plain_sync(repo, data, cr))
    assert failed.returncode == 1
    error = json.loads(failed.stdout)["error"]
    assert error.startswith("projects/m/nnnn"), error
    assert "305 bytes" in error
    assert "NAME_MAX" in error
    status = status_of(data)
    assert (status["result"], status["error"]) == ("Error", error)
    assert files_of(data) == before
    assert git(repo, "rev-parse", "HEAD") == status["commit"]


NOBODY = 65534


def as_nobody(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """`python -m ARGS` as an unprivileged user (root ignores permission bits)."""
    ids = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    command = ["setpriv", *ids, sys.executable, "-m", *args]
    return run_command(command, env={"TMPDIR": str(tmp), "HOME": str(tmp)})


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_H7_permission_denied_in_a_sub_folder_leaves_an_honest_status_and_names_the_path(
    make_repo: Any,
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="stoker-h7-", dir="/tmp"))  # another user reaches it
    try:
        shared.chmod(0o755)
        repo = make_repo({"p/a.json": "1", "p/locked/b.json": "1"})
        old = git(repo, "rev-parse", "HEAD")
        new = commit_tree(repo, {"p/a.json": "2", "p/locked/b.json": "2"}, "both change")
        shutil.copytree(repo, shared / "repo")
        (shared / "cr.yaml").write_text(CR)
        data, tmp = shared / "data", shared / "tmp"
        data.mkdir()
        tmp.mkdir()
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(shared)], check=True)
        args = plain_sync(shared / "repo", data, shared / "cr.yaml")
        probe = as_nobody("stoker_agent.cli", "--help", tmp=tmp)
        if probe.returncode != 0:
            pytest.skip(f"stoker does not run as user {NOBODY} here: {probe.stderr[-200:]}")
        first = as_nobody(*args, "--ref", old, tmp=tmp)
        assert first.returncode == 0, first.stderr
        before = files_of(data)
        os.chown(data / "projects/locked", 0, 0)  # the gateway's folder, not the sync user's
        failed = as_nobody(*args, "--ref", new, tmp=tmp)
        assert failed.returncode == 1, failed.stderr
        error = json.loads(failed.stdout)["error"]
        assert error.startswith("projects/locked/b.json: Permission denied"), error
        assert "rolled back to the previous commit" in error
        status = status_of(data)
        assert (status["result"], status["error"]) == ("Error", error)
        assert files_of(data) == before
        assert not (data / ".stoker/txn").exists()
    finally:
        shutil.rmtree(shared)
