"""The controller's metrics on the real API server: each `git ls-remote` that resolves a ref is
timed, refs that do not resolve are counted, and every series of a deleted GatewaySync goes with
it (the original re-created them in the pass that deleted it, and never removed the rest: B21)."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_k8s.controller import Controller
from stoker_k8s.manager import Manager
from support.gitservers import BareRepo
from support.kubeenv import wait_until

pytestmark = pytest.mark.kube
GROUP, VERSION, PLURAL = "stoker.io", "v1alpha1", "gatewaysyncs"


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def create(
    custom: client.CustomObjectsApi, namespace: str, name: str, repo: str, ref: str = "main"
) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = name
    body["spec"]["git"].update(repo=repo, ref=ref)
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def series_of(controller: Controller, namespace: str, name: str) -> list[str]:
    """Every sample the controller exports for GatewaySync `namespace/name`."""
    return [
        sample.name
        for family in controller.metrics.registry.collect()
        for sample in family.samples
        if sample.labels.get("namespace") == namespace and sample.labels.get("name") == name
    ]


def value(controller: Controller, metric: str, namespace: str, name: str) -> float | None:
    labels = {"namespace": namespace, "name": name}
    return controller.metrics.registry.get_sample_value(metric, labels)


def test_each_ls_remote_is_timed_and_refs_that_do_not_resolve_are_counted(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    repo = f"file://{tmp_path / 'config.git'}"
    custom = client.CustomObjectsApi(kube_api)
    controller = Controller(kube_core, custom)
    create(custom, kube_namespace, "good", repo)
    controller.reconcile(get(custom, kube_namespace, "good"))
    controller.reconcile(get(custom, kube_namespace, "good"))  # the cached answer: not timed
    duration = "stoker_controller_ref_resolve_duration_seconds_count"
    assert value(controller, duration, kube_namespace, "good") == 1
    assert not value(
        controller, "stoker_controller_ref_resolve_errors_total", kube_namespace, "good"
    )
    create(custom, kube_namespace, "typo", repo, ref="mian")
    for _ in range(2):
        controller.reconcile(get(custom, kube_namespace, "typo"))
    errors = value(controller, "stoker_controller_ref_resolve_errors_total", kube_namespace, "typo")
    assert errors == 2
    create(custom, kube_namespace, "gone", f"file://{tmp_path / 'nothing-here.git'}")
    controller.reconcile(get(custom, kube_namespace, "gone"))
    assert value(controller, duration, kube_namespace, "gone") == 1  # a failed ls-remote too
    errors = value(controller, "stoker_controller_ref_resolve_errors_total", kube_namespace, "gone")
    assert errors == 1


def test_b21_every_series_of_a_deleted_gatewaysync_is_removed_with_it(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    repo = f"file://{tmp_path / 'config.git'}"
    custom = client.CustomObjectsApi(kube_api)
    controller = Controller(kube_core, custom)
    for name in ("doomed", "kept"):
        create(custom, kube_namespace, name, repo)
        controller.reconcile(get(custom, kube_namespace, name))
        controller.reconcile(get(custom, kube_namespace, name))
    before = set(series_of(controller, kube_namespace, "doomed"))
    assert {
        "stoker_controller_reconcile_total",
        "stoker_controller_reconcile_duration_seconds_count",
        "stoker_controller_gateways_discovered",
        "stoker_controller_ref_resolve_duration_seconds_count",
    } <= before
    custom.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "doomed")
    controller.reconcile(get(custom, kube_namespace, "doomed"))  # with deletionTimestamp
    assert series_of(controller, kube_namespace, "doomed") == []
    kept = set(series_of(controller, kube_namespace, "kept"))  # its ref came from the cache
    assert {"stoker_controller_reconcile_total", "stoker_controller_gateways_discovered"} <= kept


def test_b21_series_of_a_gatewaysync_deleted_without_a_pass_of_ours_are_removed_too(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    # In a namespace this installation does not serve, the controller adds no finalizer: the
    # deletion is immediate and only the watch's DELETED event says it happened.
    custom = client.CustomObjectsApi(kube_api)
    controller = Controller(kube_core, custom, namespaces=["not-" + kube_namespace])
    manager = Manager(controller, backoff=(0.2, 5.0), workers=1)
    stop = threading.Event()
    running = threading.Thread(target=manager.run, args=(stop,), daemon=True)
    running.start()
    try:
        create(custom, kube_namespace, "elsewhere", f"file://{tmp_path / 'unused.git'}")
        wait_until(
            lambda: (
                "stoker_controller_reconcile_total"
                in series_of(controller, kube_namespace, "elsewhere")
            ),
            timeout=30,
            what="a pass over the GatewaySync",
        )
        custom.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "elsewhere")
        wait_until(
            lambda: series_of(controller, kube_namespace, "elsewhere") == [],
            timeout=30,
            what="its series to go with it",
        )
    finally:
        stop.set()
        running.join(timeout=30)
