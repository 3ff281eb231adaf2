"""Properties of the rollout decision (stoker_core.rollouts) over random fleets, rollouts and
agents: a simulated controller calls `decide` every 10 s and the agents act on the targets,
some late, some failing; every decision is checked against the rules of issue 17."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stoker_core import rolloutstate, waves
from stoker_core.model import OnFailure, Pause, Rollout, RolloutStep, StepSelector
from stoker_core.rollouts import Decision, Gateway, decide
from stoker_core.rolloutstate import State

OLD, NEW, NEWER = "a" * 40, "b" * 40, "c" * 40
PASS = 10.0
PASSES = 160


@attrs.frozen
class Agent:
    """How a simulated agent behaves: passes before it applies a target, whether it fails
    every commit but OLD."""

    delay: int
    fails: bool


@st.composite
def fleets(draw: Any) -> tuple[list[Gateway], dict[str, Agent]]:
    size = draw(st.integers(1, 10))
    paired = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    out: list[Gateway] = []
    i = 0
    while i < size:
        pair = f"StatefulSet g{i}" if paired[i] and i + 1 < size else ""
        for backup in (False, True) if pair else (False,):
            out.append(
                Gateway(
                    name=f"g{i}",
                    profile=draw(st.sampled_from(["p0", "p1", "p2"])),
                    labels={"wave": draw(st.sampled_from(["1", "2", "3"]))},
                    pair=pair,
                    backup=backup,
                    dry_run=draw(st.booleans()) and draw(st.booleans()),
                    commit=OLD,
                )
            )
            i += 1
    agents = {
        g.name: Agent(delay=draw(st.integers(0, 2)), fails=draw(st.integers(0, 9)) == 0)
        for g in out
    }
    return out, agents


@st.composite
def plans(draw: Any) -> Rollout:
    steps = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["profiles", "labels", "gateways"]))
        selector = {
            "profiles": lambda: StepSelector(
                profiles=tuple(draw(st.sets(st.sampled_from(["p0", "p1", "p2"]), min_size=1)))
            ),
            "labels": lambda: StepSelector(
                match_labels={"wave": draw(st.sampled_from(["1", "2", "3"]))}
            ),
            "gateways": lambda: StepSelector(
                gateways=tuple(draw(st.sets(st.sampled_from([f"g{i}" for i in range(10)]))))
                or ("g0",)
            ),
        }[kind]()
        most = draw(st.one_of(st.integers(1, 3), st.sampled_from(["10%", "25%", "50%", "100%"])))
        pause = draw(st.sampled_from([None, Pause(duration="20s")]))
        steps.append(RolloutStep(selector=selector, max_unavailable=most, pause=pause))
    return Rollout(
        steps=tuple(steps),
        health_window=draw(st.sampled_from(["0s", "10s", "25s"])),
        on_failure=draw(st.sampled_from(list(OnFailure))),
    )


class Simulation:
    """The agents: each applies a changed target `delay` passes later; a failing one reports
    NEW failed (its files rolled back); the others report in step and healthy from then on."""

    def __init__(self, gateways: list[Gateway], agents: dict[str, Agent]) -> None:
        self.gateways = {g.name: g for g in gateways}
        self.agents = agents
        self.pending: dict[str, tuple[str, int]] = {}
        self.since = {g.name: 0.0 for g in gateways}  # when each took its commit

    def reported(self, now: float) -> list[Gateway]:
        """The gateways as their agents report them at `now` (healthy since they applied)."""
        return [
            attrs.evolve(g, healthy_for=now - self.since[g.name]) for g in self.gateways.values()
        ]

    def act(self, decision: Decision, index: int, now: float) -> None:
        for name, target in decision.targets.items():
            g = self.gateways[name]
            if target in (g.commit, g.failed) or self.pending.get(name, ("",))[0] == target:
                continue
            self.pending[name] = (target, index + self.agents[name].delay)
        for name, (target, due) in list(self.pending.items()):
            if due > index:
                continue
            del self.pending[name]
            g = self.gateways[name]
            if target != OLD and self.agents[name].fails:
                self.gateways[name] = attrs.evolve(g, failed=target, error="project rejected")
            else:
                self.gateways[name] = attrs.evolve(g, commit=target, failed="")
                self.since[name] = now


def unit_steps(rollout: Rollout, gateways: list[Gateway]) -> dict[str, int]:
    """Each gateway's step: a pair's is the earliest step selecting either node."""
    own = {
        g.name: waves.step_of(
            rollout, waves.Member(name=g.name, profile=g.profile, labels=g.labels)
        )
        for g in gateways
    }
    by_pair: dict[str, int] = {}
    for g in gateways:
        if g.pair:
            by_pair[g.pair] = min(by_pair.get(g.pair, own[g.name]), own[g.name])
    return {g.name: by_pair[g.pair] if g.pair else own[g.name] for g in gateways}


@attrs.define
class Seen:
    """What the checks remember of one commit's rollout."""

    commit: str
    before: dict[str, str]  # each gateway's target when the commit was published
    ever: set[str] = attrs.Factory(set)  # the gateways given the commit so far
    halted: dict[str, str] | None = None  # the targets of the first halted decision


