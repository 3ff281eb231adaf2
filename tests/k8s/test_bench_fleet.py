"""The benchmarks' fleet harness (bench/fleet.py) on the real API server: a fleet start that
cannot finish says why at once and keeps the logs, instead of waiting out its deadline with
nothing left to read (the 50-agent start-up time-out of bench/notes/latency.md); a fleet given
a baseline's `src` runs that code's agents, and the agents' CPU goal is half of what that
baseline spent in rounds taken in turns with this code's in the same run
(bench/latency_bench.py, STOKER_BENCH_BASELINE)."""

from __future__ import annotations

import importlib
import os
import socket
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ROOT
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube


def bench_module(module: str) -> ModuleType:
    """A module of bench/, imported without leaving the benchmarks' module names behind: their
    `cluster` would shadow tests/cluster for the tests that follow (and the other way round)."""
    where = ROOT / "bench"
    names = [p.stem for p in where.glob("*.py")]
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(where))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


fleet = bench_module("fleet")
Fleet, FleetStalled = fleet.Fleet, fleet.FleetStalled


def test_a_fleet_whose_agent_exits_at_start_fails_at_once_naming_it_and_keeps_its_log(
    kube_env: ControlPlane,
    kube_core: object,
    kube_namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    fleet = Fleet(work, kube_env.subprocess_env(), kube_namespace, kube_core, "site")
    # A health port taken before the agent binds it (as a port picked in advance could be, by
    # any outgoing connection): the agent exits at start.
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            fleet.grow(1, extra_env=lambda i: {"HEALTH_PORT": str(port)})
            started = time.monotonic()
            with pytest.raises(FleetStalled, match="an agent exited"):
                fleet.settled("0" * 40, 300, plane=kube_env, out=out, what="1 agent to sync")
            # Liveness, not timing: the harness before this waited out the whole 300 s.
            assert time.monotonic() - started < 60
        finally:
            fleet.stop()
    printed = capsys.readouterr().out
    assert "gw-000 (exited 1): no status ConfigMap" in printed
    assert "API server refusals (429, 5xx) so far:" in printed
    kept = (out / "site-failure" / "gw-000.log").read_text()
    assert "Address already in use" in kept
    assert (out / "site-failure" / "kube-apiserver.log").exists()


def test_a_fleet_given_a_baseline_src_runs_that_codes_agents(
    kube_env: ControlPlane, kube_core: object, kube_namespace: str, tmp_path: Path
) -> None:
    # A baseline whose agent only says which code it is and exits: the fleet fails at once,
    # and the agent's log names the baseline.
    src = tmp_path / "base" / "src"
    (src / "stoker_agent").mkdir(parents=True)
    (src / "stoker_agent" / "__init__.py").write_text("")
    (src / "stoker_agent" / "cli.py").write_text("print('the baseline agent'); raise SystemExit(1)")
    work = tmp_path / "work"
    work.mkdir()
    env = fleet.code_env(kube_env.subprocess_env(), str(src))
    base = Fleet(work, env, kube_namespace, kube_core, "site")
    try:
        base.grow(1)
        with pytest.raises(FleetStalled, match="an agent exited"):
            base.settled("0" * 40, 300, plane=kube_env, out=tmp_path / "out", what="baseline")
    finally:
        base.stop()
    assert base.log("gw-000").read_text().strip() == "the baseline agent"
    # Without a baseline, the environment is this checkout's as given.
    assert fleet.code_env({"A": "1"}, None) == {"A": "1"}
    assert fleet.code_env({"PYTHONPATH": "x"}, "b")["PYTHONPATH"] == f"b{os.pathsep}x"


def test_the_agents_cpu_goal_is_half_the_baselines_measured_in_the_run_else_the_old_figure() -> (
    None
):
    bench = bench_module("latency_bench")
    # The rounds of the comparison, taken in turns: agents' CPU seconds of each round.
    baseline = bench.Baseline("/tmp/base/src", theirs=[5.0, 7.0], ours=[2.0, 4.2])
    own_rounds = [{"agents + git": 100.0}]  # this code's other rounds do not count here
    per_sync, limit, note = baseline.cpu_goal(50, own_rounds)
    assert limit == pytest.approx(0.06)  # (5 + 7) / 2 rounds / 50 agents / 2
    assert per_sync == pytest.approx(0.062)  # (2 + 4.2) / 2 / 50
    assert "0.120 s of the baseline code (/tmp/base/src); 2 rounds each, taken in turns" in note
    assert "0.40x to 0.60x" in note  # the spread of the pairs, not only their mean
    per_sync, limit, note = bench.Baseline(None).cpu_goal(50, own_rounds)
    assert (per_sync, limit) == (2.0, bench.TODAY_CPU_PER_SYNC / 2)
    assert "no baseline in this run" in note
