"""Every Kubernetes manifest shown in README.md and docs/ (Secrets, GatewaySyncs, a gateway
StatefulSet, ConfigMaps) is accepted by the test API server with the CRD installed, in a
server-side dry run, so a field the schema does not know or a wrong type fails here."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic

from conftest import ROOT

pytestmark = pytest.mark.kube
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def manifests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in DOCS:
        for body in BLOCK.findall(path.read_text()):
            for doc in yaml.safe_load_all(body):
                if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                    out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def test_the_docs_show_manifests() -> None:
    kinds = {doc["kind"] for _, doc in manifests()}
    assert {"GatewaySync", "Secret"} <= kinds


@pytest.mark.parametrize(("where", "doc"), manifests(), ids=[w for w, _ in manifests()])
def test_documented_manifest_is_accepted_by_the_api_server(
    kube_api: client.ApiClient, kube_namespace: str, where: str, doc: dict[str, Any]
) -> None:
    resource = dynamic.DynamicClient(kube_api).resources.get(
        api_version=doc["apiVersion"], kind=doc["kind"]
    )
    body = copy.deepcopy(doc)
    namespace = None
    if resource.namespaced:
        namespace = kube_namespace  # the doc's namespace need not exist here
        body["metadata"]["namespace"] = namespace
    # Strict: an unknown field is an error, not silently pruned as it would be by default.
    url = f"{kube_api.configuration.host}{resource.path(namespace=namespace)}"
    reply = kube_api.call_api(
        "POST",
        f"{url}?dryRun=All&fieldValidation=Strict",
        {"Content-Type": "application/json", "Accept": "application/json"},
        body,
    )
    reply.read()
    if reply.status >= 300:
        raise Refused(f"{where}: {reply.status} {reply.data.decode()[:500]}")


class Refused(Exception):
    """The API server did not accept a documented manifest."""


@pytest.mark.parametrize("mistake", ["unknown-field", "wrong-type"])
def test_a_wrong_manifest_is_refused(
    kube_api: client.ApiClient, kube_namespace: str, mistake: str
) -> None:
    where, doc = next((w, d) for w, d in manifests() if d["kind"] == "GatewaySync")
    broken = copy.deepcopy(doc)
    if mistake == "unknown-field":
        broken["spec"]["git"]["branch"] = "main"
    else:
        broken["spec"]["gateway"]["port"] = "eighty"
    with pytest.raises(
        Refused, match=r"unknown field ..spec\.git\.branch|spec\.gateway\.port: Invalid value"
    ):
        test_documented_manifest_is_accepted_by_the_api_server(
            kube_api, kube_namespace, where, broken
        )
