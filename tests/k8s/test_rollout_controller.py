"""The controller acting on `spec.rollout` (issue 17) on the real API server with real agent
processes against gateway simulators: a two-step rollout gives the first step the new commit
and the second only once the first has held for its health window (as its agent measured it);
a new Controller (a restart, a leader change) resumes from `status.rollout` without starting a
step again; events say each step, once; a GatewaySync without a rollout publishes and writes
exactly what it did before.

The controller is driven pass by pass in this process (k8s.rollout_fleet: a new Controller
each pass, so every pass is also a restart)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from k8s.rollout_fleet import IN_STEP, Fleet, approval_webhook, conditions, copy_project
from k8s.rollout_fleet import fleet as fleet  # the fixture
from stoker_k8s.controller import Controller
from stoker_k8s.manager import Manager
from stoker_k8s.metrics import ControllerMetrics
from support.kubeenv import ControlPlane, wait_until

pytestmark = pytest.mark.kube
WINDOW = 4.0  # seconds: the agent checks its gateway every 2 s within it
PHASES = ("waiting", "moving", "done", "failed", "uncounted")


def two_steps(body: dict[str, Any]) -> None:
    body["spec"]["rollout"] = {
        "healthWindow": f"{WINDOW:.0f}s",
        "steps": [{"name": "first", "selector": {"gateways": ["gw-blue"]}}],
    }  # the red gateway no step selects moves last, as step 2


def events(fleet: Fleet) -> list[tuple[str, str]]:
    """The GatewaySync's events (reason, message), in no particular order."""
    found = client.CoreV1Api(fleet.core.api_client).list_namespaced_event(fleet.namespace).items
    return [(e.reason, e.message) for e in found if e.involved_object.name == fleet.name]


def start(fleet: Fleet) -> str:
    """The two gateways (blue selected by step 1, red by none), settled at the first commit."""
    fleet.pod("blue-0", "blue", "gw-blue")
    fleet.pod("red-0", "red", "gw-red")
    cr = fleet.reconcile()
    first = fleet.head()
    assert cr["status"]["rollout"]["commit"] == first  # seen first: settled at its commit
    assert cr["status"]["rollout"]["pendingCommit"] == ""
    fleet.agent("blue-0", "blue", "gw-blue")
    fleet.agent("red-0", "red", "gw-red")
    fleet.reported("blue-0", IN_STEP, first)
    fleet.reported("red-0", IN_STEP, first)
    return first


def test_a_two_step_rollout_moves_the_second_step_only_after_the_first_held_for_its_window(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps)
    old = start(fleet)
    new = fleet.push("v2")

    cr = fleet.reconcile()
    data = fleet.published()
    assert (data["format"], data["commit"], data["healthWindow"]) == ("2", old, "4s")
    assert fleet.target("gw-blue") == new
    assert fleet.target("gw-red") == old  # the agents of step 2 are held at the baseline
    progress = conditions(cr)["Progressing"]
    assert (progress["status"], progress["reason"]) == ("True", "RolloutProgressing")
    assert "step 1/2 first" in progress["message"]
    targets = {g["name"]: g["targetCommit"] for g in cr["status"]["discoveredGateways"]}
    assert targets == {"gw-blue": new, "gw-red": old}
    record = cr["status"]["rollout"]
    assert (record["commit"], record["baseline"], record["pendingCommit"]) == (new, old, new)

    # Pass by pass until red is given the commit: until then blue must not have held for the
    # whole window yet, as its agent measured it; red stays at the old commit meanwhile.
    def red_moves(cr: dict[str, Any]) -> dict[str, Any] | None:
        if fleet.target("gw-red") == new:
            return fleet.report("blue-0")
        assert fleet.report("red-0").get("commit") == old
        return None

    blue = fleet.drive(red_moves, what="step 2 to start")
    assert blue["commit"] == new
    assert blue["health"]["commit"] == new
    assert blue["health"]["healthyFor"] >= WINDOW
    cr = fleet.get()
    assert len(cr["status"]["rollout"]["finished"]) == 1  # step 1 was done first

    def complete(cr: dict[str, Any]) -> dict[str, Any] | None:
        return cr if conditions(cr)["Progressing"]["reason"] == "RolloutComplete" else None

    cr = fleet.drive(complete, what="the rollout to complete")
    assert fleet.report("red-0")["commit"] == new
    data = fleet.published()
    assert data["commit"] == new
    assert "targets" not in data
    assert cr["status"]["rollout"]["pendingCommit"] == ""
    said = sorted((r, m) for r, m in events(fleet) if r.startswith("Rollout"))
    short = new[:12]
    assert said == [  # one each: every pass was a new Controller
        ("RolloutComplete", f"commit {short} reached every gateway"),
        ("RolloutStepDone", f"commit {short}: step 1/2 first is done"),
        ("RolloutStepDone", f"commit {short}: step 2/2 unselected is done"),
        ("RolloutStepStarted", f"commit {short}: step 1/2 first started"),
        ("RolloutStepStarted", f"commit {short}: step 2/2 unselected started"),
    ]


