"""The benchmarks' own code stays tested: each runs in its quick mode at small scale, writing its
results into a temporary directory, and the report generator renders them (numbers not gated:
these tests check that the report was written with the expected rows, never timings)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT

# benchmark script -> (result name, table cells that must appear, goal labels)
QUICK = {
    "run.py": ("planning", ["unchanged (read the commit, render, walk, compare)"],
               ["unchanged plan / bare walk"]),
    "apply_bench.py": ("apply", ["`stoker sync`", "`rsync -a --delete --fsync`",
                                 "one-file change, full check due", "no-change re-sync",
                                 "in a running agent", "planned from the commit's changes",
                                 "desired tree from `git diff-tree`"],
                       ["full apply / `rsync --fsync`", "full apply / plain rsync",
                        "one-file change, check not due / plain rsync",
                        "one-file change, check due / plain rsync",
                        "one-file change, check due, running agent / plain rsync",
                        "no-change re-sync / plain rsync"]),
    "soak.py": ("soak", [], ["states neither old nor new commit"]),
    "admission_bench.py": ("admission", ["webhook", "trivial"], ["p99 webhook / trivial app"]),
}  # fmt: skip
KUBE_QUICK = {
    "receiver_bench.py": [
        (
            "receiver",
            ["bad signature", "unknown GatewaySync", "push, tracked branch"],
            ["p99 receiver / trivial app (all kinds)", "receiver errors"],
        )
    ],
    "abuse_bench.py": [
        (
            "abuse",
            ["slow clients", "forged", "signed"],
            [
                "webhook: p99 with slow clients / alone",
                "receiver: p99 with slow clients / alone",
                "flood: signed deliveries answered 429",
                "flood: 5xx or no answer",
            ],
        )
    ],
    "latency_bench.py": [
        (
            "latency",
            ['["receiver", 1, 2', '["receiver", 2, 4', '["polling", 2, 4', "taken in turns"],
            [
                "polling: p95 at 2 / p95 at 1 gateway(s)",
                "receiver: agent CPU seconds per sync per gateway at 2",
                "receiver: p95 at 2 / its CPU floor",
                "receiver: p95 at 1 gateway",
            ],
        ),
        ("agent", ["RSS (MiB)", "CPU (% of one core)"], ["agent idle RSS (largest of the fleet)"]),
    ],
    "rollout_bench.py": [
        (
            "rollout",
            ["last gateway done", '["test", 1, 1, 1', '["line-2", 2, 1, 2'],
            ["push to the last gateway / floor (8 s), worst round"],
        )
    ],
    "controller_bench.py": [
        (
            "controller",
            ["first pass", "steady state", "repo0", "repo1", "peak RSS (MiB)"],
            [
                "polls (ls-remote) per polling interval per repository and credentials",
                "API requests per minute beyond watches, Lease renewals and events",
                "controller peak RSS at 20 pods, 4 gateways",
            ],
        )
    ],
}


# The environment of a quick run beyond the tests' own: the fleet benchmark compares this code
# with a baseline in rounds taken in turns; here this checkout's `src` plays the baseline.
QUICK_ENV = {"latency_bench.py": {"STOKER_BENCH_BASELINE": str(ROOT / "src")}}


def run_quick(script: str, out: Path) -> dict[str, Any]:
    # A session of its own: on a time-out, the bench and every server it started (API server,
    # etcd, controller, agents) are stopped together, not left running after the test.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / script), "--quick", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **QUICK_ENV.get(script, {})},
    )
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        raise
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def _stop_group(proc: subprocess.Popen[str]) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.communicate(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def check(result: dict[str, Any], cells: list[str], goals: list[str]) -> None:
    assert result["quick"] is True
    assert result["machine"]["cores"]
    text = json.dumps(result["tables"])
    for cell in cells:
        assert cell in text, f"{cell!r} not in the tables of {result['name']}"
    assert [g["label"] for g in result["goals"] if g["label"] in goals] == goals
    for goal in result["goals"]:
        assert goal["verdict"] == "met" or goal["verdict"].startswith("**missed**")


@pytest.mark.parametrize("script", sorted(QUICK))
def test_quick_mode_writes_its_result(script: str, tmp_path: Path) -> None:
    name, cells, goals = QUICK[script]
    results = run_quick(script, tmp_path)
    check(results[name], cells, goals)
    assert (tmp_path / f"{name}.md").read_text().startswith("## ")


@pytest.mark.kube
@pytest.mark.parametrize("script", sorted(KUBE_QUICK))
def test_quick_mode_on_the_real_api_server_writes_its_result(script: str, tmp_path: Path) -> None:
    results = run_quick(script, tmp_path)
    for name, cells, goals in KUBE_QUICK[script]:
        check(results[name], cells, goals)


def test_the_report_renders_tables_and_charts(tmp_path: Path) -> None:
    out, docs = tmp_path / "out", tmp_path / "docs"
    run_quick("admission_bench.py", out)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/report.py"), str(out), "--docs", str(docs)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    page = (docs / "benchmarks.md").read_text()
    assert "## Summary of goals" in page
    assert "| Admission webhook latency | p99 webhook / trivial app |" in page
    assert "![" in page
    assert "(benchmarks/admission.png)" in page
    assert (docs / "benchmarks/admission.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "First measured on" in page  # the hand-written notes are kept
