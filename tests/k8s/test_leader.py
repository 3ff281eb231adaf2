"""Lease leader election on the real API server: one holder, renewal, failover; and two
`stoker controller` processes where only the leader reconciles until it is killed."""

from __future__ import annotations

import copy
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_k8s.leader import LeaderElector
from support.gitservers import BareRepo
from support.kubeenv import ControlPlane, free_port, wait_until
from support.tcpproxy import TcpProxy

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


def serving(metrics_port: int) -> bool:
    """Whether a controller process answers on its metrics port."""
    try:
        return requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).ok
    except requests.ConnectionError:
        return False


def reconciles(metrics_port: int) -> float:
    """The sum of stoker_controller_reconcile_total scraped from one controller process."""
    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("stoker_controller_reconcile_total{")
    )


def test_two_controller_processes_only_the_leader_reconciles_and_the_other_takes_over(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    core = client.CoreV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    leases = client.CoordinationV1Api(kube_api)
    repo = BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{repo.path}"
    body["spec"]["polling"] = {"enabled": True, "interval": "1h"}  # only events drive it
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )

    def published() -> str | None:
        try:
            cm = core.read_namespaced_config_map("stoker-metadata-minimal", kube_namespace)
        except client.exceptions.ApiException:
            return None
        return str(cm.data["commit"])

    def holder() -> str | None:
        try:
            lease = leases.read_namespaced_lease("stoker-controller", kube_namespace)
        except client.exceptions.ApiException:
            return None
        return str(lease.spec.holder_identity)

    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name in ("a", "b"):
            port = free_port()
            with (tmp_path / f"controller-{name}.log").open("wb") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "stoker_agent.cli",
                        "controller",
                        "--lease-namespace",
                        kube_namespace,
                        "--lease-seconds",
                        "3",
                        "--metrics-port",
                        str(port),
                    ],
                    env=kube_env.subprocess_env(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            procs[f"{socket.gethostname()}-{proc.pid}"] = (proc, port)
            if name == "a":  # the first one started leads; the second joins as a follower
                wait_until(lambda: holder() in procs, timeout=30, what="a leader")
        first = repo.rev_parse("main")
        wait_until(lambda: published() == first, timeout=30, what="the leader to reconcile")
        leader = holder()
        assert leader in procs
        [follower] = [identity for identity in procs if identity != leader]
        wait_until(lambda: serving(procs[follower][1]), timeout=30, what="the follower to run")
        assert reconciles(procs[leader][1]) > 0
        second = repo.commit({"p/a.json": '{"v": 2}'})
        custom.patch_namespaced_custom_object(
            "stoker.io",
            "v1alpha1",
            kube_namespace,
            "gatewaysyncs",
            "minimal",
            {"metadata": {"annotations": {"stoker.io/refresh-requested-at": "t2"}}},
        )
        wait_until(lambda: published() == second, timeout=30, what="the leader to react")
        assert reconciles(procs[follower][1]) == 0  # the follower watched, but never reconciled

        procs[leader][0].send_signal(signal.SIGKILL)  # no chance to release the Lease
        procs[leader][0].wait(timeout=10)
        wait_until(lambda: holder() == follower, timeout=30, what="the follower to take over")
        third = repo.commit({"p/a.json": '{"v": 3}'})
        custom.patch_namespaced_custom_object(
            "stoker.io",
            "v1alpha1",
            kube_namespace,
            "gatewaysyncs",
            "minimal",
            {"metadata": {"annotations": {"stoker.io/refresh-requested-at": "t3"}}},
        )
        wait_until(lambda: published() == third, timeout=30, what="the new leader to reconcile")
        assert reconciles(procs[follower][1]) > 0
        lease = leases.read_namespaced_lease("stoker-controller", kube_namespace)
        assert lease.spec.lease_transitions == 1
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)
        for log in sorted(tmp_path.glob("controller-*.log")):
            print(log.name, log.read_text()[-2000:])


def test_a_renewal_over_a_hung_connection_does_not_block_the_leader(
    kube_env: ControlPlane, kube_namespace: str
) -> None:
    url = urlsplit(kube_env.server)
    with TcpProxy((url.hostname or "127.0.0.1", url.port or 443)) as proxy:
        conf = kube_env.configuration()
        conf.host = f"https://127.0.0.1:{proxy.port}"
        api = client.ApiClient(conf)
        try:
            elector = LeaderElector(
                client.CoordinationV1Api(api),
                kube_namespace,
                "stoker-controller",
                "a",
                lease_seconds=3,
            )
            assert elector.try_acquire_or_renew() is True
            assert proxy.freeze() >= 2  # the pooled connection now swallows everything
            answers: list[object] = []

            def renew() -> None:
                try:
                    answers.append(elector.try_acquire_or_renew())
                except Exception as e:  # a timeout the manager turns into "not leading"
                    answers.append(e)

            worker = threading.Thread(target=renew, daemon=True)
            worker.start()
            worker.join(timeout=60)  # a hang detector, not a speed goal
            assert answers, "the renewal hung on a silent connection"
        finally:
            api.rest_client.pool_manager.clear()
            api.close()  # type: ignore[no-untyped-call]
