"""The controller runtime: the work queue's guarantees, and an informer on a real API server."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client

from stoker_k8s.runtime import Informer, WorkQueue
from support.kubeenv import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_deduplicated_and_never_processed_twice_at_once() -> None:
    queue = WorkQueue(clock=Clock())
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert queue.get(timeout=0) == "a"
    queue.add("a")  # while "a" is being processed
    assert queue.get(timeout=0) == "b"
    assert queue.get(timeout=0) is None  # "a" waits until done
    queue.done("a")
    assert queue.get(timeout=0) == "a"


def test_a_delayed_key_comes_back_once_at_its_latest_schedule() -> None:
    clock = Clock()
    queue = WorkQueue(clock=clock)
    queue.add_after("k", 30)
    queue.add_after("k", 60)  # the latest decision replaces the earlier one
    clock.now = 59
    assert queue.get(timeout=0) is None
    clock.now = 60
    assert queue.get(timeout=0) == "k"
    queue.done("k")
    clock.now = 1000
    assert queue.get(timeout=0) is None  # the replaced schedule does not fire


def test_close_wakes_waiting_workers() -> None:
    queue = WorkQueue()
    got: list[Any] = []
    worker = threading.Thread(target=lambda: got.append(queue.get()))
    worker.start()
    queue.close()
    worker.join(timeout=5)
    assert got == [None]


@pytest.mark.kube
def test_an_informer_lists_then_sees_updates_and_deletes(
    kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    seen: list[tuple[str, str, str]] = []

    def record(kind: str, obj: Any) -> None:
        seen.append((kind, obj.metadata.name, (obj.data or {}).get("v", "")))

    kube_core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "before"}, "data": {"v": "0"}}
    )
    informer = Informer(
        kube_core.list_namespaced_config_map, record, watch_timeout=5, namespace=kube_namespace
    ).start()
    try:
        wait_until(informer.synced.is_set, timeout=10, what="the initial list")
        assert ("ADDED", "before", "0") in seen
        kube_core.create_namespaced_config_map(
            kube_namespace, {"metadata": {"name": "after"}, "data": {"v": "1"}}
        )
        kube_core.patch_namespaced_config_map("after", kube_namespace, {"data": {"v": "2"}})
        kube_core.delete_namespaced_config_map("before", kube_namespace)
        wait_until(lambda: ("DELETED", "before", "0") in seen, timeout=10, what="the delete")
        assert ("ADDED", "after", "1") in seen
        assert ("MODIFIED", "after", "2") in seen
    finally:
        informer.stop()
