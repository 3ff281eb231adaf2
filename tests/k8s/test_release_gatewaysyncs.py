"""`stoker release-gatewaysyncs` (the chart's post-delete hook, issue 15 item 4) on the real API
server: Stoker's finalizer comes off every GatewaySync it is given, nothing else does, nothing is
deleted, and a finalizer someone added after the command read the list is kept."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from k8s.rbacsupport import chart_rbac, token_for
from k8s.test_chart import helm as helm  # the fixture
from k8s.test_crd import MINIMAL
from stoker_k8s.commands.release import listed, release_one
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube

STOKER = "stoker.io/finalizer"
KEEP = "example.com/keep"


def gatewaysync(
    custom: client.CustomObjectsApi, namespace: str, name: str, finalizers: list[str]
) -> dict[str, Any]:
    """A GatewaySync `name` holding `finalizers`, as the controller would leave it."""
    body = copy.deepcopy(MINIMAL)
    body["metadata"] = {"name": name, "finalizers": finalizers}
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body
    )
    return created


def finalizers(custom: client.CustomObjectsApi, namespace: str, name: str) -> list[str]:
    item = custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", name
    )
    return list(item["metadata"].get("finalizers") or [])


def release(kube_env: ControlPlane, *args: str) -> list[str]:
    """The command's output lines (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "stoker_agent.cli", "release-gatewaysyncs", *args],
        capture_output=True, text=True, env=kube_env.subprocess_env(), timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_only_stokers_finalizer_comes_off_and_every_gatewaysync_stays(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    other = kube_env.create_namespace(kube_api)
    gatewaysync(custom, kube_namespace, "shared", [STOKER, KEEP])
    gatewaysync(custom, kube_namespace, "plain", [STOKER])
    gatewaysync(custom, kube_namespace, "foreign", [KEEP])
    gatewaysync(custom, other, "elsewhere", [STOKER])

    said = release(kube_env, "--namespace", kube_namespace)

    assert said == [f"released {kube_namespace}/plain", f"released {kube_namespace}/shared"]
    assert finalizers(custom, kube_namespace, "shared") == [KEEP]
    assert finalizers(custom, kube_namespace, "plain") == []
    assert finalizers(custom, kube_namespace, "foreign") == [KEEP]
    assert finalizers(custom, other, "elsewhere") == [STOKER]  # not a namespace it was given
    # Without --namespace: every namespace; a second run has nothing left to release.
    assert f"released {other}/elsewhere" in release(kube_env)
    assert finalizers(custom, other, "elsewhere") == []
    assert release(kube_env) == []
    names = {
        i["metadata"]["name"]
        for i in custom.list_cluster_custom_object("stoker.io", "v1alpha1", "gatewaysyncs")["items"]
    }
    assert {"shared", "plain", "foreign", "elsewhere"} <= names  # nothing deleted


def test_a_gatewaysync_deleted_while_no_controller_runs_goes_once_released(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    gatewaysync(custom, kube_namespace, "doomed", [STOKER])
    custom.delete_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "doomed"
    )
    assert finalizers(custom, kube_namespace, "doomed") == [STOKER]  # held: the bug's hang

    assert release(kube_env, "-n", kube_namespace) == [f"released {kube_namespace}/doomed"]

    listed = custom.list_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs"
    )["items"]
    assert [i["metadata"]["name"] for i in listed] == []


def test_a_finalizer_added_after_the_list_was_read_is_not_overwritten(
    kube_api: client.ApiClient, kube_namespace: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    gatewaysync(custom, kube_namespace, "busy", [STOKER])
    read = finalizers(custom, kube_namespace, "busy")
    # Someone else adds theirs between the command's read and its patch.
    custom.patch_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "busy",
        {"metadata": {"finalizers": [STOKER, "example.com/late"]}},
    )  # fmt: skip

    assert release_one(custom, kube_namespace, "busy", read) is True

    assert finalizers(custom, kube_namespace, "busy") == ["example.com/late"]
    # Gone meanwhile, or no longer holding Stoker's finalizer: nothing to do, no error.
    assert release_one(custom, kube_namespace, "busy", ["example.com/late"]) is False
    assert release_one(custom, kube_namespace, "absent", [STOKER]) is False


def test_the_hooks_account_may_release_with_list_and_patch_alone(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)
    gatewaysync(custom, kube_namespace, "held", [STOKER, KEEP])
    with chart_rbac(helm, kube_env, kube_api) as (release, home):
        token = token_for(client.CoreV1Api(kube_api), home, f"{release}-release-gatewaysyncs")
        with kube_env.api_client(token) as api:
            hook = client.CustomObjectsApi(api)
            [item] = [i for i in listed(hook, (kube_namespace,)) if i["metadata"]["name"] == "held"]
            stale = [STOKER]  # a stale read: the retry re-reads with `list`, no `get` needed
            assert release_one(hook, kube_namespace, "held", stale) is True
            assert item["metadata"]["finalizers"] == [STOKER, KEEP]
            with pytest.raises(ApiException, match="Forbidden"):  # nothing beyond the table
                hook.delete_namespaced_custom_object(
                    "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "held"
                )
    assert finalizers(custom, kube_namespace, "held") == [KEEP]
