"""An agent whose Secrets are not mounted (the webhook's Secret volumes are optional, so the
gateway pod starts without them) says which Secret and key it lacks, in its log and its
status, changes nothing, and goes on by itself once the kubelet mounts them (issue 15).
The controller and the agent run as processes against the real API server; the gateway is the
simulator; the "kubelet" is the test writing the files into the mounted directories."""

from __future__ import annotations

import json
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
    status_record,
    stop,
)
from support.kubeenv import ControlPlane, wait_until

pytestmark = pytest.mark.kube


def result_is(core: client.CoreV1Api, namespace: str, cr: str, result: str) -> Any:
    """The agent's last record when its result is `result`, else None."""
    record = status_record(core, namespace, cr)
    return record if record and record["result"] == result else None


def test_an_agent_missing_its_git_token_and_a_vars_secret_names_them_and_syncs_once_mounted(
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
    # The optional Secret volumes, mounted empty: the Secrets do not exist yet.
    token = tmp_path / "git-credentials" / "token"
    password = tmp_path / "vars" / "plant-db" / "password"
    token.parent.mkdir()
    password.parent.mkdir(parents=True)
    agent_log = tmp_path / "agent.log"
    procs = [start_controller(env, kube_namespace, tmp_path)]
    try:
        with running(data) as sim:
            agent_env = {
                **blue_agent_env(env, kube_namespace, name, tmp_path, data, sim.url),
                "GIT_TOKEN_FILE": str(token),
                "STOKER_VAR_FILES": json.dumps({"dbPassword": str(password)}),
                "STOKER_SECRET_FILES": json.dumps(
                    {str(token): "git-token", str(password): "plant-db"}
                ),
            }
            procs.append(start(["agent", "--log-format", "text"], agent_env, agent_log))
            waiting = wait_until(
                lambda: result_is(kube_core, kube_namespace, name, "Blocked"),
                timeout=60,
                what="the agent to report the missing Secrets",
            )
            assert f"the Git token: Secret 'git-token' key 'token' ({token})" in waiting["error"]
            assert "varsFrom dbPassword: Secret 'plant-db' key 'password'" in waiting["error"]
            assert "Secret 'git-token' key 'token'" in agent_log.read_text()
            assert not (data / "projects" / "blue").exists()

            token.write_text("a-token-value\n")  # what the kubelet does once they exist
            password.write_text("s3cret\n")
            wait_until(
                lambda: result_is(kube_core, kube_namespace, name, "Synced"),
                timeout=90,
                what="the agent to sync once the Secrets are mounted, without a restart",
            )
            assert (data / "projects" / "blue").is_dir()
            assert all(p.poll() is None for p in procs)
    finally:
        stop(*procs)
    text = agent_log.read_text()
    assert "Traceback" not in text
    assert "a-token-value" not in text
    assert "s3cret" not in text
