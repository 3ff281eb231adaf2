"""The real-pod suite (tests/e2e) stays out of `make test` and fails loudly without a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT


def test_make_test_does_not_collect_the_real_pod_suite() -> None:
    pytest_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    assert pytest_config["ini_options"]["testpaths"] == ["tests"]
    assert "e2e" in pytest_config["ini_options"]["norecursedirs"]


def test_the_real_pod_suite_fails_and_never_skips_when_no_cluster_is_up(tmp_path: Path) -> None:
    env = {**os.environ, "STOKER_CLUSTER_STATE": str(tmp_path / "no-cluster")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 1, done.stdout
    assert "failed" in summary or "error" in summary, summary
    assert "skipped" not in summary, summary
    assert "passed" not in summary, summary
    assert "no test cluster" in done.stdout
    assert "make e2e" in done.stdout
