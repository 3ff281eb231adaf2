"""The curl commands of docs/receiver.md, run as written (only the URL replaced) against a real
`stoker receiver` and API server, with the Secret and GatewaySync manifests the page shows."""

from __future__ import annotations

import copy
import json
import re
import subprocess

import pytest
import yaml
from kubernetes import client

from conftest import ROOT
from k8s.test_receiver import GLOBAL_TOKEN, annotations, receiver_url  # noqa: F401 (a fixture)

pytestmark = pytest.mark.kube
DOC = (ROOT / "docs" / "receiver.md").read_text()
DOC_URL = "https://stoker.example.com/webhook/plant/plant"


def manifests() -> dict[str, dict]:
    found = {}
    for body in re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL):
        for doc in yaml.safe_load_all(body):
            if doc.get("kind") in ("Secret", "GatewaySync"):
                found[doc["kind"]] = doc
    return found


def create_documented_objects(api: client.ApiClient, namespace: str) -> tuple[dict, dict]:
    """The page's Secret and GatewaySync, created in `namespace`."""
    docs = manifests()
    secret, gs = copy.deepcopy(docs["Secret"]), copy.deepcopy(docs["GatewaySync"])
    for obj in (secret, gs):
        obj["metadata"]["namespace"] = namespace
    client.CoreV1Api(api).create_namespaced_secret(namespace, secret)
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", gs
    )
    return secret, gs


def curl_blocks() -> list[str]:
    blocks = re.findall(r"```\w*\n(.*?)```", DOC, re.DOTALL)
    return [b for b in blocks if "curl " in b]


def test_the_documented_curl_commands_request_the_ref(
    receiver_url: str,  # noqa: F811
    kube_api: client.ApiClient,
    kube_namespace: str,
) -> None:
    secret, gs = create_documented_objects(kube_api, kube_namespace)
    env = {
        "PATH": "/usr/bin:/bin",
        "HMAC_KEY": secret["stringData"]["hmac"],
        "TOKEN": secret["stringData"]["token"],
    }
    url = f"{receiver_url}/webhook/{kube_namespace}/{gs['metadata']['name']}"
    replies = []
    blocks = curl_blocks()
    assert len(blocks) == 2, "one signed with hmac, one with the bearer token"
    for block in blocks:
        assert DOC_URL in block
        done = subprocess.run(
            ["bash", "-c", block.replace(DOC_URL, url)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        replies.append(json.loads(done.stdout))
    assert replies[0] == {"accepted": True, "ref": "v1.4.0", "source": "generic"}
    assert replies[1] == {"accepted": True, "message": "duplicate delivery ignored"}
    marks = annotations(kube_api, kube_namespace, gs["metadata"]["name"])
    assert (marks["stoker.io/requested-ref"], marks["stoker.io/requested-by"]) == (
        "v1.4.0",
        "generic",
    )


def test_the_global_token_does_not_open_a_gatewaysync_with_its_own_secret(
    receiver_url: str,  # noqa: F811
    kube_api: client.ApiClient,
    kube_namespace: str,
) -> None:
    _secret, gs = create_documented_objects(kube_api, kube_namespace)
    url = f"{receiver_url}/webhook/{kube_namespace}/{gs['metadata']['name']}"
    bearer = curl_blocks()[1].replace(DOC_URL, url)
    done = subprocess.run(
        ["bash", "-c", bearer],
        env={"PATH": "/usr/bin:/bin", "TOKEN": GLOBAL_TOKEN},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {"error": "unauthorized"}
