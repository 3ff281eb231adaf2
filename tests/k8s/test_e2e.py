"""The whole flow on a real API server: the controller resolves and publishes; creating a
gateway pod makes the API server call `stoker webhook`, which injects the agent; the pod is
marked Running and its volumes materialised (tests/support/kubelet.py), and the agent runs as a
local process (with the `kubernetes` package refused: the agent has its own client) with
exactly the environment and files the webhook injected, under the token of
the GatewaySync's agent identity that the controller keeps in a Secret mounted into the sidecar
only, with the Role the controller grants that identity (H15); it syncs the gateway simulator and
reports, and the GatewaySync becomes Ready with the right `kubectl get -o wide` columns; a new
commit flows through."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client

from conftest import EXAMPLES, git
from k8s.test_webhook import configurations, serving
from support.ignition_sim import running
from support.ignition_sim_resources import write_api_token
from support.inpod import start, stop
from support.kubeenv import ControlPlane, free_port, wait_until
from support.kubelet import mark_pod_running, materialize_pod

pytestmark = pytest.mark.kube


@pytest.fixture
def cr_body(example_repo: Path) -> dict[str, Any]:
    body = yaml.safe_load((EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml").read_text())
    body["spec"]["git"]["repo"] = f"file://{example_repo}"
    body["spec"]["git"].pop("auth", None)
    body["metadata"].pop("namespace", None)
    # A long polling interval: what the tests see must be driven by watch events.
    body["spec"]["polling"] = {"enabled": True, "interval": "1h"}
    body["spec"]["gateway"]["port"] = free_port()  # where the simulator will listen
    return body


def agent_kubeconfig(kube_env: ControlPlane, token_file: Path, target: Path) -> Path:
    """A kubeconfig using the agent identity's token (what the agent uses in a cluster)."""
    config = yaml.safe_load(kube_env.kubeconfig.read_text())
    config["users"][0]["user"] = {"tokenFile": str(token_file)}
    target.write_text(yaml.safe_dump(config))
    return target


