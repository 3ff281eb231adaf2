"""Fleet rollouts on the real API server with real agent processes against gateway simulators
(issue 17, Acceptance): a rejected commit halts the rollout with the gateways not yet moved
untouched on their disks; `onFailure: rollback` sends the first step back; a redundant pair
with `applyOnBackup: true` has both nodes written, never at once; and the interactions (a newer
commit mid-rollout, `paused`, `dryRun` gateways, a pod discovered mid-rollout, an agent of the
previous release that reads no targets).

The controller is driven pass by pass in this process (k8s.rollout_fleet); health windows are
1 s so each step costs seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conftest import git
from k8s.rollout_fleet import (
    IN_STEP,
    Fleet,
    approval_webhook,
    conditions,
    copy_project,
    previous_release,
)
from k8s.rollout_fleet import fleet as fleet  # the fixture
from support.kubeenv import ControlPlane, wait_until
from support.kubelet import delete_pod

pytestmark = pytest.mark.kube
LINE = "plant.example/line"
WAVE = "plant.example/wave"
NEW_PROJECT = "release-v2"  # the project the new commit adds; a refusing gateway rejects it


def rollout(steps: list[dict[str, Any]], **options: Any) -> Callable[[dict[str, Any]], None]:
    """A GatewaySync change adding `spec.rollout` with these steps and a 1 s health window."""

    def change(body: dict[str, Any]) -> None:
        body["spec"]["rollout"] = {"healthWindow": "1s", "steps": steps, **options}

    return change


def progressing(cr: dict[str, Any]) -> dict[str, Any]:
    return conditions(cr).get("Progressing", {})


def reason(wanted: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """A `drive` condition: the CR once `Progressing` has this reason."""
    return lambda cr: cr if progressing(cr).get("reason") == wanted else None


def state(cr: dict[str, Any]) -> dict[str, Any]:
    return dict(cr.get("status", {}).get("rollout") or {})


def settled(fleet: Fleet, gateways: dict[str, dict[str, str]], profile: str = "blue") -> str:
    """Create the pods (name → labels; the gateway is named as its pod), publish, start their
    agents and wait until each reports it applied the first commit, which is returned."""
    for pod, labels in gateways.items():
        fleet.pod(pod, profile, pod, labels=labels)
    fleet.reconcile()  # a GatewaySync seen for the first time is settled at its commit
    first = fleet.head()
    for pod in gateways:
        fleet.agent(pod, profile, pod)
    for pod in gateways:
        fleet.reported(pod, IN_STEP, first)
    return first


def adds_project(repo: Path) -> None:
    copy_project(repo, NEW_PROJECT)


def three_steps(on_failure: str) -> Callable[[dict[str, Any]], None]:
    return rollout(
        [
            {"name": "test", "selector": {"gateways": ["gw-0"]}},
            {"name": "line-1", "selector": {"matchLabels": {LINE: "1"}}, "maxUnavailable": 2},
            {"name": "line-2", "selector": {"matchLabels": {LINE: "2"}}, "maxUnavailable": "50%"},
        ],
        onFailure=on_failure,
    )


def test_a_commit_rejected_on_the_second_step_halts_with_seven_gateways_untouched_on_disk(
    fleet: Fleet,
) -> None:
    fleet.create(three_steps("halt"))
    lines = {"gw-0": "0", "gw-1": "1", "gw-2": "1", **{f"gw-{i}": "2" for i in range(3, 10)}}
    old = settled(fleet, {pod: {LINE: line} for pod, line in lines.items()})
    before = {pod: fleet.files(pod) for pod in lines}
    scans = {pod: fleet.api_scans(pod) for pod in lines}
    fleet.sims["gw-2"].refused_projects.add(NEW_PROJECT)
    new = fleet.push("v2", adds_project)

    cr = fleet.drive(reason("RolloutHalted"), what="the rollout to halt")
    halted = progressing(cr)
    assert halted["status"] == "False"
    assert f"gateway gw-2 failed commit {new[:12]}" in halted["message"]
    assert NEW_PROJECT in halted["message"]  # the agent's error: the project the scan refused
    assert state(cr)["halted"]["gateway"] == "gw-2"
    assert state(cr)["commit"] == new
    fleet.reported("gw-0", IN_STEP, new)
    assert (fleet.data("gw-0") / "projects" / NEW_PROJECT / "project.json").exists()
    fleet.reported("gw-2", IN_STEP, old)  # sent back: a target it failed is never retried
    assert fleet.files("gw-2") == before["gw-2"]  # its agent rolled its files back
    untouched = [f"gw-{i}" for i in range(3, 10)]
    # Passes over more than one sync period: the halt holds (no retry loop), nothing moves.
    for seen in fleet.passes(6):
        assert progressing(seen)["reason"] == "RolloutHalted"
    published = fleet.published()
    assert published["commit"] == old
    for pod in untouched:
        assert fleet.report(pod)["commit"] == old
        assert fleet.files(pod) == before[pod], f"{pod} was written"
        assert fleet.api_scans(pod) == scans[pod], f"{pod}'s gateway was asked to scan"


def test_on_failure_rollback_sends_the_first_step_back_to_the_old_commit_on_disk(
    fleet: Fleet,
) -> None:
    fleet.create(three_steps("rollback"))
    lines = {"gw-0": "0", "gw-1": "1", "gw-3": "2"}
    old = settled(fleet, {pod: {LINE: line} for pod, line in lines.items()})
    before = {pod: fleet.files(pod) for pod in lines}
    fleet.sims["gw-1"].refused_projects.add(NEW_PROJECT)
    new = fleet.push("v2", adds_project)

    cr = fleet.drive(reason("RolloutHalted"), what="the rollout to halt")
    assert f"gateway gw-1 failed commit {new[:12]}" in progressing(cr)["message"]
    assert "sent back" in progressing(cr)["message"]
    assert fleet.published()["commit"] == old
    assert fleet.published().get("targets") in (None, "{}")  # every gateway back at `old`
    # gw-0 had moved to the new commit (its step was done); it goes back.
    fleet.reported("gw-0", IN_STEP, old)
    assert fleet.report("gw-0").get("commit") == old
    assert not (fleet.data("gw-0") / "projects" / NEW_PROJECT).exists()
    assert fleet.files("gw-0") == before["gw-0"]
    assert fleet.files("gw-3") == before["gw-3"]
    fleet.reported("gw-1", IN_STEP, old)  # the one that failed it


def test_a_redundant_pair_with_apply_on_backup_has_both_nodes_written_never_at_once(
    fleet: Fleet,
) -> None:
    def pair(body: dict[str, Any]) -> None:
        body["spec"]["sync"]["defaults"]["applyOnBackup"] = True
        # The step names the backup only: a pair is one unit in the earliest step naming a node.
        rollout([{"name": "scada", "selector": {"gateways": ["scada-1"]}}])(body)

    fleet.create(pair)
    fleet.pod("scada-0", "blue", "scada", statefulset="scada")
    fleet.pod("scada-1", "blue", "scada-1", statefulset="scada")
    fleet.reconcile()
    old = fleet.head()
    fleet.agent("scada-0", "blue", "scada", role="Master")
    fleet.agent("scada-1", "blue", "scada-1", role="Backup")
    fleet.reported("scada-0", IN_STEP, old)
    fleet.reported("scada-1", IN_STEP, old)  # applyOnBackup: the backup is written too
    scanned = {pod: len(fleet.sims[pod].scans) for pod in ("scada-0", "scada-1")}
    new = fleet.push("v2", adds_project)

    targets: list[dict[str, str]] = []

    def complete(cr: dict[str, Any]) -> dict[str, Any] | None:
        published = fleet.published()
        targets.append({"scada": published["commit"], "scada-1": published["commit"]})
        targets[-1].update(json.loads(published.get("targets") or "{}"))
        return cr if progressing(cr).get("reason") == "RolloutComplete" else None

    fleet.drive(complete, what="the pair's rollout to complete")
    primary = fleet.reported("scada-0", IN_STEP, new)
    backup = fleet.reported("scada-1", IN_STEP, new)
    assert primary["commit"] == backup["commit"] == new
    # The primary moved first: a pass gave it the commit while the backup was held back.
    assert {"scada": new, "scada-1": old} in targets
    assert {"scada": old, "scada-1": new} not in targets
    # Both nodes were really written, the backup only after the primary had written and its
    # gateway had loaded the commit: the file times and the simulators' scans say so.
    written = {
        pod: (fleet.data(pod) / "projects" / NEW_PROJECT / "project.json").stat().st_mtime
        for pod in ("scada-0", "scada-1")
    }
    primary_scans = fleet.sims["scada-0"].scans[scanned["scada-0"] :]
    backup_scans = fleet.sims["scada-1"].scans[scanned["scada-1"] :]
    loaded = min(s.finished for s in primary_scans if NEW_PROJECT in s.projects)
    assert written["scada-0"] <= loaded < written["scada-1"]
    assert max(s.finished for s in primary_scans) < min(s.started for s in backup_scans)


def two_steps(**options: Any) -> Callable[[dict[str, Any]], None]:
    """A test step then a line step, one gateway moving at a time in each."""
    return rollout(
        [
            {"name": "test", "selector": {"matchLabels": {WAVE: "test"}}, "maxUnavailable": 1},
            {"name": "line", "selector": {"matchLabels": {WAVE: "line"}}, "maxUnavailable": 1},
        ],
        **options,
    )


TEST_AND_LINE = {"gw-0": {WAVE: "test"}, "gw-1": {WAVE: "line"}}


def test_a_newer_commit_mid_rollout_starts_again_from_the_first_step_and_moves_nothing_back(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps())
    settled(fleet, TEST_AND_LINE)
    fleet.stop_agent("gw-1")  # its gateway never reports the new commit: the line step holds
    second = fleet.push("v2")
    fleet.drive(lambda cr: fleet.target("gw-1") == second, what="the line step to start")
    fleet.reported("gw-0", IN_STEP, second)

    third = fleet.push("v3")  # polling finds it: each pass resolves the ref afresh
    cr = fleet.reconcile()
    assert state(cr)["commit"] == third
    assert state(cr)["step"] == 0  # from the first step again
    assert fleet.target("gw-0") == third  # the test step moves it on
    assert fleet.target("gw-1") == second  # held where the older rollout moved it, not back
    fleet.agent("gw-1", "blue", "gw-1")
    fleet.drive(reason("RolloutComplete"), what="the rollout of v3 to complete")
    for pod in TEST_AND_LINE:
        fleet.reported(pod, IN_STEP, third)
    assert fleet.published()["commit"] == third
    assert "targets" not in fleet.published()


def test_paused_on_the_gatewaysync_holds_the_rollout_without_halting_it_until_unpaused(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps())
    old = settled(fleet, TEST_AND_LINE)
    before = {pod: fleet.files(pod) for pod in TEST_AND_LINE}
    fleet.patch({"spec": {"paused": True}})
    new = fleet.push("v2")
    for seen in fleet.passes(6):
        assert progressing(seen).get("reason") not in ("RolloutHalted", "RolloutComplete")
    for pod in TEST_AND_LINE:
        assert fleet.files(pod) == before[pod], f"{pod} moved while paused"
        assert fleet.report(pod)["commit"] == old
    assert fleet.target("gw-1") == old  # the line step never started

    fleet.patch({"spec": {"paused": False}})
    fleet.drive(reason("RolloutComplete"), what="the rollout to complete once unpaused")
    for pod in TEST_AND_LINE:
        fleet.reported(pod, IN_STEP, new)


def red_beside_blue(fleet: Fleet, red: dict[str, Any], *, red_reports: str) -> tuple[str, str]:
    """Two steps: gw-0 (blue) and red-0 (profile red changed by `red`) in the test step, gw-1
    (blue) in the line step, settled at the first commit; then a push. The two commits."""

    def change(body: dict[str, Any]) -> None:
        body["spec"]["sync"]["profiles"]["red"].update(red)
        two_steps()(body)

    fleet.create(change)
    fleet.pod("gw-0", "blue", "gw-0", labels={WAVE: "test"})
    fleet.pod("red-0", "red", "red-0", labels={WAVE: "test"})
    fleet.pod("gw-1", "blue", "gw-1", labels={WAVE: "line"})
    fleet.reconcile()
    old = fleet.head()
    for pod, profile in (("gw-0", "blue"), ("red-0", "red"), ("gw-1", "blue")):
        fleet.agent(pod, profile, pod)
    fleet.reported("gw-0", IN_STEP, old)
    fleet.reported("gw-1", IN_STEP, old)
    fleet.reported("red-0", red_reports, old)
    return old, fleet.push("v2")


def test_dry_run_gateways_are_given_the_commit_but_never_counted_nor_blocking(
    fleet: Fleet,
) -> None:
    _, new = red_beside_blue(fleet, {"dryRun": True}, red_reports="DryRun")
    fleet.reconcile()
    # One pass gives both the commit: the dry run takes none of the test step's one place.
    assert fleet.target("red-0") == new
    assert fleet.target("gw-0") == new
    fleet.reported("red-0", "DryRun", new)
    fleet.stop_agent("red-0")  # from here on it reports nothing: it must hold nothing back
    fleet.drive(reason("RolloutComplete"), what="the rollout to complete")
    fleet.reported("gw-1", IN_STEP, new)
    assert not (fleet.data("red-0") / "projects").exists()  # a dry run writes nothing


def test_a_pod_discovered_mid_rollout_starts_at_the_baseline_and_moves_with_its_step(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps())
    old = settled(fleet, TEST_AND_LINE)
    fleet.stop_agent("gw-1")  # its gateway never reports the new commit: the line step holds
    new = fleet.push("v2")
    fleet.drive(lambda cr: fleet.target("gw-1") == new, what="the line step to start")

    fleet.pod("gw-2", "blue", "gw-2", labels={WAVE: "test"})  # in a step already done
    fleet.pod("gw-3", "blue", "gw-3", labels={WAVE: "line"})  # in the step moving, which is full
    fleet.reconcile()
    fleet.agent("gw-2", "blue", "gw-2")
    fleet.agent("gw-3", "blue", "gw-3")
    fleet.reported("gw-3", IN_STEP, old)  # a new gateway starts where the rest are held
    fleet.drive(lambda cr: fleet.target("gw-2") == new, what="gw-2 to move within its step")
    fleet.reported("gw-2", IN_STEP, new)
    for seen in fleet.passes(3):
        assert "gw-2" not in progressing(seen)["message"]  # it holds nothing back
    assert fleet.target("gw-3") == old  # the line step's one place is gw-1's
    fleet.agent("gw-1", "blue", "gw-1")
    fleet.drive(reason("RolloutComplete"), what="the rollout to complete")
    for pod in ("gw-0", "gw-1", "gw-2", "gw-3"):
        fleet.reported(pod, IN_STEP, new)


def test_an_agent_of_the_previous_release_is_held_at_the_baseline_until_it_restarts(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.create(two_steps())
    for pod, labels in TEST_AND_LINE.items():
        fleet.pod(pod, "blue", pod, labels=labels)
    fleet.reconcile()
    old = fleet.head()
    fleet.agent("gw-0", "blue", "gw-0")
    fleet.agent("gw-1", "blue", "gw-1", release=previous_release(tmp_path / "previous"))
    fleet.reported("gw-0", IN_STEP, old)
    fleet.reported("gw-1", IN_STEP, old)
    assert fleet.report("gw-0").get("readsTargets") is True
    assert "readsTargets" not in fleet.report("gw-1")  # it reads `commit` only
    before = fleet.files("gw-1")
    new = fleet.push("v2")

    fleet.drive(lambda cr: fleet.target("gw-1") == new, what="the line step to start")
    fleet.reported("gw-0", IN_STEP, new)
    seen = fleet.passes(6)
    # Its wave came, but it reads only the baseline: it stays there, named, never ahead.
    assert fleet.files("gw-1") == before
    assert fleet.report("gw-1")["commit"] == old
    assert fleet.published()["commit"] == old
    message = progressing(seen[-1])["message"]
    assert "gw-1" in message
    assert "targets" in message  # says why: its agent does not read per-gateway targets
    fleet.stop_agent("gw-1")
    fleet.agent("gw-1", "blue", "gw-1")  # its pod restarted with this release's agent
    fleet.drive(reason("RolloutComplete"), what="the rollout to complete")
    fleet.reported("gw-1", IN_STEP, new)


class Ran(subprocess.CompletedProcess[str]):
    @property
    def ok(self) -> bool:
        return self.returncode == 0


def stoker(kube_env: ControlPlane, *args: str) -> Ran:
    """`stoker ARGS` as the admin of the test API server, no colours."""
    done = subprocess.run(
        [sys.executable, "-m", "stoker_agent.cli", *args],
        env={**kube_env.subprocess_env(), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    return Ran(done.args, done.returncode, done.stdout, done.stderr)


def test_a_rollout_awaiting_approval_moves_on_a_stamped_approval_never_a_hand_written_one(
    fleet: Fleet,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAMESPACE", kube_namespace)  # the controller's approval key Secret
    fleet.create(two_steps(approval="required"))
    old = settled(fleet, TEST_AND_LINE)
    new = fleet.push("v2")
    cr = fleet.drive(reason("AwaitingApproval"), what="the commit to await its approval")
    assert new in progressing(cr)["message"]
    assert (state(cr)["awaiting"], state(cr)["pendingCommit"]) == ("rollout", new)
    shown = stoker(kube_env, "status", "-n", kube_namespace).stdout  # as docs/rollouts.md says
    assert f"rollout: AwaitingApproval: the commit waits for an approval of commit {new}" in shown
    assert f"stoker approve {fleet.name} {new[:12]} -n {kube_namespace}" in shown

    # Written around the webhook (none is registered yet): a plain SHA, which counts for nothing.
    fleet.patch({"metadata": {"annotations": {"approval.stoker.io/rollout": new}}})
    for seen in fleet.passes(6):
        assert progressing(seen)["reason"] == "AwaitingApproval"
    assert state(seen)["ignored"]  # said, not silently dropped
    for pod in TEST_AND_LINE:
        assert fleet.target(pod) == old
        assert fleet.report(pod)["commit"] == old

    with approval_webhook(kube_env, kube_api, kube_namespace, tmp_path):

        def approved() -> bool:  # the API server calls a new webhook after a short delay
            return stoker(kube_env, "approve", fleet.name, new[:10], "-n", kube_namespace).ok

        wait_until(approved, timeout=30, what="stoker approve to be stamped by the webhook")
        stamp = json.loads(fleet.get()["metadata"]["annotations"]["approval.stoker.io/rollout"])
        assert stamp["commit"] == new
        assert stamp["by"]  # the API server's name for the admin who ran stoker approve
        cr = fleet.drive(reason("RolloutComplete"), what="the approved rollout to complete")
    assert state(cr)["approvedBy"] == {"rollout": stamp["by"]}
    for pod in TEST_AND_LINE:
        fleet.reported(pod, IN_STEP, new)
    # Afterwards, who approved what is in the history (docs/rollouts.md's worked example).
    history = stoker(kube_env, "history", fleet.name, "-n", kube_namespace, "-o", "json")
    assert history.ok, history.stderr
    newest = json.loads(history.stdout)["entries"][0]
    assert newest["commit"] == new
    assert {"gate": "rollout", "user": stamp["by"]} in newest["approvedBy"]


def test_a_gateway_unhealthy_within_its_window_halts_the_rollout_and_goes_back(
    fleet: Fleet,
) -> None:
    # A window of 6 s: checks every 2 s, so the gateway can fail two before it is done.
    fleet.create(two_steps(healthWindow="6s"))
    old = settled(fleet, TEST_AND_LINE)
    before = fleet.files("gw-1")
    new = fleet.push("v2")
    fleet.reconcile()  # the test step gives gw-0 the commit
    fleet.reported("gw-0", "Synced", new)
    fleet.sims["gw-0"].set_starting(None)  # the gateway stops answering (503) until told

    cr = fleet.drive(reason("RolloutHalted"), what="the rollout to halt")
    message = progressing(cr)["message"]
    assert f"gateway gw-0 failed commit {new[:12]}" in message
    assert "unhealthy" in message
    fleet.sims["gw-0"].finish_starting()
    fleet.reported("gw-0", IN_STEP, old)  # sent back
    assert fleet.target("gw-1") == old
    assert fleet.files("gw-1") == before
    assert fleet.report("gw-1")["commit"] == old


def test_drift_restore_during_a_rollout_restores_a_waiting_gateway_to_its_own_target(
    fleet: Fleet,
) -> None:
    def restoring(body: dict[str, Any]) -> None:
        body["spec"]["sync"]["defaults"]["driftPolicy"] = "restore"
        two_steps()(body)

    fleet.create(restoring)
    old = settled(fleet, TEST_AND_LINE)
    fleet.stop_agent("gw-0")  # its gateway never reports the new commit: the test step holds
    new = fleet.push("v2")  # changes the blue project's project.json
    fleet.drive(lambda cr: fleet.target("gw-0") == new, what="the test step to start")
    project = fleet.data("gw-1") / "projects/blue/project.json"
    held = project.read_bytes()
    project.write_text('{"title": "edited on the gateway"}\n')

    wait_until(
        lambda: project.read_bytes() == held, timeout=60, what="gw-1's agent to restore its file"
    )
    # Restored to the commit it is held at, not to the one rolling out.
    assert fleet.report("gw-1")["commit"] == old
    assert fleet.target("gw-1") == old


def test_a_paused_profile_holds_its_step_visibly_and_moves_once_unpaused(
    fleet: Fleet,
) -> None:
    old, new = red_beside_blue(fleet, {"paused": True}, red_reports="Skipped")

    fleet.drive(lambda cr: fleet.target("red-0") == new, what="the test step to give red-0 v2")
    fleet.reported("gw-0", IN_STEP, new)
    for seen in fleet.passes(6):
        assert progressing(seen)["reason"] == "RolloutProgressing"  # held, not halted
        assert "red-0" in progressing(seen)["message"]  # named as the one it waits on
    assert fleet.target("gw-1") == old
    assert not (fleet.data("red-0") / "projects").exists()

    fleet.patch({"spec": {"sync": {"profiles": {"red": {"paused": False}}}}})
    fleet.drive(reason("RolloutComplete"), what="the rollout to complete once red is unpaused")
    for pod in ("gw-0", "red-0", "gw-1"):
        fleet.reported(pod, IN_STEP, new)


def test_a_requested_ref_mid_rollout_starts_a_rollout_of_its_commit_from_the_first_step(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps())
    settled(fleet, TEST_AND_LINE)
    fleet.stop_agent("gw-1")  # its gateway never reports the new commit: the line step holds
    second = fleet.push("v2")
    fleet.drive(lambda cr: fleet.target("gw-1") == second, what="the line step to start")
    git(fleet.repo, "checkout", "-qb", "hotfix")
    hotfix = fleet.push("hotfix")
    git(fleet.repo, "checkout", "-q", "main")

    fleet.patch({"metadata": {"annotations": {"stoker.io/requested-ref": "hotfix"}}})
    cr = fleet.reconcile()  # what the receiver asks for a push to another branch
    assert (state(cr)["commit"], state(cr)["step"]) == (hotfix, 0)
    assert fleet.published()["ref"] == "hotfix"
    assert fleet.target("gw-0") == hotfix
    assert fleet.target("gw-1") == second  # held where the older rollout moved it
    fleet.agent("gw-1", "blue", "gw-1")
    fleet.drive(reason("RolloutComplete"), what="the hotfix's rollout to complete")
    for pod in TEST_AND_LINE:
        fleet.reported(pod, IN_STEP, hotfix)


def test_a_pod_recreated_mid_rollout_is_moved_by_its_new_agent_and_the_rollout_completes(
    fleet: Fleet,
) -> None:
    fleet.create(two_steps())
    settled(fleet, TEST_AND_LINE)
    fleet.stop_agent("gw-1")
    new = fleet.push("v2")
    fleet.drive(lambda cr: fleet.target("gw-1") == new, what="the line step to start")

    # Its StatefulSet recreates it: the same name, a new uid, an agent starting afresh.
    delete_pod(fleet.core, fleet.namespace, "gw-1")
    wait_until(
        lambda: (
            "gw-1"
            not in [p.metadata.name for p in fleet.core.list_namespaced_pod(fleet.namespace).items]
        ),
        timeout=30,
        what="the pod to go",
    )
    fleet.pod("gw-1", "blue", "gw-1", labels=TEST_AND_LINE["gw-1"])
    fleet.reconcile()
    fleet.agent("gw-1", "blue", "gw-1")
    fleet.drive(reason("RolloutComplete"), what="the rollout to complete")
    fleet.reported("gw-1", IN_STEP, new)
    fleet.reported("gw-0", IN_STEP, new)
