"""status.history on the real API server (issue 17 item 3): each published commit with who
asked for it (a push through the real receiver, with its delivery id; polling; a requested
ref), its outcome per gateway; kept across a controller restart; bounded in entries and
bytes, whatever was written there before."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.test_crd import MINIMAL
from k8s.test_discovery import make_pod
from k8s.test_original_bugs import report
from k8s.test_receiver import GLOBAL_TOKEN, post, receiver_url  # noqa: F401  (a fixture)
from stoker_core import approvals
from stoker_core.fleethistory import BYTE_CAP
from stoker_k8s import approvalkey
from stoker_k8s.controller import Controller
from support.gitservers import BareRepo
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube
GS = ("stoker.io", "v1alpha1")
UUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def get(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    found: Any = custom.get_namespaced_custom_object(*GS, namespace, "gatewaysyncs", "plant")
    return dict(found)


def history(custom: client.CustomObjectsApi, namespace: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get(custom, namespace)["status"]["history"]
    return found


def reconcile(controller: Controller, custom: client.CustomObjectsApi, namespace: str) -> None:
    controller.reconcile(get(custom, namespace))


def stoker_history(env: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "stoker_agent.cli", "history", *args]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env.subprocess_env(), check=False
    )


@pytest.fixture
def repo(tmp_path: Path) -> BareRepo:
    return BareRepo.create(tmp_path, "config", {"p/a.json": "{}"})


@pytest.fixture
def custom(kube_api: client.ApiClient, kube_namespace: str, repo: BareRepo) -> Any:
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = "plant"
    body["spec"]["git"]["repo"] = f"file://{repo.path}"
    body["spec"]["historyLimit"] = 3
    api = client.CustomObjectsApi(kube_api)
    api.create_namespaced_custom_object(*GS, kube_namespace, "gatewaysyncs", body)
    return api


def test_pushes_polling_and_requested_refs_are_recorded_with_their_source_across_a_restart(
    kube_env: ControlPlane,
    kube_core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kube_namespace: str,
    repo: BareRepo,
    receiver_url: str,  # noqa: F811
) -> None:
    notes = {"stoker.io/inject": "true", "stoker.io/cr-name": "plant"}
    pod = make_pod(kube_core, kube_namespace, "gw-0", sidecar=True, annotations=notes)
    first = repo.rev_parse("main")
    controller = Controller(kube_core, custom)
    reconcile(controller, custom, kube_namespace)
    report(kube_core, kube_namespace, pod, first)
    reconcile(controller, custom, kube_namespace)
    [created] = history(custom, kube_namespace)
    assert (created["commit"], created["requestedBy"]["via"]) == (first, "spec")
    assert created["outcome"] == "Complete"
    assert created["gateways"] == [
        {"name": "gw-0", "outcome": "Synced", "at": created["gateways"][0]["at"]}
    ]

    pushed = repo.commit({"p/a.json": '{"v": 2}'}, replace=False)
    push = {"ref": "refs/heads/main", "after": pushed}
    headers = {"Authorization": f"Bearer {GLOBAL_TOKEN}", "X-GitHub-Event": "push",
               "X-GitHub-Delivery": UUID}  # fmt: skip
    sent = post(receiver_url, f"/webhook/{kube_namespace}/plant", push, **headers)
    assert sent.status_code == 202
    reconcile(controller, custom, kube_namespace)
    entry = history(custom, kube_namespace)[-1]
    assert entry["commit"] == pushed
    assert {k: entry["requestedBy"][k] for k in ("via", "source", "delivery")} == {
        "via": "receiver",
        "source": "github",
        "delivery": UUID,
    }
    assert entry["gateways"][0]["outcome"] == "Pending"  # its agent has not reported it yet

    polled = repo.commit({"p/a.json": '{"v": 3}'}, replace=False)
    # a tag a release will name (created now: a pass reads every ref of the repository once)
    tagged = repo.commit({"p/a.json": '{"v": 4}'}, branch="release")
    repo.git("tag", "v4.0.0", tagged)
    restarted = Controller(kube_core, custom)  # a restart: nothing kept in memory
    reconcile(restarted, custom, kube_namespace)
    after = history(custom, kube_namespace)
    assert [e["commit"] for e in after] == [first, pushed, polled]
    assert after[-1]["requestedBy"]["via"] == "polling"  # the push's mark is not reused
    assert after[1]["outcome"] == "Superseded"

    sent = post(receiver_url, f"/webhook/{kube_namespace}/plant", {"ref": "v4.0.0"},
                Authorization=f"Bearer {GLOBAL_TOKEN}")  # fmt: skip
    assert sent.status_code == 202
    reconcile(restarted, custom, kube_namespace)
    bounded = history(custom, kube_namespace)
    assert [e["commit"] for e in bounded] == [pushed, polled, tagged]  # historyLimit: 3
    assert bounded[-1]["ref"] == "v4.0.0"
    assert bounded[-1]["requestedBy"]["source"] == "generic"
    assert bounded[-1]["requestedBy"]["delivery"].startswith("sha256:")

    version = get(custom, kube_namespace)["metadata"]["resourceVersion"]
    reconcile(restarted, custom, kube_namespace)  # nothing new: no status write
    assert get(custom, kube_namespace)["metadata"]["resourceVersion"] == version

    shown = stoker_history(kube_env, "plant", "-n", kube_namespace, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    printed = json.loads(shown.stdout)
    assert [e["commit"] for e in printed["entries"]] == [tagged, polled, pushed]  # newest first
    assert printed["entries"][-1]["requestedBy"]["delivery"] == UUID
    table = stoker_history(kube_env, "plant", "-n", kube_namespace, "--limit", "2").stdout
    assert f"receiver: github {UUID}" not in table  # only the newest two
    assert tagged[:12] in table
    assert "receiver: generic sha256:" in table
    missing = stoker_history(kube_env, "nothing", "-n", kube_namespace)
    assert missing.returncode == 1
    assert f"GatewaySync {kube_namespace}/nothing not found" in missing.stderr


def test_a_hand_written_history_too_large_is_cut_to_its_bytes_on_the_next_pass(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    """Anyone who may write the status subresource can fill it: the next pass keeps it
    within 64 KiB (the oldest entries go) and drops what is not an entry."""
    controller = Controller(kube_core, custom)
    reconcile(controller, custom, kube_namespace)
    fleet = [{"name": "gw-" + "x" * 200 + f"{i:03d}", "outcome": "Synced", "at": ""}
             for i in range(250)]  # fmt: skip
    planted = [{"commit": f"{i:040x}", "ref": "main", "gateways": fleet} for i in range(3)]
    planted.append({"commit": "", "ref": "not an entry"})
    custom.patch_namespaced_custom_object_status(
        *GS, kube_namespace, "gatewaysyncs", "plant", {"status": {"history": planted}}
    )
    assert len(json.dumps(history(custom, kube_namespace))) > 2 * BYTE_CAP
    reconcile(Controller(kube_core, custom), custom, kube_namespace)
    kept = history(custom, kube_namespace)
    assert len(json.dumps(kept, separators=(",", ":"), ensure_ascii=False)) <= BYTE_CAP
    assert kept[-1]["commit"] == get(custom, kube_namespace)["status"]["lastSyncCommit"]
    assert all(e["commit"] for e in kept)
    assert len(kept) < 4


def test_a_rollout_records_its_approver_steps_and_halt_and_leaves_unmoved_gateways_out(
    kube_core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kube_namespace: str,
    repo: BareRepo,
) -> None:
    """The approver as the webhook's stamp names it (signed here with the key the controller
    reads), the step that started, the gateway that rejected the commit; the gateway the halt
    kept back stays in the older commit's entry only."""
    rollout = {
        "approval": "required",
        "healthWindow": "1s",
        "steps": [{"name": "test", "selector": {"gateways": ["gw-0"]}}],
    }
    key = approvalkey.ensure(kube_core, kube_namespace)
    notes = {"stoker.io/inject": "true", "stoker.io/cr-name": "plant"}
    pods = [
        make_pod(kube_core, kube_namespace, f"gw-{i}", sidecar=True, annotations=notes)
        for i in range(2)
    ]

    def restarted() -> Controller:
        controller = Controller(kube_core, custom)
        controller.home = kube_namespace  # where it reads the approval key
        return controller

    first = repo.rev_parse("main")
    reconcile(restarted(), custom, kube_namespace)
    for pod in pods:
        report(kube_core, kube_namespace, pod, first)
    reconcile(restarted(), custom, kube_namespace)
    assert history(custom, kube_namespace)[-1]["outcome"] == "Complete"
    custom.patch_namespaced_custom_object(  # a rollout from now on
        *GS, kube_namespace, "gatewaysyncs", "plant", {"spec": {"rollout": rollout}}
    )

    second = repo.commit({"p/a.json": '{"v": 2}'}, replace=False)
    reconcile(restarted(), custom, kube_namespace)
    assert history(custom, kube_namespace)[-1]["outcome"] == "AwaitingApproval"
    gs = get(custom, kube_namespace)
    signed = approvals.stamp(
        key, namespace=kube_namespace, name="plant", uid=gs["metadata"]["uid"],
        gate="rollout", commit=second, by="alice@plant.example", at="2026-12-06T10:00:00Z",
    )  # fmt: skip
    custom.patch_namespaced_custom_object(
        *GS, kube_namespace, "gatewaysyncs", "plant",
        {"metadata": {"annotations": {approvals.key("rollout"): signed}}},
    )  # fmt: skip
    reconcile(restarted(), custom, kube_namespace)
    moving = history(custom, kube_namespace)[-1]
    assert moving["outcome"] == "Progressing"
    assert moving["approvedBy"] == [{"gate": "rollout", "user": "alice@plant.example"}]
    assert [s["name"] for s in moving["steps"]] == ["test"]
    assert [g["name"] for g in moving["gateways"]] == ["gw-0"]

    report(kube_core, kube_namespace, pods[0], second, "Rejected")
    reconcile(restarted(), custom, kube_namespace)
    older, halted = history(custom, kube_namespace)
    assert halted["outcome"] == "Halted"
    assert {g["name"]: g["outcome"] for g in halted["gateways"]} == {"gw-0": "Rejected"}
    assert {g["name"] for g in older["gateways"]} == {"gw-0", "gw-1"}


def test_a_pass_that_publishes_nothing_keeps_the_history_and_writes_no_status_again(
    kube_core: client.CoreV1Api, custom: client.CustomObjectsApi, kube_namespace: str
) -> None:
    """A namespace the installation no longer serves: the status says so once; the history
    stays, and the next controller's pass finds nothing to write."""
    reconcile(Controller(kube_core, custom), custom, kube_namespace)
    before = history(custom, kube_namespace)
    reconcile(Controller(kube_core, custom, namespaces=["other"]), custom, kube_namespace)
    assert history(custom, kube_namespace) == before
    later = Controller(kube_core, custom, namespaces=["other"])
    reconcile(later, custom, kube_namespace)
    writes = later.metrics.status_writes.labels(kube_namespace, "plant")._value.get()
    assert writes == 0
