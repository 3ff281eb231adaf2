"""The kubelet stand-ins: pod status, StatefulSet ordinals, deletion and local volumes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from support.kubeenv import ControlPlane
from support.kubelet import (
    POD_INDEX_LABEL,
    STATEFULSET_POD_NAME_LABEL,
    delete_pod,
    label_statefulset_pod,
    mark_pod_running,
    materialize_pod,
)

pytestmark = pytest.mark.kube


def gateway_pod(name: str, service_account: str = "default") -> dict[str, Any]:
    """A gateway pod with an agent native sidecar, shaped like the webhook's output."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "ignition"}},
        "spec": {
            "serviceAccountName": service_account,
            "initContainers": [
                {
                    "name": "stoker-agent",
                    "image": "example.invalid/stoker:1",
                    "restartPolicy": "Always",
                    "env": [
                        {"name": "CONFIG_DIR", "value": "/etc/stoker/config"},
                        {"name": "CONFIG_FILE", "value": "$(CONFIG_DIR)/agent.yaml"},
                        {"name": "TOKEN_FILE", "value": "/var/run/secrets/stoker/token"},
                        {"name": "DATA_DIR", "value": "/usr/local/bin/ignition/data"},
                        {"name": "LOG_LEVEL", "value": "debug"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {
                            "name": "GIT_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "git", "key": "password"}},
                        },
                    ],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/stoker/config", "readOnly": True},
                        {"name": "git", "mountPath": "/etc/stoker/git", "readOnly": True},
                        {"name": "stoker-token", "mountPath": "/var/run/secrets/stoker"},
                        {"name": "data", "mountPath": "/usr/local/bin/ignition/data"},
                    ],
                }
            ],
            "containers": [
                {
                    "name": "gateway",
                    "image": "example.invalid/ignition:8.3",
                    "volumeMounts": [{"name": "data", "mountPath": "/usr/local/bin/ignition/data"}],
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "agent-config"}},
                {
                    "name": "git",
                    "secret": {
                        "secretName": "git",
                        "items": [{"key": "password", "path": "pw"}],
                        "defaultMode": 0o400,
                    },
                },
                {
                    "name": "stoker-token",
                    "projected": {
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "path": "token",
                                    "audience": "stoker",
                                    "expirationSeconds": 3600,
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "pod-name",
                                            "fieldRef": {"fieldPath": "metadata.name"},
                                        }
                                    ]
                                }
                            },
                        ]
                    },
                },
                {"name": "data", "emptyDir": {}},
            ],
        },
    }


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def test_materialised_volumes_give_the_local_agent_its_files_env_and_a_working_token(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    kube_core.create_namespaced_service_account(ns, {"metadata": {"name": "agent"}})
    kube_core.create_namespaced_config_map(
        ns, {"metadata": {"name": "agent-config"}, "data": {"agent.yaml": "repo: main\n"}}
    )
    kube_core.create_namespaced_secret(
        ns, {"metadata": {"name": "git"}, "stringData": {"password": "s3cret", "unused": "x"}}
    )
    kube_core.create_namespaced_pod(ns, gateway_pod("gw-0", service_account="agent"))

    local = materialize_pod(kube_core, ns, "gw-0", "stoker-agent", tmp_path)

    config = local.local_path("/etc/stoker/config/agent.yaml")
    assert config.read_text() == "repo: main\n"
    assert str(config).startswith(str(tmp_path))
    password = local.local_path("/etc/stoker/git/pw")
    assert password.read_text() == "s3cret"
    assert password.stat().st_mode & 0o777 == 0o400
    assert not (local.mounts["/etc/stoker/git"] / "unused").exists()
    assert local.local_path("/var/run/secrets/stoker/pod-name").read_text() == "gw-0"
    assert local.mounts["/usr/local/bin/ignition/data"].is_dir()
    # The ServiceAccount admission plugin added the usual kube-api-access volume too.
    sa_dir = local.local_path("/var/run/secrets/kubernetes.io/serviceaccount")
    assert (sa_dir / "namespace").read_text() == ns
    assert (sa_dir / "ca.crt").read_bytes() == kube_env.ca.cert_pem

    assert local.env["CONFIG_FILE"] == str(config)
    assert local.env["TOKEN_FILE"] == str(local.local_path("/var/run/secrets/stoker/token"))
    assert local.env["DATA_DIR"] == str(local.mounts["/usr/local/bin/ignition/data"])
    assert local.env["LOG_LEVEL"] == "debug"
    assert local.env["POD_NAME"] == "gw-0"
    assert local.env["GIT_PASSWORD"] == "s3cret"

    token = Path(local.env["TOKEN_FILE"]).read_text()
    claims = jwt_claims(token)
    assert claims["aud"] == ["stoker"]
    assert claims["kubernetes.io"]["pod"]["name"] == "gw-0"
    default_token = (sa_dir / "token").read_text()
    with kube_env.api_client(default_token) as sa_api:
        review = client.AuthenticationV1Api(sa_api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            _preload_content=False,
        )
    user = json.loads(review.data)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{ns}:agent"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["gw-0"]


def test_a_pod_can_be_marked_running_labelled_as_a_statefulset_member_and_deleted(
    kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    kube_core.create_namespaced_pod(ns, gateway_pod("ignition-2"))

    pod = mark_pod_running(kube_core, ns, "ignition-2", node_name="node-a")

    assert pod["spec"]["nodeName"] == "node-a"
    assert pod["status"]["phase"] == "Running"
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert [(s["name"], s["ready"]) for s in pod["status"]["containerStatuses"]] == [
        ("gateway", True)
    ]
    sidecar = pod["status"]["initContainerStatuses"][0]
    assert sidecar["name"] == "stoker-agent"
    assert "running" in sidecar["state"]

    label_statefulset_pod(kube_core, ns, "ignition-2")
    selected = kube_core.list_namespaced_pod(ns, label_selector=f"{POD_INDEX_LABEL}=2").items
    assert [p.metadata.name for p in selected] == ["ignition-2"]
    assert selected[0].metadata.labels[STATEFULSET_POD_NAME_LABEL] == "ignition-2"

    delete_pod(kube_core, ns, "ignition-2")
    with pytest.raises(ApiException) as info:
        kube_core.read_namespaced_pod("ignition-2", ns)
    assert info.value.status == 404
