"""`stoker sync` on a read-only root filesystem, as the injected sidecar runs it.

The sidecar has `readOnlyRootFilesystem: true` with writable `/tmp` and the data volume only.
The test builds a stricter world in a private mount namespace: `/` (so `/tmp` too) remounted
read-only, only the data directory and a scratch temporary directory (`TMPDIR`) left writable;
the repository comes from a real `git daemon` and the gateway simulator scans what was written.
(The scratch directory is not bound on `/tmp` itself: the project, with its Python, may live
under `/tmp`.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import EXAMPLES, commit_tree, git
from support.gitservers import GitDaemon
from support.ignition_sim import running
from support.ignition_sim_resources import write_api_token

MULTI = EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml"

# Run as: sh -c SCRIPT sh WORK ARGS...; fails before syncing if the root is still writable.
READ_ONLY_ROOT = """
set -e
work=$1; shift
mount --make-rprivate /
mount --bind "$work/data" "$work/data"
if [ -n "$STOKER_TEST_TMP" ]; then
  mount --bind "$work/tmp" "$work/tmp"
  export TMPDIR="$work/tmp"
fi
mount -o remount,bind,ro /
mount -o remount,bind,ro /tmp 2>/dev/null || true  # when /tmp is a file system of its own
for probe in /.stoker-ro-probe /tmp/.stoker-ro-probe; do
  if touch "$probe" 2>/dev/null; then echo "$probe is writable" >&2; exit 99; fi
done
exec "$@"
"""


@pytest.fixture
def work() -> Iterator[Path]:
    # Under /var/tmp, not pytest's tmp_path: all of it but the two writable folders is read-only.
    path = Path(tempfile.mkdtemp(prefix="stoker-ro-", dir="/var/tmp"))
    try:
        (path / "data").mkdir()
        (path / "tmp").mkdir(mode=0o1777)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sync_on_read_only_root(
    work: Path, url: str, sim_url: str, *, writable_tmp: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "stoker_agent.cli",
        "sync",
        "--cr",
        str(work / "cr.yaml"),
        "--repo",
        url,
        "--ref",
        "main",
        "--data-dir",
        str(work / "data"),
        "--gateway-name",
        "ignition-blue",
        "--profile",
        "blue",
        "--gateway-url",
        sim_url,
        "--api-token-file",
        str(work / "api-token"),
        "--output",
        "json",
    ]
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", READ_ONLY_ROOT, "sh", str(work), *command],
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_COLOR": "1",
            "STOKER_TEST_TMP": "1" if writable_tmp else "",
        },
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")
def test_sync_runs_with_a_read_only_root_filesystem(
    work: Path, example_repo: Path, git_root: Path
) -> None:
    shutil.copy(MULTI, work / "cr.yaml")
    bare = git_root / "config.git"
    git(example_repo, "clone", "-q", "--bare", str(example_repo), str(bare))
    data = work / "data"
    (work / "api-token").write_text(write_api_token(data, collection="local") + "\n")
    with GitDaemon(git_root) as daemon, running(data) as sim:
        url = daemon.url_for("config")
        first = sync_on_read_only_root(work, url, sim.url)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["result"] == "Synced"
        assert "blue" in sim.loaded_projects()

        view = "services/ignition-blue/projects/blue/com.inductiveautomation.perspective/views"
        commit_tree(example_repo, {f"{view}/Home/view.json": '{"root": {"note": "v2"}}'})
        git(example_repo, "push", "-q", str(bare), "main")
        second = sync_on_read_only_root(work, url, sim.url)
        assert second.returncode == 0, second.stderr
        report = json.loads(second.stdout)
        assert report["modified"] == [
            "projects/blue/com.inductiveautomation.perspective/views/Home/view.json"
        ]
    assert not Path("/.stoker-ro-probe").exists()
    # Everything it wrote outside the data directory went to TMPDIR, and was cleaned up.
    assert not list((work / "tmp").iterdir()), "temporary files were left behind"


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")
def test_without_a_writable_tmp_the_error_says_so_without_a_traceback(
    work: Path, example_repo: Path, git_root: Path
) -> None:
    shutil.copy(MULTI, work / "cr.yaml")
    git(example_repo, "clone", "-q", "--bare", str(example_repo), str(git_root / "config.git"))
    data = work / "data"
    (work / "api-token").write_text(write_api_token(data, collection="local") + "\n")
    with GitDaemon(git_root) as daemon, running(data) as sim:
        done = sync_on_read_only_root(work, daemon.url_for("config"), sim.url, writable_tmp=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "error: " in done.stderr
    assert "writable /tmp" in done.stderr
    assert not (data / "projects" / "blue").exists(), "nothing may be synced"
