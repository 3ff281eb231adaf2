"""Agents "in a pod" against the real API server, for the k8s tests that run `stoker agent` and
`stoker controller` as processes: starting and stopping them, the environment the webhook
injects for pod ignition-blue-0, the example GatewaySync (profile blue) with that injected pod,
the gateway's data directory with the API token beside it, and the status record the agent
publishes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from support.ignition_sim_resources import write_api_token
from support.kubeenv import free_port
from support.stokercli import BLOCKING

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/gatewaysyncs/multiple-profiles.yaml"
POD = "ignition-blue-0"


def start(
    args: list[str], env: dict[str, str], log: Path, *, without: str = ""
) -> subprocess.Popen[bytes]:
    """Start `stoker ARGS` logging to `log`; `without`: packages it must do without."""
    handle = log.open("wb")
    command = ["-c", BLOCKING, without] if without else ["-m", "stoker_agent.cli"]
    proc = subprocess.Popen(
        [sys.executable, *command, *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    return proc


def blue_agent_env(
    env: dict[str, str], namespace: str, cr_name: str, work: Path, data: Path, gateway_url: str
) -> dict[str, str]:
    """What the webhook would inject for pod ignition-blue-0 (profile blue), with local paths:
    `data` is the gateway's data directory, `work` holds the mirror and `api-token`."""
    return {
        **env,
        "POD_NAME": "ignition-blue-0",
        "POD_NAMESPACE": namespace,
        "CR_NAME": cr_name,
        "GATEWAY_NAME": "ignition-blue",
        "PROFILE": "blue",
        "DATA_PATH": str(data),
        "REPO_PATH": str(work / "repo"),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": gateway_url.rsplit(":", 1)[1],
        "API_KEY_FILE": str(work / "api-token"),
        "HEALTH_PORT": str(free_port()),
    }


def stop(*procs: subprocess.Popen[bytes]) -> list[int]:
    """SIGTERM every process and return their exit codes (each must stop within 20 s)."""
    for proc in procs:
        proc.terminate()
    return [proc.wait(timeout=20) for proc in procs]


def start_controller(env: dict[str, str], namespace: str, work: Path) -> subprocess.Popen[bytes]:
    """Start `stoker controller` (its lease in `namespace`), logging to `work`/controller.log."""
    args = ["controller", "--metrics-port", "0", "--lease-namespace", namespace]
    return start(args, env, work / "controller.log")


def create_blue_gateway(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, repo: Path
) -> str:
    """The example GatewaySync reading `repo`, and its injected pod ignition-blue-0: its name."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"].pop("namespace", None)
    body["spec"]["git"] = {"repo": f"file://{repo}", "ref": "main"}
    name: str = body["metadata"]["name"]
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body
    )
    core.create_namespaced_pod(
        namespace,
        {  # injected: the controller discovers it and creates its status ConfigMap
            "metadata": {
                "name": POD,
                "annotations": {"stoker.io/inject": "true", "stoker.io/cr-name": name},
            },
            "spec": {
                "initContainers": [
                    {"name": "stoker-agent", "image": "agent", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "gateway", "image": "ignition"}],
            },
        },
    )
    return name


def gateway_data(work: Path) -> Path:
    """`work`/data, a gateway data directory, with the API token the agent reads in `work`."""
    data = work / "data"
    data.mkdir()
    (work / "api-token").write_text(write_api_token(data, collection="local"))
    return data


def status_record(core: client.CoreV1Api, namespace: str, cr: str) -> dict[str, Any] | None:
    """The agent's last published sync record, or None."""
    for cm in core.list_namespaced_config_map(namespace).items:
        text = (cm.data or {}).get("status.json")
        if cm.metadata.name.startswith(f"stoker-status-{cr}") and text:
            record: dict[str, Any] = json.loads(text)
            return record
    return None
