"""The controller's calls to the API server are bounded in time: a pooled connection that went
silent (an API server restarted behind a load balancer, a dropped NAT flow; here a real TCP
proxy that black-holes it) ends the call at the client's read timeout, and the pass with an
error the manager retries on a new connection, instead of holding the reconcile worker, and
with it the GatewaySync, for good: no status ConfigMap would be made for a new pod, and no
agent's report would land (one suspect of the fleet benchmark's 50-agent start-up time-out)."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest
from kubernetes import client
from urllib3.exceptions import ReadTimeoutError

from k8s.test_crd import MINIMAL
from stoker_k8s.connection import bounded_client
from stoker_k8s.controller import Controller
from support.kubeenv import ControlPlane
from support.tcpproxy import TcpProxy

pytestmark = pytest.mark.kube


def test_a_controller_call_on_a_silent_connection_times_out_and_the_pass_goes_on(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str, api_proxy: TcpProxy
) -> None:
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = "file:///nonexistent/plant.git"  # fails at once: no network
    admin = client.CustomObjectsApi(kube_api)
    admin.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    conf = kube_env.configuration()
    conf.host = f"https://127.0.0.1:{api_proxy.port}"
    api = bounded_client(conf, timeout=(2.0, 3.0))
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    item: Any = custom.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )  # the connection the pass will take from the pool
    assert api_proxy.freeze() >= 2  # both sides of it: nothing will ever answer on it
    ended: list[object] = []

    def reconcile() -> None:
        try:
            ended.append(Controller(core, custom).reconcile(item))
        except Exception as e:  # the manager logs it and queues the GatewaySync again
            ended.append(e)

    worker = threading.Thread(target=reconcile, daemon=True)
    worker.start()
    worker.join(timeout=60)  # liveness: a plain client waits on that connection forever
    assert not worker.is_alive(), "the reconcile still waits on the silent connection"
    assert isinstance(ended[0], ReadTimeoutError), ended[0]  # a PATCH is not retried by urllib3
    Controller(core, custom).reconcile(item)  # the next pass: a new connection, and it goes on
    written = admin.get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "minimal"
    )
    assert written.get("status", {}).get("conditions")  # that pass wrote its status
    api.rest_client.pool_manager.clear()
    api.close()  # type: ignore[no-untyped-call]