def check(
    rollout: Rollout, gateways: list[Gateway], decision: Decision, now: float, seen: Seen
) -> None:
    window = waves.seconds(rollout.health_window)
    steps = unit_steps(rollout, gateways)
    commit = seen.commit

    def done(g: Gateway) -> bool:
        return g.commit == commit and g.healthy_for >= window and g.failed != commit

    counted = [g for g in gateways if not g.dry_run]
    moving = [g for g in counted if decision.targets[g.name] == commit and not done(g)]
    for index in set(steps.values()):
        members = [g for g in counted if steps[g.name] == index]
        allowed = waves.allowance(rollout, index, len(members))
        at_once = [g.name for g in moving if steps[g.name] == index]
        assert len(at_once) <= allowed, f"step {index}: {at_once} moving, {allowed} allowed"
    for g in gateways:
        if decision.targets[g.name] == commit:
            earlier = [e.name for e in counted if steps[e.name] < steps[g.name] and not done(e)]
            assert not earlier, f"{g.name} moves while {earlier} of an earlier step are not done"
    pairs: dict[str, list[str]] = {}
    for g in moving:
        if g.pair:
            pairs.setdefault(g.pair, []).append(g.name)
    assert all(len(nodes) < 2 for nodes in pairs.values()), f"a pair applies at once: {pairs}"
    # a gateway not yet given the commit stays where it was (halted or not: nothing moves
    # backwards when a newer commit arrives); a rollback sends every gateway back there
    untouched = {n for n in decision.targets if n not in seen.ever | {*decision.state.moved}}
    if decision.state.halted is not None and rollout.on_failure is OnFailure.ROLLBACK:
        untouched = set(decision.targets)
    strayed = [n for n in untouched if decision.targets[n] != seen.before.get(n, OLD)]
    assert not strayed, f"{strayed} were moved elsewhere than the commit or back"
    if seen.halted is not None:
        assert decision.targets == seen.halted, "a halted commit moved a gateway again"
    elif decision.state.halted is not None:
        seen.halted = dict(decision.targets)
    seen.ever |= {n for n, t in decision.targets.items() if t == commit}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=fleets(), rollout=plans(), newer=st.one_of(st.none(), st.integers(1, 60)))
def test_a_rollout_keeps_its_rules_at_every_pass(
    fleet: tuple[list[Gateway], dict[str, Agent]], rollout: Rollout, newer: int | None
) -> None:
    """`newer`: the pass at which a newer commit is published, mid-rollout or after it."""
    gateways, agents = fleet
    sim = Simulation(gateways, agents)
    state = State.settled(OLD)
    seen = Seen(commit=NEW, before={g.name: OLD for g in gateways})
    targets = seen.before
    for index in range(PASSES):
        now = 1000.0 + PASS * index
        if index == newer:
            seen = Seen(commit=NEWER, before=dict(targets))
        reported = sim.reported(now)
        decision = decide(rollout, state, reported, published=seen.commit, now=now)
        check(rollout, reported, decision, now, seen)
        targets = dict(decision.targets)
        sim.act(decision, index, now)
        state = rolloutstate.load(rolloutstate.dump(decision.state), fallback=OLD)  # persisted
    failing = [g.name for g in gateways if agents[g.name].fails and not g.dry_run]
    if not failing:
        assert state.halted is None
        assert state.step == rolloutstate.COMPLETE, "a rollout without failures did not finish"
        reached = {g.commit for g in sim.gateways.values() if not agents[g.name].fails}
        assert reached <= {seen.commit}
