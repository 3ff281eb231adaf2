"""The GatewaySync CRD: generated from the model, committed, and defaulted by a real API server
exactly as the model defaults."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stoker_core.model import GatewaySync
from stoker_core.parsing import structure, unstructure
from stoker_core.validation import load
from stoker_k8s import crdgen

MINIMAL: dict[str, Any] = {
    "apiVersion": "stoker.io/v1alpha1",
    "kind": "GatewaySync",
    "metadata": {"name": "minimal"},
    "spec": {
        "git": {"repo": "https://git.example/plant.git", "ref": "main"},
        "gateway": {"api": {"secretName": "ignition-api-key"}},
        "sync": {
            "profiles": {"default": {"mappings": [{"source": "p", "destination": "projects"}]}}
        },
    },
}


def without_nulls(value: Any) -> Any:
    """Drop None values (the model's 'unset'), recursively."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def test_committed_crds_equal_a_fresh_generation_from_the_model() -> None:
    assert crdgen.CRD_FILE.read_text() == crdgen.render(), "run: make crd"
    assert crdgen.CHART_CRD.read_text() == crdgen.render(), "run: make crd"


@pytest.mark.kube
def test_api_server_defaults_equal_the_model_defaults(
    kube_api: client.ApiClient, kube_namespace: str
) -> None:
    api = client.CustomObjectsApi(kube_api)
    created = api.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(MINIMAL)
    )
    stored = api.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )
    assert created["spec"] == stored["spec"]
    from_server = structure({k: v for k, v in stored.items() if k != "status"}, GatewaySync)
    assert from_server.spec == load(MINIMAL).spec
    # Stronger than the line above (which the model's own defaults would satisfy): every default
    # the model has, the API server wrote into the stored object.
    assert stored["spec"] == without_nulls(unstructure(load(MINIMAL).spec))
    assert stored["spec"]["sync"]["defaults"]["syncPeriod"] == 30
    assert stored["spec"]["gateway"]["port"] == 8088
    assert stored["spec"]["polling"] == {"enabled": True, "interval": "60s"}


@pytest.mark.kube
def test_api_server_defaults_a_rollout_as_the_model_does(
    kube_api: client.ApiClient, kube_namespace: str
) -> None:
    body = copy.deepcopy(MINIMAL)
    body["spec"]["rollout"] = {
        "steps": [
            {"selector": {"gateways": ["test"]}, "maxUnavailable": 1},
            {"selector": {"profiles": ["default"]}, "maxUnavailable": "25%"},
            {"selector": {"matchLabels": {"line": "2"}}, "pause": {"untilApproved": True}},
        ]
    }
    api = client.CustomObjectsApi(kube_api)
    api.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", copy.deepcopy(body)
    )
    stored = api.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )
    assert stored["spec"] == without_nulls(unstructure(load(body).spec))
    assert [s["maxUnavailable"] for s in stored["spec"]["rollout"]["steps"]] == [1, "25%", "100%"]


@pytest.mark.kube
@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (
            ("spec", "sync", "defaults"),
            {"designerSessionPolicy": "sometimes"},
            "designerSessionPolicy",
        ),
        (("spec", "sync", "defaults"), {"syncPeriod": 2}, "syncPeriod"),
        (("spec", "git"), {"repo": "", "ref": "main"}, "spec.git.repo"),
        (("spec", "git"), {"repo": "--upload-pack=x", "ref": "main"}, "spec.git.repo"),
        (("spec", "git"), {"repo": "https://h/r.git", "ref": "-x"}, "spec.git.ref"),
        (("spec", "sync", "profiles"), {}, "spec.sync.profiles"),
        (
            ("spec", "rollout"),
            {"steps": [{"selector": {"gateways": ["a"]}, "maxUnavailable": 0}]},
            "spec.rollout.steps[0].maxUnavailable",
        ),
        (
            ("spec", "rollout"),
            {"steps": [{"selector": {"gateways": ["a"]}, "maxUnavailable": "120%"}]},
            "spec.rollout.steps[0].maxUnavailable",
        ),
        (("spec", "rollout"), {"onFailure": "retry"}, "spec.rollout.onFailure"),
        (("spec", "rollout"), {"steps": [{"maxUnavailable": 1}]}, "selector"),
    ],
)
def test_the_api_server_rejects_what_the_schema_forbids(
    kube_api: client.ApiClient,
    kube_namespace: str,
    path: tuple[str, ...],
    value: Any,
    fragment: str,
) -> None:
    body = copy.deepcopy(MINIMAL)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ApiException) as info:
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
        )
    assert info.value.status == 422
    assert fragment in str(info.value.body)


@pytest.mark.kube
def test_short_name_and_printer_columns_are_served(kube_api: client.ApiClient) -> None:
    crd = client.ApiextensionsV1Api(kube_api).read_custom_resource_definition(
        "gatewaysyncs.stoker.io"
    )
    version = crd.spec.versions[0]
    assert crd.spec.names.short_names == ["gs"]
    assert [c.name for c in version.additional_printer_columns] == [
        "Ref",
        "Gateways",
        "Ready",
        "Status",
        "Restart",
        "Age",
        "Commit",
        "Profiles",
        "Last Sync",
    ]
    assert version.subresources.status is not None


@pytest.mark.kube
@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("spec", "git", "ref"), "r" * 256, "spec.git.ref: Too long"),
        (("spec", "git", "ref"), "r" * 300_000, "spec.git.ref: Too long"),
        (("spec", "sync", "defaults", "excludePatterns"), ["*"] * 257, "excludePatterns: Too many"),
        (
            ("spec", "sync", "profiles", "p" * 129),
            {"mappings": [{"source": "p", "destination": "projects"}]},
            "spec.sync.profiles: Invalid value",
        ),
    ],
)
def test_H10_the_api_server_refuses_oversized_fields_naming_them(
    kube_api: client.ApiClient,
    kube_namespace: str,
    path: tuple[str, ...],
    value: Any,
    fragment: str,
) -> None:
    body = copy.deepcopy(MINIMAL)
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ApiException) as info:
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
        )
    assert info.value.status == 422
    assert fragment in str(info.value.body)
