"""The test control plane is a real API server: conflicts, watches, selectors, schemas and RBAC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from support.kubeenv import ControlPlane, wait_until

pytestmark = pytest.mark.kube

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.testenv.stoker.io"},
    "spec": {
        "group": "smoke.testenv.stoker.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {
                                    "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
                                    "color": {"type": "string", "enum": ["red", "blue"]},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def config_map(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A ConfigMap body."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": {"k": "v0"},
    }


def test_an_update_with_a_stale_resource_version_gets_409_conflict(
    kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    kube_core.create_namespaced_config_map(kube_namespace, config_map("cm"))
    first = kube_core.read_namespaced_config_map("cm", kube_namespace)
    stale = kube_core.read_namespaced_config_map("cm", kube_namespace)
    first.data = {"k": "v1"}
    kube_core.replace_namespaced_config_map("cm", kube_namespace, first)

    stale.data = {"k": "lost update"}
    with pytest.raises(ApiException) as info:
        kube_core.replace_namespaced_config_map("cm", kube_namespace, stale)

    assert info.value.status == 409
    assert kube_core.read_namespaced_config_map("cm", kube_namespace).data == {"k": "v1"}


def test_a_watch_from_a_resource_version_sees_the_update(
    kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    created = kube_core.create_namespaced_config_map(kube_namespace, config_map("watched"))
    kube_core.patch_namespaced_config_map("watched", kube_namespace, {"data": {"k": "v2"}})

    events = []
    stream = watch.Watch().stream(
        kube_core.list_namespaced_config_map,
        kube_namespace,
        resource_version=created.metadata.resource_version,
        field_selector="metadata.name=watched",
        timeout_seconds=10,
    )
    for event in stream:
        events.append((event["type"], event["raw_object"]["data"]))
        if event["type"] == "MODIFIED":
            break

    assert events == [("MODIFIED", {"k": "v2"})]


def test_a_label_selector_returns_only_matching_objects(
    kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    kube_core.create_namespaced_config_map(
        kube_namespace, config_map("a-web", {"app": "a", "tier": "web"})
    )
    kube_core.create_namespaced_config_map(
        kube_namespace, config_map("a-db", {"app": "a", "tier": "db"})
    )
    kube_core.create_namespaced_config_map(
        kube_namespace, config_map("b-web", {"app": "b", "tier": "web"})
    )
    kube_core.create_namespaced_config_map(kube_namespace, config_map("plain"))

    def names(selector: str) -> set[str]:
        items = kube_core.list_namespaced_config_map(kube_namespace, label_selector=selector).items
        return {i.metadata.name for i in items}

    assert names("app=a,tier in (web)") == {"a-web"}
    assert names("app=a") == {"a-web", "a-db"}
    assert names("!app") == {"plain", "kube-root-ca.crt"}


def test_a_custom_resource_that_violates_the_crd_schema_is_rejected(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    crd_dir = tmp_path / "crds"
    crd_dir.mkdir()
    (crd_dir / "widgets.yaml").write_text(
        yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Note"}, WIDGET_CRD])
    )
    assert kube_env.install_crds(kube_api, [crd_dir, tmp_path / "absent"]) == [
        "widgets.smoke.testenv.stoker.io"
    ]
    custom = client.CustomObjectsApi(kube_api)
    group, version, plural = "smoke.testenv.stoker.io", "v1", "widgets"

    def widget(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": f"{group}/{version}",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": spec,
        }

    custom.create_namespaced_custom_object(
        group, version, kube_namespace, plural, widget("ok", {"replicas": 3, "color": "red"})
    )
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(
            group, version, kube_namespace, plural, widget("bad", {"replicas": 9, "color": "green"})
        )

    assert info.value.status == 422
    assert "spec.replicas" in info.value.body
    assert "spec.color" in info.value.body
    stored = custom.list_namespaced_custom_object(group, version, kube_namespace, plural)
    assert [i["metadata"]["name"] for i in stored["items"]] == ["ok"]


def test_a_service_account_is_forbidden_until_a_role_binding_grants_access(
    kube_env: ControlPlane,
    kube_core: client.CoreV1Api,
    kube_api: client.ApiClient,
    kube_namespace: str,
) -> None:
    kube_core.create_namespaced_service_account(kube_namespace, {"metadata": {"name": "reader"}})
    token_request = {"spec": {"audiences": [], "expirationSeconds": 600}}
    minted = kube_core.create_namespaced_service_account_token(
        "reader", kube_namespace, token_request
    )
    token = minted.status.token

    with kube_env.api_client(token) as sa_api:
        sa_core = client.CoreV1Api(sa_api)
        with pytest.raises(ApiException) as info:
            sa_core.list_namespaced_config_map(kube_namespace)
        assert info.value.status == 403
        assert f"system:serviceaccount:{kube_namespace}:reader" in info.value.body

        rbac = client.RbacAuthorizationV1Api(kube_api)
        rbac.create_namespaced_role(
            kube_namespace,
            {
                "metadata": {"name": "read-configmaps"},
                "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
                ],
            },
        )
        rbac.create_namespaced_role_binding(
            kube_namespace,
            {
                "metadata": {"name": "reader-reads-configmaps"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-configmaps",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "reader", "namespace": kube_namespace}
                ],
            },
        )

        def allowed() -> list[str] | None:
            try:
                items = sa_core.list_namespaced_config_map(kube_namespace).items
            except ApiException as exc:
                if exc.status == 403:
                    return None
                raise
            return [i.metadata.name for i in items]

        assert wait_until(allowed, timeout=10, what="RoleBinding to take effect") == [
            "kube-root-ca.crt"
        ]
        with pytest.raises(ApiException) as still:
            sa_core.list_namespaced_secret(kube_namespace)
        assert still.value.status == 403
