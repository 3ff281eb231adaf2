"""With token auth over HTTP and a gateway API token, the whole flow runs, and neither secret
appears in any ConfigMap, Event, GatewaySync status, or controller and agent log line; a paused
GatewaySync then leaves the gateway alone."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from conftest import EXAMPLES, git
from support.gitservers import GitHttpServer
from support.ignition_sim import running
from support.ignition_sim_resources import write_api_token
from support.inpod import blue_agent_env, start, stop
from support.kubeenv import ControlPlane, free_port, wait_until

pytestmark = pytest.mark.kube
GIT_TOKEN = "ghs_super-secret-git-token-7f3a"


def test_secrets_stay_out_of_everything_people_and_other_tools_can_read(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    served = tmp_path / "served"
    shutil.copytree(EXAMPLES / "config-repo", tmp_path / "work")
    git(tmp_path / "work", "init", "-q", "-b", "main")
    git(tmp_path / "work", "add", "-A")
    git(tmp_path / "work", "commit", "-qm", "config")
    served.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(tmp_path / "work"), str(served / "config.git"))
    body = yaml.safe_load((EXAMPLES / "gatewaysyncs" / "multiple-profiles.yaml").read_text())
    body["metadata"].pop("namespace", None)
    name = body["metadata"]["name"]
    kube_core.create_namespaced_secret(
        kube_namespace,
        {
            "metadata": {"name": "git-token"},
            "data": {"token": base64.b64encode(GIT_TOKEN.encode()).decode()},
        },
    )
    custom = client.CustomObjectsApi(kube_api)
    with GitHttpServer(served, "git", "unused", tokens=[GIT_TOKEN]) as git_http:
        body["spec"]["git"]["repo"] = git_http.url_for("config")
        body["spec"]["polling"] = {"enabled": True, "interval": "2s"}  # many passes, many chances
        body["spec"]["git"]["auth"] = {
            "token": {"secretRef": {"name": "git-token", "key": "token"}}
        }
        custom.create_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
        )
        env = kube_env.subprocess_env()
        logs = {"controller": tmp_path / "controller.log", "agent": tmp_path / "agent.log"}
        procs = [
            start(
                [
                    "controller",
                    "--metrics-port",
                    str(free_port()),
                    "--lease-namespace",
                    kube_namespace,
                ],
                env,
                logs["controller"],
            )
        ]
        data = tmp_path / "data"
        data.mkdir()
        api_token = write_api_token(data, collection="local")
        (tmp_path / "api-token").write_text(api_token)
        kube_core.create_namespaced_secret(  # the key the GatewaySync names (SecretsAvailable)
            kube_namespace,
            {
                "metadata": {"name": "gw-api-key"},
                "data": {"apiKey": base64.b64encode(api_token.encode()).decode()},
            },
        )
        (tmp_path / "git-token").write_text(GIT_TOKEN)  # what the Secret volume would hold
        kube_core.create_namespaced_pod(
            kube_namespace,
            {
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
                    "nodeName": "node-1",  # scheduled: the controller discovers only these
                    "initContainers": [
                        {"name": "stoker-agent", "image": "s", "restartPolicy": "Always"}
                    ],
                    "containers": [{"name": "gateway", "image": "ignition"}],
                },
            },
        )
        try:
            with running(data) as sim:
                procs.append(
                    start(
                        ["agent", "--log-format", "json"],
                        {
                            **blue_agent_env(env, kube_namespace, name, tmp_path, data, sim.url),
                            "GIT_TOKEN_FILE": str(tmp_path / "git-token"),
                        },
                        logs["agent"],
                    )
                )

                def ready() -> Any:
                    cr = custom.get_namespaced_custom_object(
                        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", name
                    )
                    conds = {
                        c["type"]: c["status"] for c in cr.get("status", {}).get("conditions", [])
                    }
                    return cr if conds.get("Ready") == "True" else None

                cr = wait_until(ready, timeout=60, what="Ready with token auth")
                assert "blue" in sim.loaded_projects()
                custom.patch_namespaced_custom_object(
                    "stoker.io",
                    "v1alpha1",
                    kube_namespace,
                    "gatewaysyncs",
                    name,
                    {"spec": {"paused": True}},
                )
                wait_until(
                    lambda: (
                        kube_core.read_namespaced_config_map(
                            f"stoker-metadata-{name}", kube_namespace
                        ).data["paused"]
                        == "true"
                    ),
                    timeout=30,
                    what="the paused flag to be published",
                )
                before = (data / "projects/blue/project.json").read_bytes()
                project = tmp_path / "work/services/ignition-blue/projects/blue/project.json"
                project.write_text(project.read_text().replace("}", ', "description": "v2"}', 1))
                git(tmp_path / "work", "commit", "-qam", "v2")
                git(tmp_path / "work", "push", "-q", str(served / "config.git"), "main")
                custom.patch_namespaced_custom_object(
                    "stoker.io",
                    "v1alpha1",
                    kube_namespace,
                    "gatewaysyncs",
                    name,
                    {"metadata": {"annotations": {"stoker.io/refresh-requested-at": "t1"}}},
                )
                wait_until(
                    lambda: (
                        kube_core.read_namespaced_config_map(
                            f"stoker-metadata-{name}", kube_namespace
                        ).data["commit"]
                        == git(tmp_path / "work", "rev-parse", "HEAD")
                    ),
                    timeout=30,
                    what="the new commit",
                )
                time.sleep(4)  # two agent polls: a running agent would have applied it by now
                assert (data / "projects/blue/project.json").read_bytes() == before  # paused
        finally:
            stop(*procs)
        assert git_http.secrets_in_urls(GIT_TOKEN) == []
    secret_part = api_token.split(":", 1)[1]
    readable = json.dumps(
        [cm.to_dict() for cm in kube_core.list_namespaced_config_map(kube_namespace).items],
        default=str,
    )
    readable += json.dumps(
        [e.to_dict() for e in kube_core.list_namespaced_event(kube_namespace).items], default=str
    )
    readable += json.dumps(cr, default=str)
    readable += logs["controller"].read_text() + logs["agent"].read_text()
    for secret in (GIT_TOKEN, secret_part):
        assert secret not in readable
