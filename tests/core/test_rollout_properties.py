"""Properties of the rollout decision (stoker_core.rollouts) over random fleets, rollouts and
agents: a simulated controller calls `decide` every 10 s and the agents act on the targets,
some late, some failing; every decision is checked against the rules of issue 17."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stoker_core import rollouts, waves
from stoker_core.model import OnFailure, Pause, Rollout, RolloutStep, StepSelector
from stoker_core.rollouts import Decision, Gateway, State, decide

OLD, NEW = "a" * 40, "b" * 40
PASS = 10.0
PASSES = 120


@attrs.frozen
class Agent:
    """How a simulated agent behaves: passes before it applies a target, whether it fails NEW."""

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
                    healthy_since=0.0,
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
            if target == NEW and self.agents[name].fails:
                self.gateways[name] = attrs.evolve(g, failed=NEW, error="project rejected")
            else:
                self.gateways[name] = attrs.evolve(g, commit=target, healthy_since=now, failed="")


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


def check(
    rollout: Rollout,
    gateways: list[Gateway],
    decision: Decision,
    now: float,
    ever: set[str],
) -> None:
    window = waves.seconds(rollout.health_window)
    steps = unit_steps(rollout, gateways)

    def done(g: Gateway) -> bool:
        healthy = g.healthy_since is not None and now - g.healthy_since >= window
        return g.commit == NEW and healthy and g.failed != NEW

    counted = [g for g in gateways if not g.dry_run]
    moving = [g for g in counted if decision.targets[g.name] == NEW and not done(g)]
    for index in set(steps.values()):
        members = [g for g in counted if steps[g.name] == index]
        allowed = waves.allowance(rollout, index, len(members))
        at_once = [g.name for g in moving if steps[g.name] == index]
        assert len(at_once) <= allowed, f"step {index}: {at_once} moving, {allowed} allowed"
    for g in gateways:
        if decision.targets[g.name] == NEW:
            earlier = [e.name for e in counted if steps[e.name] < steps[g.name] and not done(e)]
            assert not earlier, f"{g.name} moves while {earlier} of an earlier step are not done"
    pairs: dict[str, list[str]] = {}
    for g in moving:
        if g.pair:
            pairs.setdefault(g.pair, []).append(g.name)
    assert all(len(nodes) < 2 for nodes in pairs.values()), f"a pair applies at once: {pairs}"
    if decision.state.halted is not None:
        untouched = [n for n, t in decision.targets.items() if n not in ever and t != OLD]
        assert not untouched, f"halted, yet {untouched} never moved are not on {OLD[:7]}"
        if rollout.on_failure is OnFailure.ROLLBACK:
            assert set(decision.targets.values()) == {OLD}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=fleets(), rollout=plans())
def test_a_rollout_keeps_its_rules_at_every_pass(
    fleet: tuple[list[Gateway], dict[str, Agent]], rollout: Rollout
) -> None:
    gateways, agents = fleet
    sim = Simulation(gateways, agents)
    state = State.settled(OLD)
    ever: set[str] = set()
    halted: dict[str, str] | None = None
    for index in range(PASSES):
        now = 1000.0 + PASS * index
        seen = list(sim.gateways.values())
        decision = decide(rollout, state, seen, published=NEW, now=now)
        check(rollout, seen, decision, now, ever)
        if halted is not None:
            assert decision.targets == halted, "a halted commit moved a gateway again"
        elif decision.state.halted is not None:
            halted = dict(decision.targets)
        ever |= {n for n, t in decision.targets.items() if t == NEW}
        sim.act(decision, index, now)
        state = rollouts.load(rollouts.dump(decision.state))  # persisted every pass
    failing = [g.name for g in gateways if agents[g.name].fails and not g.dry_run]
    if not failing:
        assert state.halted is None
        assert state.step == rollouts.COMPLETE, "a rollout without failures did not finish"
        assert all(g.commit == NEW for g in sim.gateways.values() if not agents[g.name].fails)
