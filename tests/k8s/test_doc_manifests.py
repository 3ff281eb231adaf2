"""Every Kubernetes manifest shown in README.md and docs/ (Secrets, GatewaySyncs, a gateway
StatefulSet, ConfigMaps) is accepted by the test API server with the CRD installed, in a
server-side dry run, so a field the schema does not know or a wrong type fails here. The
rollout worked example (docs/rollouts.md) is applied for real, its GatewaySync validates, its
steps and pair hold the gateways its table says, and its Role lets only its group approve."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic

from conftest import ROOT
from stoker_core import rollouts, waves
from stoker_core.validation import check, load

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


def worked_example() -> list[dict[str, Any]]:
    """The manifests of docs/rollouts.md's section "A worked example", in order."""
    text = (ROOT / "docs/rollouts.md").read_text()
    section = text.split("\n## A worked example\n", 1)[1].split("\n## ", 1)[0]
    return [
        doc
        for body in BLOCK.findall(section)
        for doc in yaml.safe_load_all(body)
        if isinstance(doc, dict) and "kind" in doc
    ]


def test_the_rollout_worked_example_applies_and_only_its_group_may_approve(
    kube_api: client.ApiClient, kube_namespace: str
) -> None:
    docs = worked_example()
    assert [d["kind"] for d in docs] == ["GatewaySync", "StatefulSet", "Role", "RoleBinding"]
    dynamic_client = dynamic.DynamicClient(kube_api)
    for doc in docs:  # for real, in the order the page gives them
        body = copy.deepcopy(doc)
        body["metadata"]["namespace"] = kube_namespace
        resource = dynamic_client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        resource.create(body=body, namespace=kube_namespace)
    authz = client.AuthorizationV1Api(kube_api)

    def may(groups: list[str], verb: str, name: str = "riverside") -> bool:
        attributes = {"namespace": kube_namespace, "verb": verb, "group": "stoker.io"}
        attributes |= {"resource": "gatewaysyncs", "name": name}
        if not name:
            del attributes["name"]
        review = {"spec": {"user": "ada", "groups": groups, "resourceAttributes": attributes}}
        return bool(authz.create_subject_access_review(review).status.allowed)

    leads = ["riverside-shift-leads"]
    assert may(leads, "approve")
    assert may(leads, "patch")  # to write the annotation `stoker approve` writes
    assert not may(["operators"], "approve")
    assert may(leads, "list", name="")  # stoker status -n plant
    assert may(leads, "get")  # stoker history riverside
    assert not may(["operators"], "list", name="")
    assert not may(leads, "approve", name="another-plant")
    assert not may(leads, "patch", name="another-plant")
    assert not may(leads, "delete")


def test_the_rollout_worked_example_moves_its_gateways_as_its_table_says() -> None:
    [gs] = [load(d) for d in worked_example() if d["kind"] == "GatewaySync"]
    assert list(check(gs)) == []
    rollout = gs.spec.rollout
    assert rollout is not None
    line = "plant.example/line"
    table = {  # gateway → (profile, labels, the step the page's table names)
        "test-gw": ("line", {}, "test"),
        "line1-a": ("line", {line: "1"}, "line-1"),
        "line1-b": ("line", {line: "1"}, "line-1"),
        **{f"line2-{x}": ("line", {line: "2"}, "line-2") for x in "abcd"},
        "scada": ("scada", {}, "last"),
        "scada-1": ("scada", {}, "last"),
    }
    names = [waves.step_name(step, i) for i, step in enumerate(rollout.steps)] + ["last"]
    for name, (profile, labels, step) in table.items():
        member = waves.Member(name=name, profile=profile, labels=labels)
        assert names[waves.step_of(rollout, member)] == step, name
    assert waves.allowance(rollout, 1, 2) == 1  # line-1: one at a time
    assert waves.allowance(rollout, 2, 4) == 2  # line-2: 50 % of 4
    owners = [(n, "StatefulSet scada", i) for i, n in enumerate(["scada", "scada-1"])]
    owners += [("line1-a", "StatefulSet line1-a", 0), ("line1-b", "StatefulSet line1-b", 0)]
    assert rollouts.pairs(owners) == {
        "scada": ("StatefulSet scada", False),
        "scada-1": ("StatefulSet scada", True),
    }
