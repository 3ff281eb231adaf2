"""The receiver's calls to the API server are bounded in time: a pooled connection that went
silent (here a real TCP proxy that black-holes it) ends a delivery's call at the client's read
timeout, so the delivery gets a 503 to send again, instead of holding a worker thread, and with
it the other deliveries, for good."""

from __future__ import annotations

import copy
import threading

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_k8s.commands.receiver import KubeStore
from support.kubeenv import ControlPlane
from support.tcpproxy import TcpProxy

pytestmark = pytest.mark.kube


def test_a_receiver_write_on_a_silent_connection_gives_up_instead_of_holding_its_thread(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str, api_proxy: TcpProxy
) -> None:
    body = copy.deepcopy(MINIMAL)
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    conf = kube_env.configuration()
    conf.host = f"https://127.0.0.1:{api_proxy.port}"
    store = KubeStore(conf)
    found = store.get(kube_namespace, "minimal", fresh=True)  # the connection the write reuses
    assert found is not None
    assert api_proxy.freeze() >= 2  # both sides of it: nothing will ever answer on it
    ended: list[BaseException | None] = []

    def annotate() -> None:
        try:
            version = found["metadata"]["resourceVersion"]
            store.annotate(kube_namespace, "minimal", {"example.com/mark": "1"}, version)
            ended.append(None)
        except Exception as e:  # the receiver answers 503 "send the event again"
            ended.append(e)

    worker = threading.Thread(target=annotate, daemon=True)
    worker.start()
    worker.join(timeout=60)  # liveness: an unbounded client waits on that connection forever
    assert not worker.is_alive(), "the delivery's write still waits on the silent connection"
    assert ended[0] is not None  # it failed, to be answered with a 503