def test_controller_webhook_and_agent_bring_a_gateway_to_ready(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    example_repo: Path,
    cr_body: dict[str, Any],
    tmp_path: Path,
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    name = cr_body["metadata"]["name"]
    api_secret = secrets.token_hex(16)
    kube_core.create_namespaced_secret(
        kube_namespace,
        {
            "metadata": {"name": cr_body["spec"]["gateway"]["api"]["secretName"]},
            "stringData": {"apiKey": f"stoker:{api_secret}"},
        },
    )
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", cr_body
    )
    env = kube_env.subprocess_env()
    metrics_port = free_port()
    controller = start(
        [
            "controller",
            "--metrics-port",
            str(metrics_port),
            "--lease-namespace",
            kube_namespace,
            "--lease-seconds",
            "3",
        ],
        env,
        tmp_path / "controller.log",
    )
    processes: list[subprocess.Popen[bytes]] = [controller]
    try:

        def published() -> Any:
            try:
                cm = kube_core.read_namespaced_config_map(f"stoker-metadata-{name}", kube_namespace)
            except client.exceptions.ApiException:
                return None
            return cm if cm.data.get("commit") == git(example_repo, "rev-parse", "HEAD") else None

        cm = wait_until(published, timeout=30, what="the metadata ConfigMap")
        assert "token" not in json.dumps(cm.data).lower()

        def agent_token() -> Any:
            try:
                secret = kube_core.read_namespaced_secret(
                    f"stoker-agent-token-{name}", kube_namespace
                )
            except client.exceptions.ApiException:
                return None
            return (secret.data or {}).get("token")

        wait_until(agent_token, timeout=30, what="the agents' token")

        pod = {
            "metadata": {
                "name": "ignition-blue-0",
                "annotations": {
                    "stoker.io/inject": "true",
                    "stoker.io/cr-name": name,
                    "stoker.io/profile": "blue",
                    "stoker.io/gateway-name": "ignition-blue",
                },
            },
            "spec": {
                "containers": [
                    {
                        "name": "gateway",
                        "image": "ignition",
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/usr/local/bin/ignition/data"}
                        ],
                    }
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        }
        with serving(env, tmp_path) as (url, bundle):
            mutating, _ = configurations(url, bundle, kube_namespace)
            with kube_env.webhook_configuration(kube_api, mutating):

                def injected() -> Any:
                    stored = kube_core.create_namespaced_pod(kube_namespace, pod)
                    if stored.spec.init_containers:
                        return stored
                    # Created before the API server loaded the configuration: again (an
                    # unscheduled pod is deleted at once).
                    kube_core.delete_namespaced_pod(
                        "ignition-blue-0", kube_namespace, grace_period_seconds=0
                    )
                    return None

                wait_until(injected, timeout=30, what="the API server to call stoker webhook")
        mark_pod_running(kube_core, kube_namespace, "ignition-blue-0", node_name="node-1")
        local = materialize_pod(
            kube_core,
            kube_namespace,
            "ignition-blue-0",
            "stoker-agent",
            tmp_path / "pod",
            audience=kube_env.server,
        )
        data = Path(local.env["DATA_PATH"])
        assert data == local.mounts["/usr/local/bin/ignition/data"]
        assert write_api_token(data, collection="local", secret=api_secret) == (
            Path(local.env["API_KEY_FILE"]).read_text()
        )
        # The agent's own token (never the pod's ServiceAccount token), as the sidecar sees it.
        sa_token = Path(local.env["STOKER_API_TOKEN_FILE"])
        assert sa_token.read_text() == base64.b64decode(agent_token()).decode()
        with running(data, port=cr_body["spec"]["gateway"]["port"]) as sim:
            agent_env = {
                **os.environ,
                **local.env,  # exactly what the webhook injected, paths mapped to local files
                # The one port changed: 8082 may be taken on a shared test machine.
                "HEALTH_PORT": str(free_port()),
                # Outside a cluster the agent finds its ServiceAccount token via a kubeconfig.
                "KUBECONFIG": str(
                    agent_kubeconfig(kube_env, sa_token, tmp_path / "agent.kubeconfig")
                ),
            }
            # The agent needs no `kubernetes` package: its own client talks to the API server.
            processes.append(
                start(
                    ["agent", "--log-format", "text"],
                    agent_env,
                    tmp_path / "agent.log",
                    without="kubernetes",
                )
            )

            def ready() -> Any:
                cr = custom.get_namespaced_custom_object(
                    "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", name
                )
                conds = {c["type"]: c for c in cr.get("status", {}).get("conditions", [])}
                return cr if conds.get("Ready", {}).get("status") == "True" else None

            cr = wait_until(ready, timeout=60, what="the GatewaySync to become Ready")
            assert "blue" in sim.loaded_projects()
            [gateway] = cr["status"]["discoveredGateways"]
            assert (gateway["name"], gateway["syncStatus"]) == ("ignition-blue", "Synced")
            conds = {c["type"]: c["message"] for c in cr["status"]["conditions"]}
            assert conds["AllGatewaysSynced"] == "1/1 synced"
            # What `kubectl get gs -o wide` shows: the API server's own Table rendering.
            table = requests.get(
                f"{kube_env.server}/apis/stoker.io/v1alpha1/namespaces/{kube_namespace}"
                f"/gatewaysyncs/{name}",
                headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
                cert=(str(kube_env.admin_cert), str(kube_env.admin_key)),
                verify=str(kube_env.ca_file),
                timeout=10,
            ).json()
            columns = [c["name"] for c in table["columnDefinitions"]]
            row = dict(zip(columns, table["rows"][0]["cells"], strict=True))
            assert columns[:7] == ["Name", "Ref", "Gateways", "Ready", "Status", "Restart", "Age"]
            assert (row["Name"], row["Ref"], row["Gateways"], row["Ready"]) == (
                name,
                "main",
                "1/1 synced",
                "True",
            )
            assert row["Commit"] == cr["status"]["lastSyncCommit"][:7]
            assert row["Profiles"] == 3
            assert row["Last Sync"]

            project = example_repo / "services/ignition-blue/projects/blue/project.json"
            project.write_text(project.read_text().replace("}", ', "description": "v2"}', 1))
            git(example_repo, "commit", "-qam", "v2")
            new = git(example_repo, "rev-parse", "HEAD")
            # What the receiver does on a push to the tracked branch.
            custom.patch_namespaced_custom_object(
                "stoker.io",
                "v1alpha1",
                kube_namespace,
                "gatewaysyncs",
                name,
                {"metadata": {"annotations": {"stoker.io/refresh-requested-at": "now"}}},
            )

            def delivered() -> bool:
                return b'"description": "v2"' in (data / "projects/blue/project.json").read_bytes()

            wait_until(delivered, timeout=60, what="the new commit to reach the gateway")
            status_cm = kube_core.read_namespaced_config_map(
                f"stoker-status-{name}-ignition-blue-0", kube_namespace
            )
            wait_until(
                lambda: (
                    json.loads(
                        kube_core.read_namespaced_config_map(
                            f"stoker-status-{name}-ignition-blue-0", kube_namespace
                        ).data["status.json"]
                    )["commit"]
                    == new
                ),
                timeout=30,
                what="the agent to report the new commit",
            )
            assert status_cm.metadata.owner_references[0].kind == "Pod"
            scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            synced = (
                f'stoker_controller_gateways_synced{{name="{name}",namespace="{kube_namespace}"}}'
            )
            assert f"{synced} 1.0" in scraped
            assert "stoker_controller_reconcile_total" in scraped
            health = f"http://127.0.0.1:{agent_env['HEALTH_PORT']}"
            assert requests.get(f"{health}/readyz", timeout=5).status_code == 200
            # SIGTERM: both stop cleanly (R5: the agent finishes what it does, then exits 0).
            assert stop(*processes) == [0, 0]
    finally:
        stop(*processes)
        for log in tmp_path.glob("*.log"):
            print(log.name, log.read_text()[-3000:])
