"""An agent "in a pod" against the real API server, for the k8s tests that run the agent as a
process: the example GatewaySync (profile blue) with its injected gateway pod, the gateway's
data directory with the API token beside it, and the status record the agent publishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from support.ignition_sim_resources import write_api_token

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/gatewaysyncs/multiple-profiles.yaml"
POD = "ignition-blue-0"


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
