"""A watch dropped mid-stream recovers: a real TCP proxy between the client and the real API
server cuts the connections; the informer relists and watches again (reporting what changed
meanwhile, deletions included), and the controller still reacts to changes made while or after
the watch was broken."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_k8s.runtime import Informer
from support.gitservers import BareRepo
from support.kubeenv import ControlPlane, wait_until
from support.kubefixtures import proxied_kubeconfig
from support.tcpproxy import TcpProxy

pytestmark = pytest.mark.kube


@pytest.fixture
def proxied_core(kube_env: ControlPlane, api_proxy: TcpProxy) -> Iterator[client.CoreV1Api]:
    conf = kube_env.configuration()
    conf.host = f"https://127.0.0.1:{api_proxy.port}"
    api = client.ApiClient(conf)
    yield client.CoreV1Api(api)
    api.rest_client.pool_manager.clear()
    api.close()  # type: ignore[no-untyped-call]


def test_an_informer_relists_after_its_watch_is_cut_and_reports_what_it_missed(
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    api_proxy: TcpProxy,
    proxied_core: client.CoreV1Api,
) -> None:
    seen: list[tuple[str, str, str]] = []

    def record(kind: str, obj: Any) -> None:
        seen.append((kind, obj.metadata.name, (obj.data or {}).get("v", "")))

    for name in ("stays", "goes"):
        kube_core.create_namespaced_config_map(
            kube_namespace, {"metadata": {"name": name}, "data": {"v": "0"}}
        )
    # A watch timeout far longer than the test: only the dropped connection can end the watch.
    informer = Informer(
        proxied_core.list_namespaced_config_map, record, watch_timeout=600, namespace=kube_namespace
    ).start()
    try:
        wait_until(informer.synced.is_set, timeout=10, what="the initial list")
        connections = api_proxy.accepted
        assert api_proxy.cut() >= 2  # the open watch, both sides
        kube_core.patch_namespaced_config_map("stays", kube_namespace, {"data": {"v": "1"}})
        wait_until(
            lambda: any(e[1:] == ("stays", "1") for e in seen),
            timeout=20,
            what="a change made right after the cut",
        )
        # No connection possible: these changes can only be found by a relist.
        with api_proxy.down():
            kube_core.delete_namespaced_config_map("goes", kube_namespace)
            kube_core.create_namespaced_config_map(
                kube_namespace, {"metadata": {"name": "new"}, "data": {"v": "2"}}
            )
        wait_until(
            lambda: ("DELETED", "goes", "0") in seen and ("ADDED", "new", "2") in seen,
            timeout=30,
            what="the delete and the create made while the API server was unreachable",
        )
        assert api_proxy.accepted > connections  # it reconnected: nothing came another way
    finally:
        informer.stop()


def test_the_controller_reacts_to_changes_made_while_and_after_its_watch_broke(
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    api_proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    repo = BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{repo.path}"
    body["spec"]["polling"] = {"enabled": True, "interval": "1h"}  # only watch events drive it
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    kubeconfig = proxied_kubeconfig(kube_env, api_proxy, tmp_path / "proxied.kubeconfig")
    log = tmp_path / "controller.log"
    with log.open("wb") as out:
        controller = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stoker_agent.cli",
                "controller",
                "--no-leader-election",
                "--metrics-port",
                "0",
                "--backoff",
                "1s",  # API calls through a dead proxy fail; retry quickly
            ],
            env={**kube_env.subprocess_env(), "KUBECONFIG": str(kubeconfig)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def published() -> str | None:
        try:
            cm = kube_core.read_namespaced_config_map("stoker-metadata-minimal", kube_namespace)
        except client.exceptions.ApiException:
            return None
        return str(cm.data["commit"])

    def push_and_refresh(content: str, stamp: str) -> str:
        """A new commit and what the receiver does on a push (a direct client, not proxied)."""
        commit = repo.commit({"p/a.json": content})
        custom.patch_namespaced_custom_object(
            "stoker.io",
            "v1alpha1",
            kube_namespace,
            "gatewaysyncs",
            "minimal",
            {"metadata": {"annotations": {"stoker.io/refresh-requested-at": stamp}}},
        )
        return commit

    try:
        first = repo.rev_parse("main")
        wait_until(lambda: published() == first, timeout=30, what="the first commit")
        connections = api_proxy.accepted
        assert api_proxy.cut() >= 2
        second = push_and_refresh('{"v": 2}', "t2")  # right after the watches broke
        wait_until(lambda: published() == second, timeout=30, what="a change after the cut")
        with api_proxy.down():
            third = push_and_refresh('{"v": 3}', "t3")  # while the API server is unreachable
        wait_until(lambda: published() == third, timeout=60, what="a change made during the cut")
        assert api_proxy.accepted > connections
        assert controller.poll() is None
    finally:
        controller.terminate()
        assert controller.wait(timeout=20) == 0
        print(log.read_text()[-3000:])


def test_an_informer_recovers_from_a_silent_hang(
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    api_proxy: TcpProxy,
    proxied_core: client.CoreV1Api,
) -> None:
    seen: list[tuple[str, str]] = []
    informer = Informer(
        proxied_core.list_namespaced_config_map,
        lambda kind, obj: seen.append((kind, obj.metadata.name)),
        watch_timeout=2,
        namespace=kube_namespace,
    ).start()
    try:
        wait_until(informer.synced.is_set, timeout=10, what="the initial list")
        connections = api_proxy.accepted
        # Nothing arrives any more, not even the server closing the watch at its timeout: only
        # the client's own read timeout can end this watch.
        assert api_proxy.freeze() >= 2
        kube_core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "late"}})
        wait_until(lambda: ("ADDED", "late") in seen, timeout=60, what="recovery from the hang")
        assert api_proxy.accepted > connections
    finally:
        informer.stop()
