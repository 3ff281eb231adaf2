"""Which gateway moves next (stoker_core.rollouts, issue 17): waves in order within their
allowance, a health window, pairs one node at a time, approvals and pauses, a halt that holds
the rest and is not retried, a newer commit that restarts, a restart that resumes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from stoker_core import rollouts, rolloutstate
from stoker_core.model import (
    Approval,
    OnFailure,
    Pause,
    Rollout,
    RolloutStep,
    StepSelector,
)
from stoker_core.rollouts import Decision, Gateway, Reason, decide
from stoker_core.rolloutstate import State
from stoker_core.standings import Report, Seen, Skip, standings
from stoker_core.status import HealthReport

OLD, NEW, NEWER = "a" * 40, "b" * 40, "c" * 40


def step(
    *gateways: str, profiles: Sequence[str] = (), most: int | str = "100%", **kw: object
) -> RolloutStep:
    selector = StepSelector(gateways=tuple(gateways), profiles=tuple(profiles))
    return RolloutStep(selector=selector, max_unavailable=most, **kw)  # type: ignore[arg-type]


class Fleet:
    """Gateways whose agents apply a target at once and report it healthy from then on (the
    time since they applied it, as an agent measures its window); a gateway named in
    `rejects` fails that commit instead."""

    def __init__(self, gateways: Sequence[Gateway], rejects: dict[str, str] | None = None) -> None:
        self.gateways = {g.name: g for g in gateways}
        self.rejects = rejects or {}
        self.applied: dict[str, list[str]] = {g.name: [] for g in gateways}
        self.since = {g.name: 0.0 for g in gateways if g.commit}

    def apply(self, decision: Decision, now: float) -> None:
        for name, target in decision.targets.items():
            g = self.gateways[name]
            if target in (g.commit, g.failed):
                continue
            self.applied[name].append(target)
            if self.rejects.get(name) == target:
                self.gateways[name] = attrs.evolve(g, failed=target, error="project rejected")
            else:
                self.gateways[name] = attrs.evolve(g, commit=target, failed="")
                self.since[name] = now

    def at(self, now: float) -> list[Gateway]:
        """The gateways as their agents report them at `now`."""
        return [
            attrs.evolve(g, healthy_for=now - self.since[g.name]) if g.name in self.since else g
            for g in self.gateways.values()
        ]


def run(
    rollout: Rollout,
    fleet: Fleet,
    *,
    state: State | None = None,
    published: str = NEW,
    passes: int = 20,
    approvals: Sequence[str] = (),
) -> tuple[State, list[Decision]]:
    """Passes 10 s apart, the fleet acting on each decision; returns the last state and all."""
    state = state or State.settled(OLD)
    decisions = []
    for i in range(passes):
        now = 1000.0 + 10 * i
        decision = decide(
            rollout, state, fleet.at(now), published=published, approvals=approvals, now=now
        )
        decisions.append(decision)
        fleet.apply(decision, now)
        state = decision.state
    return state, decisions


def gateways(*names: str, profile: str = "default") -> list[Gateway]:
    return [Gateway(name=n, profile=profile, commit=OLD) for n in names]


def test_without_a_rollout_every_gateway_gets_the_published_commit_at_once() -> None:
    decision = decide(None, State(), gateways("a", "b"), published=NEW, now=0)
    assert decision.targets == {"a": NEW, "b": NEW}
    assert decision.progress is None


def test_steps_move_in_order_within_their_allowance_after_the_health_window() -> None:
    rollout = Rollout(
        health_window="15s",
        steps=(step("test"), step(profiles=["line"], most=2)),
    )
    fleet = Fleet(
        [*gateways("test"), *gateways("l1", "l2", "l3", profile="line"), *gateways("rest")]
    )
    state, decisions = run(rollout, fleet)
    first = decisions[0]
    assert first.targets == {"test": NEW, "l1": OLD, "l2": OLD, "l3": OLD, "rest": OLD}
    assert first.progress is not None
    assert first.progress.reason is Reason.PROGRESSING
    assert first.progress.message.endswith(
        "step 1/3 step-1: 0 of 1 gateway(s) done, 1 moving (test)"
    )
    # the test gateway is healthy from t=1000; done at t=1020 (15 s window), then two lines move
    assert decisions[1].targets["l1"] == OLD
    assert [d.targets["l1"] for d in decisions[2:3]] == [NEW]
    assert decisions[2].targets["l3"] == OLD
    assert all(t == [NEW] for t in fleet.applied.values())
    last = decisions[-1]
    assert last.progress is not None
    assert last.progress.reason is Reason.COMPLETE
    assert state.step == rolloutstate.COMPLETE


def test_a_rejected_commit_halts_naming_the_gateway_and_leaves_the_rest_untouched() -> None:
    rollout = Rollout(health_window="0s", steps=(step("test"), step("l1", "l2", most=1)))
    fleet = Fleet(gateways("test", "l1", "l2", "l3"), rejects={"l1": NEW})
    state, decisions = run(rollout, fleet)
    assert state.halted is not None
    assert state.halted.gateway == "l1"
    progress = decisions[-1].progress
    assert progress is not None
    assert progress.status == "False"
    assert progress.reason is Reason.HALTED
    assert "l1" in progress.message
    assert "project rejected" in progress.message
    assert decisions[-1].targets == {"test": NEW, "l1": OLD, "l2": OLD, "l3": OLD}
    assert fleet.applied["l2"] == fleet.applied["l3"] == []
    # tried once; sent back to its previous target (its agent has already rolled its files
    # back, so there is nothing to apply), never retried
    assert fleet.applied["l1"] == [NEW]


def test_rollback_sends_back_the_gateways_the_rollout_moved() -> None:
    rollout = Rollout(
        health_window="0s", on_failure=OnFailure.ROLLBACK, steps=(step("test"), step("l1"))
    )
    fleet = Fleet(gateways("test", "l1", "l2"), rejects={"l1": NEW})
    state, decisions = run(rollout, fleet)
    assert decisions[-1].targets == {"test": OLD, "l1": OLD, "l2": OLD}
    assert fleet.applied["test"] == [NEW, OLD]
    assert fleet.applied["l2"] == []
    # Every later pass, and a controller reading the state back, still says what was done.
    read_back = rolloutstate.load(rolloutstate.dump(state), fallback=OLD)
    assert read_back == state
    later = decide(rollout, read_back, fleet.at(9000), published=NEW, now=9000)
    assert later.progress is not None
    assert "the gateways it had moved are sent back" in later.progress.message


def test_a_newer_commit_restarts_from_the_first_step_and_moves_nobody_backwards() -> None:
    rollout = Rollout(health_window="0s", steps=(step("test"), step("l1"), step("l2")))
    fleet = Fleet(gateways("test", "l1", "l2"))
    state, _ = run(rollout, fleet, passes=2)  # test and l1 at NEW, l2 still at OLD
    assert [fleet.gateways[n].commit for n in ("test", "l1", "l2")] == [NEW, NEW, OLD]
    first = decide(rollout, state, fleet.at(5000), published=NEWER, now=5000)
    assert first.targets == {"test": NEWER, "l1": NEW, "l2": OLD}
    state, decisions = run(rollout, fleet, state=state, published=NEWER)
    assert fleet.applied["l2"] == [NEWER]
    assert decisions[-1].targets == {"test": NEWER, "l1": NEWER, "l2": NEWER}


def test_a_newer_commit_after_a_halt_starts_again() -> None:
    rollout = Rollout(health_window="0s", steps=(step("test"),))
    fleet = Fleet(gateways("test", "l1"), rejects={"test": NEW})
    state, _ = run(rollout, fleet)
    assert state.halted is not None
    state, decisions = run(rollout, fleet, state=state, published=NEWER)
    assert state.halted is None
    assert decisions[-1].targets == {"test": NEWER, "l1": NEWER}


def test_a_commit_needing_approval_waits_until_that_gate_is_approved() -> None:
    rollout = Rollout(health_window="0s", approval=Approval.REQUIRED, steps=(step("test"),))
    fleet = Fleet(gateways("test", "l1"))
    state, decisions = run(rollout, fleet, passes=3)
    assert all(t == [] for t in fleet.applied.values())
    assert decisions[-1].awaiting == rollouts.ROLLOUT_GATE
    progress = decisions[-1].progress
    assert progress is not None
    assert progress.reason is Reason.AWAITING_APPROVAL
    assert NEW in progress.message
    _, decisions = run(rollout, fleet, state=state, approvals=[rollouts.ROLLOUT_GATE])
    assert decisions[-1].targets == {"test": NEW, "l1": NEW}


def test_a_step_approval_and_a_pause_until_approved_hold_their_step() -> None:
    rollout = Rollout(
        health_window="0s",
        steps=(
            step("test", pause=Pause(until_approved=True)),
            step("l1", name="line", approval=Approval.REQUIRED),
        ),
    )
    fleet = Fleet(gateways("test", "l1", "l2"))
    state, decisions = run(rollout, fleet, passes=4)
    assert decisions[-1].awaiting == "pause:step-1"
    state, decisions = run(rollout, fleet, state=state, approvals=["pause:step-1"], passes=4)
    assert decisions[-1].awaiting == "step:line"
    assert fleet.applied["l1"] == []
    _, decisions = run(rollout, fleet, state=state, approvals=["step:line"])
    assert decisions[-1].targets == {"test": NEW, "l1": NEW, "l2": NEW}


def test_a_pause_by_duration_holds_the_next_step_until_it_is_over() -> None:
    rollout = Rollout(health_window="0s", steps=(step("test", pause=Pause(duration="45s")),))
    fleet = Fleet(gateways("test", "l1"))
    _, decisions = run(rollout, fleet, passes=8)
    held = [d.targets["l1"] for d in decisions]
    # test moves at t=1000, done at t=1010; l1 moves at t=1010+45 → the pass at t=1060
    assert held.index(NEW) == 6
    assert decisions[2].progress is not None
    assert decisions[2].progress.reason is Reason.PAUSED


def test_a_dry_run_gateway_neither_holds_a_step_back_nor_fills_its_allowance() -> None:
    rollout = Rollout(health_window="0s", steps=(step("dry", "test", most=1),))
    dry = Gateway(name="dry", profile="default", dry_run=True)  # never reports in step
    fleet = Fleet([dry, *gateways("test", "l1")])
    fleet.rejects["dry"] = NEW  # even failing
    _, decisions = run(rollout, fleet, passes=4)
    assert decisions[0].targets == {"dry": NEW, "test": NEW, "l1": OLD}
    assert decisions[-1].targets == {"dry": NEW, "test": NEW, "l1": NEW}
    assert decisions[-1].state.halted is None


def test_a_pair_moves_as_one_unit_primary_first_then_backup() -> None:
    pair = {"gw": ("StatefulSet gw", False), "gw-1": ("StatefulSet gw", True)}
    assert rollouts.pairs([("gw", "StatefulSet gw", 0), ("gw-1", "StatefulSet gw", 1)]) == pair
    rollout = Rollout(health_window="15s", steps=(step("gw-1", most=2),))
    members = [
        attrs.evolve(g, pair=pair[g.name][0], backup=pair[g.name][1])
        for g in gateways("gw", "gw-1")
    ]
    fleet = Fleet([*members, *gateways("other")])
    _, decisions = run(rollout, fleet, passes=6)
    # the step selects only the backup, the pair moves with it; the primary goes first
    assert decisions[0].targets == {"gw": NEW, "gw-1": OLD, "other": OLD}
    assert decisions[1].targets["gw-1"] == OLD  # the primary is in its health window
    assert decisions[2].targets["gw-1"] == NEW
    assert decisions[-1].targets == {"gw": NEW, "gw-1": NEW, "other": NEW}


def test_only_a_statefulsets_ordinals_0_and_1_make_a_pair() -> None:
    three = [("x", "StatefulSet x", 0), ("x-1", "StatefulSet x", 1), ("x-2", "StatefulSet x", 2)]
    assert rollouts.pairs(three) == {}
    assert rollouts.pairs([("d", "Deployment d", 0), ("d-1", "Deployment d", 1)]) == {}
    assert rollouts.pairs([("y", "StatefulSet y", 0)]) == {}


def test_a_restarted_controller_resumes_from_the_persisted_state() -> None:
    rollout = Rollout(health_window="15s", steps=(step("test"), step(profiles=["line"], most=1)))
    fleet = Fleet([*gateways("test"), *gateways("l1", "l2", profile="line")])
    state, _ = run(rollout, fleet, passes=3)
    kept = rolloutstate.load(rolloutstate.dump(state), fallback=OLD)
    assert kept == state
    now = 2000.0
    assert decide(rollout, kept, fleet.at(now), published=NEW, now=now) == decide(
        rollout, state, fleet.at(now), published=NEW, now=now
    )


def test_a_damaged_persisted_state_sends_gateways_back_never_ahead() -> None:
    damaged = {"commit": NEW, "baseline": OLD, "moved": 5}
    assert rolloutstate.load(damaged, fallback=NEWER) == State.settled(OLD)
    assert rolloutstate.load({"commit": NEW}, fallback=OLD) == State.settled(OLD)
    assert rolloutstate.load({"commit": NEW, "baseline": ["x"]}, fallback=OLD) == State.settled(OLD)
    rollout = Rollout(health_window="0s", steps=(step("test"),))
    again = decide(rollout, State.settled(OLD), gateways("test", "l1"), published=NEW, now=0)
    assert again.targets == {"test": NEW, "l1": OLD}  # the rollout starts again at step 1


def test_a_gateway_discovered_mid_rollout_waits_for_its_step() -> None:
    rollout = Rollout(health_window="0s", steps=(step("test"), step("l1"), step("l2")))
    fleet = Fleet(gateways("test", "l1"))
    state, _ = run(rollout, fleet, passes=1)
    fleet.gateways["l2"] = Gateway(name="l2", profile="default")  # a new pod, no report yet
    fleet.applied["l2"] = []
    decision = decide(rollout, state, fleet.at(1010), published=NEW, now=1010)
    assert decision.targets["l2"] == OLD


def observed(report: Report | None, target: str = NEW, profile: str = "default") -> Gateway:
    seen = Seen(profile=profile, has_sidecar=True, target=target, report=report)
    (where,) = standings([seen])
    return rollouts.observe(Gateway(name="gw", profile=profile), where, report)


def watched(commit: str, healthy_for: float, *, unhealthy: bool = False) -> HealthReport:
    return HealthReport(
        commit=commit,
        healthy_for=healthy_for,
        since="t0",
        checked_at="t1",
        unhealthy=unhealthy,
        problem="projects not loaded: blue" if unhealthy else "",
    )


def test_a_report_reads_as_the_commit_in_step_at_or_the_commit_rejected() -> None:
    synced = observed(Report(result="Synced", commit=NEW, health=watched(NEW, 12.5)))
    assert (synced.commit, synced.healthy_for, synced.failed) == (NEW, 12.5, "")
    behind = observed(Report(result="InSync", commit=OLD))  # in step, at the baseline
    assert (behind.commit, behind.failed) == (OLD, "")
    rejected = observed(Report(result="Rejected", commit=NEW, error="scan failed"))
    assert (rejected.commit, rejected.failed, rejected.error) == ("", NEW, "scan failed")
    nothing = observed(None)
    assert (nothing.commit, nothing.failed) == ("", "")


def test_a_health_window_counts_only_for_the_commit_it_watched() -> None:
    # the agent's window of the previous commit says nothing about this one
    stale = observed(Report(result="Synced", commit=NEW, health=watched(OLD, 600)))
    assert (stale.commit, stale.healthy_for) == (NEW, 0.0)
    unwatched = observed(Report(result="Synced", commit=NEW))
    assert unwatched.healthy_for == 0.0


def test_an_error_holds_its_step_until_its_retries_are_spent_then_fails_the_commit() -> None:
    for failures in range(rollouts.RETRIES):
        erring = observed(Report(result="Error", commit=NEW, failures=failures, error="boom"))
        assert (erring.commit, erring.failed, erring.healthy_for) == ("", "", 0.0)
    spent = observed(Report(result="Error", commit=NEW, failures=rollouts.RETRIES, error="boom"))
    assert spent.failed == NEW
    assert spent.error == "3 attempts failed: boom"


def test_a_gateway_unhealthy_in_its_window_fails_the_commit_naming_the_problem() -> None:
    sick = observed(Report(result="Synced", commit=NEW, health=watched(NEW, 0, unhealthy=True)))
    assert sick.failed == NEW
    assert sick.error == "unhealthy within the health window: projects not loaded: blue"


def test_an_unhealthy_gateway_halts_the_rollout_and_goes_back() -> None:
    rollout = Rollout(health_window="60s", steps=(step("test"), step("l1")))
    state = decide(rollout, State.settled(OLD), gateways("test", "l1"), published=NEW, now=0).state
    report = Report(result="Synced", commit=NEW, health=watched(NEW, 4, unhealthy=True))
    seen = Seen(profile="default", has_sidecar=True, target=NEW, report=report)
    (where,) = standings([seen])
    sick = rollouts.observe(Gateway(name="test", profile="default"), where, report)
    decision = decide(rollout, state, [sick, *gateways("l1")], published=NEW, now=10)
    assert decision.targets == {"test": OLD, "l1": OLD}
    assert decision.progress is not None
    assert decision.progress.reason is Reason.HALTED
    assert "gateway test failed" in decision.progress.message
    assert "projects not loaded: blue" in decision.progress.message


def test_a_skipped_backup_is_in_step_only_as_the_status_model_says() -> None:
    backup = Report(result="Skipped", commit=NEW, skip=Skip.BACKUP)
    assert observed(backup).commit == ""  # alone, no primary in step: not in step
    paused = observed(Report(result="Skipped", commit=NEW, skip=Skip.PAUSED))
    assert paused.commit == ""


def test_an_agent_that_never_takes_its_target_holds_its_step_and_is_named() -> None:
    rollout = Rollout(health_window="0s", steps=(step("old-agent", "l1"),))
    fleet = Fleet(gateways("old-agent", "l1", "l2"))
    fleet.gateways["old-agent"] = attrs.evolve(fleet.gateways["old-agent"], commit=OLD)
    deaf = fleet.apply

    def apply(decision: Decision, now: float) -> None:  # an agent that reads only `commit`
        deaf(attrs.evolve(decision, targets={**decision.targets, "old-agent": OLD}), now)

    fleet.apply = apply  # type: ignore[method-assign]
    _, decisions = run(rollout, fleet, passes=5)
    assert decisions[-1].targets == {"old-agent": NEW, "l1": NEW, "l2": OLD}
    progress = decisions[-1].progress
    assert progress is not None
    assert "1 of 2 gateway(s) done, 1 moving (old-agent)" in progress.message


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELDS = ["commit", "baseline", "held", "moved", "step", "started", "finished", "approvals"]


@given(record=st.dictionaries(st.sampled_from([*FIELDS, "halted"]), JSON))
def test_any_persisted_record_reads_as_a_state_without_an_error(record: dict[str, Any]) -> None:
    state = rolloutstate.load(record, fallback=OLD)
    assert isinstance(state, State)
    assert all(isinstance(t, float) and math.isfinite(t) for t in state.started)


def test_new_steps_mid_rollout_start_it_again_and_move_nobody_backwards() -> None:
    rollout = Rollout(health_window="0s", steps=(step("test"), step("l1"), step("l2")))
    fleet = Fleet(gateways("test", "l1", "l2", "l3"))
    state, _ = run(rollout, fleet, passes=2)  # test done, l1 moved
    assert state.step == 1
    reordered = attrs.evolve(rollout, steps=(step("l3"), *rollout.steps))
    decision = decide(reordered, state, fleet.at(5000), published=NEW, now=5000)
    assert decision.state.step == 0
    assert decision.targets == {"test": NEW, "l1": NEW, "l2": OLD, "l3": NEW}
    # a longer health window is no new step: the rollout goes on where it was
    slower = attrs.evolve(rollout, health_window="1h")
    assert decide(slower, state, fleet.at(1020), published=NEW, now=1020).state.step == 1


def test_new_steps_after_a_halt_keep_it_halted() -> None:
    rollout = Rollout(health_window="0s", steps=(step("test"),))
    fleet = Fleet(gateways("test", "l1"), rejects={"test": NEW})
    state, _ = run(rollout, fleet)
    assert state.halted is not None
    other = attrs.evolve(rollout, steps=(step("l1"),))
    decision = decide(other, state, fleet.at(5000), published=NEW, now=5000)
    assert decision.state.halted == state.halted
    assert decision.targets == {"test": OLD, "l1": OLD}


def test_an_approved_resume_starts_the_halted_commit_again_from_its_first_step_once() -> None:
    rollout = Rollout(health_window="0s", steps=(step("test"), step("l1"), step("l2")))
    fleet = Fleet(gateways("test", "l1", "l2"), rejects={"l1": NEW})
    state, _ = run(rollout, fleet)
    assert state.halted is not None
    halt = state.halted
    held, _ = run(rollout, fleet, state=state, approvals=["rollout", "step:step-2"], passes=3)
    assert held.halted == halt  # other gates do not resume it
    fleet.gateways["l1"] = attrs.evolve(fleet.gateways["l1"], failed="", error="")  # back at OLD
    state, decisions = run(rollout, fleet, state=held, approvals=[rollouts.RESUME_GATE])
    resumed = decisions[0].state
    assert resumed.halted is None
    # From the first step again (the test gateway, still at NEW, is done in the same pass),
    # its start times new; nobody moved back, l1 given NEW again
    assert resumed.commit == NEW
    assert len(resumed.started) == 2
    assert resumed.started[0] == resumed.started[1] == decisions[0].state.started[-1]
    assert decisions[0].targets == {"test": NEW, "l1": NEW, "l2": OLD}
    # l1 fails again: halted again, and the same resume approval does not start it a third time
    assert fleet.applied["l1"] == [NEW, NEW]
    assert state.halted is not None
    assert fleet.applied["l2"] == []
    assert decisions[-1].targets == {"test": NEW, "l1": OLD, "l2": OLD}


def test_a_gateway_whose_agent_reads_no_targets_is_named_with_the_fix() -> None:
    old_agent = observed(Report(result="Synced", commit=OLD), target=OLD)
    assert old_agent.old_agent
    assert not observed(Report(result="Synced", commit=OLD, reads_targets=True)).old_agent
    assert not observed(None).old_agent
    rollout = Rollout(health_window="0s", steps=(step("gw"),))
    decision = decide(rollout, State.settled(OLD), [old_agent], published=NEW, now=10.0)
    assert decision.targets == {"gw": NEW}
    assert decision.progress is not None
    assert decision.progress.message.endswith(
        "1 moving (gw); gw: its agent does not read per-gateway targets (a release before "
        "them) and stays at the baseline commit until its pod is restarted"
    )
