"""The controller's manager on the real API server: each GatewaySync is passed over again at its
own polling interval, and a failing one backs off further even while a ref is requested (B4)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_core.requeue import Failures
from stoker_k8s.controller import Controller
from stoker_k8s.manager import Manager
from support.gitservers import BareRepo
from support.kubeenv import wait_until

pytestmark = pytest.mark.kube


@pytest.fixture
def manager(kube_api: client.ApiClient, kube_core: client.CoreV1Api) -> Iterator[Manager]:
    """A Manager (no leader election) running in this process with backoff in fractions of s."""
    running = Manager(
        Controller(kube_core, client.CustomObjectsApi(kube_api)), backoff=(0.2, 5.0), workers=2
    )
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(timeout=30)


def create(kube_api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body
    )


def cr(name: str, repo: str, interval: str) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = name
    body["spec"]["git"]["repo"] = repo
    body["spec"]["polling"] = {"enabled": True, "interval": interval}
    return body


def published(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    try:
        data = core.read_namespaced_config_map(f"stoker-metadata-{name}", namespace).data
    except client.exceptions.ApiException:
        return None
    return str(data["commit"])


def test_each_gatewaysync_is_re_resolved_at_its_own_polling_interval(
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
    manager: Manager,
) -> None:
    # A repository each: GatewaySyncs of one repository share its ls-remote answer, so "slow",
    # reconciled for any other reason (its own status write), would take the answer "fast"'s
    # polling refreshed. Each repository gets the same commits.
    repos = {name: BareRepo.create(tmp_path, name, {"p/a.json": "{}"}) for name in ("fast", "slow")}
    first = {name: repo.rev_parse("main") for name, repo in repos.items()}
    create(kube_api, kube_namespace, cr("fast", f"file://{repos['fast'].path}", "1s"))
    create(kube_api, kube_namespace, cr("slow", f"file://{repos['slow'].path}", "1h"))
    for name in ("fast", "slow"):
        wait_until(
            lambda n=name: published(kube_core, kube_namespace, n) == first[n],
            timeout=30,
            what=f"{name} to publish the first commit",
        )
    # No event touches either GatewaySync from here: only their own intervals bring them back.
    for content in ('{"v": 2}', '{"v": 3}'):
        commit = repos["fast"].commit({"p/a.json": content})
        repos["slow"].commit({"p/a.json": content})
        wait_until(
            lambda c=commit: published(kube_core, kube_namespace, "fast") == c,
            timeout=30,
            what="the 1s GatewaySync to pick up a new commit by polling",
        )
    assert published(kube_core, kube_namespace, "slow") == first["slow"]  # its hour has not passed


def test_B4_backoff_keeps_growing_while_a_bad_requested_ref_stays_set(
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
    manager: Manager,
) -> None:
    repo = BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = cr("requested", f"file://{repo.path}", "1h")
    body["metadata"]["annotations"] = {"stoker.io/requested-ref": "v9.9.9"}  # no such tag
    create(kube_api, kube_namespace, body)
    key = f"{kube_namespace}/requested"

    def failures() -> Failures:
        with manager._lock:
            return manager.failures.get(key, Failures())

    # The original reset the count on every pass while the annotation was set (30 s forever);
    # here it keeps counting, so each retry waits twice as long (stoker_core.requeue).
    wait_until(lambda: failures().count >= 4, timeout=30, what="four failed passes in a row")
    assert failures().request == "v9.9.9"
    stored = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "requested"
    )
    assert stored["metadata"]["annotations"]["stoker.io/requested-ref"] == "v9.9.9"
    conditions = {c["type"]: c for c in stored["status"]["conditions"]}
    assert conditions["RefResolved"]["status"] == "False"
    # A request that resolves resets the count: back to the polling interval.
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        "stoker.io",
        "v1alpha1",
        kube_namespace,
        "gatewaysyncs",
        "requested",
        {"metadata": {"annotations": {"stoker.io/requested-ref": "main"}}},
    )
    wait_until(lambda: failures().count == 0, timeout=30, what="the backoff to reset")
