"""Lease leader election on the real API server: one holder, renewal, failover."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from stoker_k8s.leader import LeaderElector

pytestmark = pytest.mark.kube


def test_one_leader_renews_and_another_takes_over_when_it_stops(
    kube_api: client.ApiClient, kube_namespace: str
) -> None:
    api = client.CoordinationV1Api(kube_api)
    first = LeaderElector(api, kube_namespace, "stoker-controller", "replica-a", lease_seconds=4)
    second = LeaderElector(api, kube_namespace, "stoker-controller", "replica-b", lease_seconds=4)
    assert first.try_acquire_or_renew() is True
    assert second.try_acquire_or_renew() is False
    time.sleep(1.5)
    assert first.try_acquire_or_renew() is True  # renewed within the lease
    time.sleep(1.5)
    assert second.try_acquire_or_renew() is False  # the renewal kept it
    time.sleep(5)  # replica-a stops renewing; the lease runs out
    assert second.try_acquire_or_renew() is True
    assert first.try_acquire_or_renew() is False
    lease = api.read_namespaced_lease("stoker-controller", kube_namespace)
    assert lease.spec.holder_identity == "replica-b"
    assert lease.spec.lease_transitions == 1
