"""An agent whose API server is out of reach keeps running and says why; once it is back, the
agent syncs and publishes its status. A real TCP proxy stands between the agent and the real API
server; the controller talks to the API server directly."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from support.ignition_sim import running
from support.inpod import (
    blue_agent_env,
    create_blue_gateway,
    gateway_data,
    start,
    start_controller,
    stop,
)
from support.kubeenv import ControlPlane, wait_until
from support.kubefixtures import proxied_kubeconfig
from support.tcpproxy import TcpProxy

pytestmark = pytest.mark.kube


def test_an_agent_started_while_the_api_server_is_unreachable_waits_then_syncs(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    api_proxy: TcpProxy,
    example_repo: Path,
    tmp_path: Path,
) -> None:
    name = create_blue_gateway(kube_api, kube_core, kube_namespace, example_repo)
    env = kube_env.subprocess_env()
    proxied = proxied_kubeconfig(kube_env, api_proxy, tmp_path / "proxied.kubeconfig")
    data = gateway_data(tmp_path)
    agent_log = tmp_path / "agent.log"
    procs = [start_controller(env, kube_namespace, tmp_path)]
    try:
        wait_until(
            lambda: _metadata(kube_core, kube_namespace, name),
            timeout=30,
            what="the controller to publish the metadata",
        )
        with running(data) as sim:
            agent_env = blue_agent_env(
                {**env, "KUBECONFIG": str(proxied)}, kube_namespace, name, tmp_path, data, sim.url
            )
            with api_proxy.down():
                agent = start(["agent", "--log-format", "text"], agent_env, agent_log)
                procs.append(agent)
                wait_until(
                    lambda: "the API server did not answer" in agent_log.read_text(),
                    timeout=30,
                    what="the agent to report the unreachable API server",
                )
                time.sleep(1)  # it would have died by now
                assert agent.poll() is None, agent_log.read_text()
                assert not (data / "projects/blue").exists()
            wait_until(
                lambda: _status(kube_core, kube_namespace, name),
                timeout=60,
                what="the agent to sync and publish its status once the API server is back",
            )
            assert "blue" in sim.loaded_projects()
            assert agent.poll() is None
    finally:
        stop(*procs)
    text = agent_log.read_text()
    assert "Traceback" not in text
    assert "reading the metadata ConfigMap: the API server did not answer" in text


def _metadata(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    try:
        return core.read_namespaced_config_map(f"stoker-metadata-{name}", namespace)
    except client.exceptions.ApiException:
        return None


def _status(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    """The agent's status ConfigMap once it reports a sync of the blue project."""
    for cm in core.list_namespaced_config_map(namespace).items:
        status = (cm.data or {}).get("status.json", "")
        if cm.metadata.name.startswith(f"stoker-status-{name}") and '"Synced"' in status:
            return cm
    return None
