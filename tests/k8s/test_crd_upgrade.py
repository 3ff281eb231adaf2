"""Upgrades with an old CRD left in place (Helm never upgrades `crds/`), on the real API server:
the controller says at start, in one log line and one event per GatewaySync, which fields and
printer columns the installed CRD lacks and the command that upgrades it; and it writes only
what that CRD keeps, so a restarted controller sends no status patch that the API server would
prune again (the patch loop) (issue 16, item 6)."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_core import crdfit
from stoker_core.schema import crd
from stoker_k8s import crdcheck
from support.gitservers import BareRepo
from support.kubeenv import ControlPlane, free_port, wait_until

pytestmark = pytest.mark.kube
GS = ("stoker.io", "v1alpha1")
NAME = "gatewaysyncs.stoker.io"


def older_crd() -> dict[str, Any]:
    """This release's CRD as an earlier release might have shipped it: without the status
    fields profileCount and discoveredGateways[].agentVersion, nor the Profiles column."""
    old = crd()
    [version] = old["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    del status["profileCount"]
    del status["discoveredGateways"]["items"]["properties"]["agentVersion"]
    columns = version["additionalPrinterColumns"]
    version["additionalPrinterColumns"] = [c for c in columns if c["name"] != "Profiles"]
    return old


NO_GAPS = crdfit.Gaps()


def gaps(api: client.ApiClient, unknown: crdfit.Gaps = NO_GAPS) -> crdfit.Gaps:
    """What the served CRD lacks now (`unknown` while the API server republishes it)."""
    checked = crdcheck.check(api)
    return unknown if checked is None else checked[0]


@pytest.fixture
def old_crd(kube_env: ControlPlane, kube_api: client.ApiClient) -> Iterator[None]:
    """The older CRD installed for one test (served as such), then this release's again."""
    kube_env.install_crds(kube_api, documents=[older_crd()])
    wait_until(
        lambda: "status.profileCount" in gaps(kube_api).fields,
        timeout=30,
        what="the API server to publish the older schema",
    )
    try:
        yield
    finally:
        kube_env.install_crds(kube_api, documents=[crd()])
        wait_until(
            lambda: not gaps(kube_api, crdfit.Gaps(fields=("unknown",))),
            timeout=30,
            what="the API server to publish this release's schema again",
        )


def status_writes(port: int, namespace: str) -> float:
    """The status writes the controller behind metrics `port` sent for `namespace`/minimal
    (its own count: the API server's would include other tests' controllers)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("stoker_controller_status_writes_total{")
        and f'namespace="{namespace}"' in line
        and 'name="minimal"' in line
    )


def reconciled(port: int) -> bool:
    """Whether the controller behind metrics `port` has finished a pass."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return False
    return any(
        line.startswith("stoker_controller_reconcile_total{") and not line.endswith(" 0.0")
        for line in text.splitlines()
    )


def run_controller(kube_env: ControlPlane, namespace: str, log: Path) -> tuple[Any, int]:
    """`stoker controller` as a process serving `namespace`, logging to `log`."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stoker_agent.cli",
                "controller",
                "--no-leader-election",
                "--log-format",
                "text",
                "--metrics-port",
                str(port),
            ],
            env={**kube_env.subprocess_env(), "STOKER_NAMESPACES": namespace},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, port


def stop(proc: Any) -> None:
    proc.terminate()
    proc.wait(timeout=20)


def test_a_controller_started_on_an_older_crd_says_what_it_lacks_and_sends_no_patch_loop(
    old_crd: None,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})
    body = copy.deepcopy(MINIMAL)
    body["spec"]["git"]["repo"] = f"file://{tmp_path / 'config.git'}"
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", body)
    log = tmp_path / "controller.log"

    proc, port = run_controller(kube_env, kube_namespace, log)
    try:
        wait_until(lambda: reconciled(port), timeout=60, what="the controller's first pass")
        # That pass may only have added the finalizer; the status follows on the next one.
        wait_until(
            lambda: status_writes(port, kube_namespace) >= 1,
            timeout=60,
            what="the controller's first status write",
        )
    finally:
        stop(proc)
    stored = custom.get_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", "minimal")
    assert stored["status"]["conditions"]  # it wrote what the old CRD keeps
    assert "profileCount" not in stored["status"]  # pruned by the API server, as expected

    # Restarted (or a new leader): nothing changed, so nothing is sent, though what it
    # computes holds fields the old CRD prunes.
    proc, port = run_controller(kube_env, kube_namespace, log)
    try:
        wait_until(lambda: reconciled(port), timeout=60, what="the restarted controller's pass")
        assert status_writes(port, kube_namespace) == 0
    finally:
        stop(proc)

    said = [line for line in log.read_text().splitlines() if "CRD is older" in line]
    assert len(said) == 2  # one line per start
    for wanted in (
        "status.profileCount",
        "status.discoveredGateways[].agentVersion",
        "printer columns Profiles",
        crdfit.UPGRADE,
    ):
        assert wanted in said[0]
    events = [
        e
        for e in kube_core.list_namespaced_event(kube_namespace).items
        if e.reason == "CRDOutdated"
    ]
    assert len(events) == 2  # one per GatewaySync and start
    assert events[0].type == "Warning"
    assert crdfit.UPGRADE in events[0].message


def test_this_release_s_crd_has_no_gaps(kube_api: client.ApiClient) -> None:
    checked = crdcheck.check(kube_api)
    assert checked is not None
    assert not checked[0], checked[0].message()
