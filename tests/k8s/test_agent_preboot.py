"""The agent in a pod whose gateway container has not started (issue 15): its `/startupz` (the
kubelet's signal to start the gateway) fails until the first sync has applied the commit, which
it does without the gateway; with Git or the controller out of reach it passes after the
start-up timeout, so the gateway starts on the files it has. The agent and the controller run
as processes against the real API server; nothing listens at the gateway's port."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from kubernetes import client

from stoker_agent.standalone import PREBOOT_SCAN
from support.inpod import (
    blue_agent_env,
    create_blue_gateway,
    gateway_data,
    start,
    start_controller,
    status_record,
    stop,
)
from support.kubeenv import ControlPlane, free_port, wait_until

pytestmark = pytest.mark.kube


def startupz(env: dict[str, str]) -> int:
    """The agent's /startupz status code (0 while it does not listen yet)."""
    try:
        url = f"http://127.0.0.1:{env['HEALTH_PORT']}/startupz"
        return requests.get(url, timeout=2).status_code
    except requests.ConnectionError:
        return 0


def test_startupz_waits_for_the_first_sync_which_applies_before_the_gateway_starts(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    example_repo: Path,
    tmp_path: Path,
) -> None:
    name = create_blue_gateway(kube_api, kube_core, kube_namespace, example_repo)
    env = kube_env.subprocess_env()
    data = gateway_data(tmp_path)
    closed = f"http://127.0.0.1:{free_port()}"  # the gateway container waits for the agent
    agent_env = blue_agent_env(env, kube_namespace, name, tmp_path, data, closed)
    agent_log = tmp_path / "agent.log"
    procs = [start(["agent", "--log-format", "text"], agent_env, agent_log)]
    try:
        # No metadata yet (no controller): the agent runs, the gateway must still wait.
        wait_until(lambda: startupz(agent_env) == 503, timeout=30, what="/startupz to answer")
        procs.append(start_controller(env, kube_namespace, tmp_path))
        synced = wait_until(
            lambda: (
                (r := status_record(kube_core, kube_namespace, name))
                and r["result"] == "Synced"
                and r
            ),
            timeout=90,
            what="the agent's first sync",
        )
        assert synced["scan"] == PREBOOT_SCAN
        assert (data / "projects" / "blue").is_dir()
        wait_until(lambda: startupz(agent_env) == 200, timeout=10, what="/startupz to pass")
    finally:
        stop(*procs)
    assert "Traceback" not in agent_log.read_text()


def test_without_metadata_or_git_the_gateway_starts_after_the_start_up_timeout(
    kube_env: ControlPlane, kube_namespace: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    closed = f"http://127.0.0.1:{free_port()}"
    agent_env = {
        **blue_agent_env(kube_env.subprocess_env(), kube_namespace, "none", tmp_path, data, closed),
        "STOKER_STARTUP_TIMEOUT": "4",
    }
    agent_log = tmp_path / "agent.log"
    agent = start(["agent", "--log-format", "text"], agent_env, agent_log)
    try:
        wait_until(lambda: startupz(agent_env) == 503, timeout=30, what="/startupz to answer")
        began = time.monotonic()
        wait_until(lambda: startupz(agent_env) == 200, timeout=30, what="the start-up timeout")
        assert time.monotonic() - began < 25  # bounded: a liveness bound, far above 4 s
        assert agent.poll() is None  # and the agent keeps trying
    finally:
        stop(agent)
    text = agent_log.read_text()
    assert "within the start-up timeout (4s): the gateway starts on the files it has" in text