def test_a_new_controller_resumes_from_status_rollout_without_starting_the_step_again(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps)
    old = start(fleet)
    fleet.stop_agent("blue-0")  # the first step cannot finish while we look
    new = fleet.push("v2")
    cr = fleet.reconcile()
    record = cr["status"]["rollout"]
    assert record["started"]
    assert not record["finished"]

    for _ in range(3):  # a restart, then a leader change: each a new Controller
        after = Controller(fleet.core, fleet.custom)
        after.reconcile(fleet.get())
        cr = fleet.get()
        assert cr["status"]["rollout"]["started"] == record["started"]
        assert cr["status"]["rollout"]["moved"] == ["gw-blue"]
        assert fleet.target("gw-blue") == new
        assert fleet.target("gw-red") == old
    labels = {"namespace": fleet.namespace, "name": fleet.name}
    sample = after.metrics.registry.get_sample_value
    assert sample("stoker_rollout_step", labels) == 1
    phases = {p: sample("stoker_rollout_gateways", {**labels, "phase": p}) for p in PHASES}
    assert phases == {"waiting": 1, "moving": 1, "done": 0, "failed": 0, "uncounted": 0}
    started = [reason for reason, _ in events(fleet) if reason == "RolloutStepStarted"]
    assert started == ["RolloutStepStarted"]  # said once, not once per controller

    fleet.agent("blue-0", "blue", "gw-blue")  # the step goes on where it was
    fleet.drive(lambda cr: fleet.target("gw-red") == new, what="step 2 to start")


def test_a_gatewaysync_without_a_rollout_moves_every_gateway_at_once_as_before(
    fleet: Fleet,
) -> None:
    fleet.create()
    fleet.pod("blue-0", "blue", "gw-blue")
    fleet.pod("red-0", "red", "gw-red")
    fleet.reconcile()
    fleet.agent("blue-0", "blue", "gw-blue")
    fleet.agent("red-0", "red", "gw-red")
    new = fleet.push("v2")
    cr = fleet.reconcile()
    data = fleet.published()
    assert data["format"] == "1"
    assert data["commit"] == new
    assert "targets" not in data
    assert "healthWindow" not in data
    assert "rollout" not in cr["status"]
    assert "Progressing" not in conditions(cr)
    assert {g["targetCommit"] for g in cr["status"]["discoveredGateways"]} == {new}
    fleet.reported("blue-0", IN_STEP, new)
    fleet.reported("red-0", IN_STEP, new)


def test_removing_the_rollout_publishes_the_commit_to_all_and_drops_its_status(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps)
    start(fleet)
    fleet.stop_agent("blue-0")
    new = fleet.push("v2")
    cr = fleet.reconcile()
    assert fleet.target("gw-red") != new
    ctl = Controller(fleet.core, fleet.custom)
    ctl.reconcile(fleet.get())
    labels = {"namespace": fleet.namespace, "name": fleet.name}
    assert ctl.metrics.registry.get_sample_value("stoker_rollout_step", labels) == 1
    fleet.patch({"spec": {"rollout": None}})
    ctl.reconcile(fleet.get())
    cr = fleet.get()
    assert ctl.metrics.registry.get_sample_value("stoker_rollout_step", labels) is None
    assert fleet.published()["format"] == "1"
    assert fleet.target("gw-red") == new
    assert "rollout" not in cr["status"]
    assert "Progressing" not in conditions(cr)


