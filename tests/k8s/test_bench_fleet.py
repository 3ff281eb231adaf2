"""The benchmarks' fleet harness (bench/fleet.py) on the real API server: a fleet start that
cannot finish says why at once and keeps the logs, instead of waiting out its deadline with
nothing left to read (the 50-agent start-up time-out of bench/notes/latency.md)."""

from __future__ import annotations

import importlib
import socket
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ROOT
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube


def bench_fleet() -> ModuleType:
    """bench/fleet.py, imported without leaving the benchmarks' module names behind: their
    `cluster` would shadow tests/cluster for the tests that follow (and the other way round)."""
    names, where = ("fleet", "cluster"), str(ROOT / "bench")
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, where)
    try:
        return importlib.import_module("fleet")
    finally:
        sys.path.remove(where)
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


fleet = bench_fleet()
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
