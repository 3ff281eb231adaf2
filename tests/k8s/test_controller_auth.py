"""The controller resolves refs over SSH with credentials from Secrets, reports whether host
keys are checked (R3), and names a missing Secret key in the condition."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_k8s.controller import Controller
from support.gitservers import BareRepo, SshServer

pytestmark = pytest.mark.kube


def secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def reconciled(kube_api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    custom = client.CustomObjectsApi(kube_api)
    created = custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body
    )
    Controller(client.CoreV1Api(kube_api), custom).reconcile(created)
    got = custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body["metadata"]["name"]
    )
    return {c["type"]: c for c in got["status"]["conditions"]}


@pytest.mark.parametrize("with_known_hosts", [True, False])
def test_ssh_refs_resolve_and_host_key_checking_is_reported_r3(
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    git_ssh: SshServer,
    git_root: Path,
    with_known_hosts: bool,
) -> None:
    repo = BareRepo.create(git_root, "config", {"p/a.json": "{}"})
    kube_core.create_namespaced_secret(
        kube_namespace,
        secret(
            "git-ssh",
            key=git_ssh.client_key_path.read_text(),
            known_hosts=git_ssh.known_hosts_path.read_text(),
        ),
    )
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = git_ssh.url_for("config")
    auth: dict[str, Any] = {"secretRef": {"name": "git-ssh", "key": "key"}}
    if with_known_hosts:
        auth["knownHosts"] = {"secretRef": {"name": "git-ssh", "key": "known_hosts"}}
    body["spec"]["git"]["auth"] = {"sshKey": auth}
    conditions = reconciled(kube_api, kube_namespace, body)
    assert conditions["RefResolved"]["status"] == "True"
    assert conditions["RefResolved"]["message"] == repo.rev_parse("main")
    ssh = conditions["SSHHostKeyVerification"]
    assert ssh["status"] == ("True" if with_known_hosts else "False")
    assert ssh["reason"] == (
        "HostKeyVerificationEnabled" if with_known_hosts else "HostKeyVerificationDisabled"
    )


def test_a_missing_secret_key_is_named(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    kube_core.create_namespaced_secret(kube_namespace, secret("git-token", other="x"))
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["auth"] = {"token": {"secretRef": {"name": "git-token", "key": "token"}}}
    conditions = reconciled(kube_api, kube_namespace, body)
    assert conditions["RefResolved"]["status"] == "False"
    assert 'key "token" not found in Secret' in conditions["RefResolved"]["message"]
    assert "SSHHostKeyVerification" not in conditions