def test_a_moving_rollout_is_passed_over_again_within_seconds_whatever_the_polling(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps)  # polling hourly
    fleet.pod("blue-0", "blue", "gw-blue")  # no agent: the first step never finishes
    fleet.reconcile()
    fleet.push("v2")
    metrics = ControllerMetrics()
    manager = Manager(Controller(fleet.core, fleet.custom, metrics), workers=1)
    stop = threading.Event()
    thread = threading.Thread(target=manager.run, args=(stop,), daemon=True)
    thread.start()
    labels = {"namespace": fleet.namespace, "name": fleet.name, "result": "success"}

    def passes() -> float:
        return metrics.registry.get_sample_value("stoker_controller_reconcile_total", labels) or 0

    try:
        wait_until(lambda: passes() >= 1, timeout=30, what="the manager's first pass")
        fleet.patch({"metadata": {"annotations": {"stoker.io/refresh-requested-at": "now"}}})
        wait_until(
            lambda: (
                conditions(fleet.get()).get("Progressing", {}).get("reason") == "RolloutProgressing"
            ),
            timeout=30,
            what="the rollout to move",
        )
        seen = passes()
        # Every 5 s while it moves (the hourly polling alone: none for an hour)
        wait_until(lambda: passes() >= seen + 2, timeout=30, what="two more passes")
    finally:
        stop.set()
        thread.join(timeout=30)


def test_stoker_rollout_resume_starts_the_halted_commit_again_from_its_first_step(
    fleet: Fleet,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAMESPACE", kube_namespace)  # the controller's approval key Secret
    fleet.create(two_steps)
    fleet.pod("blue-0", "blue", "gw-blue")
    fleet.pod("blue-1", "blue", "gw-blue-1")  # no step selects it: step 2
    fleet.reconcile()
    old = fleet.head()
    fleet.agent("blue-0", "blue", "gw-blue")
    fleet.agent("blue-1", "blue", "gw-blue-1")
    fleet.reported("blue-0", IN_STEP, old)
    fleet.reported("blue-1", IN_STEP, old)
    fleet.sims["blue-1"].refused_projects.add("release-v2")
    new = fleet.push("v2", lambda repo: copy_project(repo, "release-v2"))

    cr = fleet.drive(reason("RolloutHalted"), what="the rollout to halt on step 2")
    assert cr["status"]["rollout"]["halted"]["gateway"] == "gw-blue-1"
    fleet.reported("blue-1", IN_STEP, old)  # sent back
    fleet.sims["blue-1"].refused_projects.clear()  # the plant fixed the gateway
    for seen in fleet.passes(3):  # halted it stays: the fix alone retries nothing
        assert conditions(seen)["Progressing"]["reason"] == "RolloutHalted"
    assert halted_gauge(fleet) == 1  # StokerRolloutHalted fires on it

    with approval_webhook(kube_env, kube_api, kube_namespace, tmp_path):
        resume = [sys.executable, "-m", "stoker_agent.cli", "rollout", "resume", fleet.name]
        resume += ["-n", kube_namespace]

        def resumed() -> bool:  # the API server calls a new webhook after a short delay
            env = {**kube_env.subprocess_env(), "NO_COLOR": "1"}
            return subprocess.run(resume, env=env, capture_output=True, check=False).returncode == 0

        wait_until(resumed, timeout=30, what="stoker rollout resume to be stamped")
        cr = fleet.drive(reason("RolloutComplete"), what="the resumed rollout to complete")
    fleet.reported("blue-1", IN_STEP, new)
    assert halted_gauge(fleet) == 0
    record = cr["status"]["rollout"]
    assert "resume" in record["approvals"]
    assert record["approvedBy"]["resume"]  # the user the webhook stamped
    said = [reason for reason, _ in events(fleet)]
    assert said.count("RolloutHalted") == 1
    assert said.count("RolloutComplete") == 1
    assert said.count("RolloutStepStarted") == 4  # steps 1 and 2, then both again
    approved = [m for r, m in events(fleet) if r == "RolloutApproved"]
    assert approved == [
        f"resume approved for commit {new[:12]} by {record['approvedBy']['resume']}"
    ]


def halted_gauge(fleet: Fleet) -> float | None:
    """`stoker_rollout_halted` as a controller that has just read the GatewaySync reports it."""
    ctl = Controller(fleet.core, fleet.custom)
    ctl.reconcile(fleet.get())
    labels = {"namespace": fleet.namespace, "name": fleet.name}
    return ctl.metrics.registry.get_sample_value("stoker_rollout_halted", labels)


def reason(wanted: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """A `drive` condition: the CR once `Progressing` has this reason."""
    return lambda cr: cr if conditions(cr).get("Progressing", {}).get("reason") == wanted else None
