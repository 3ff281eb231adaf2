"""Which gateway moves next in a fleet rollout (issue 17): one pure function, `decide`, of the
rollout spec, the persisted rollout state, the commit the controller resolved, the approvals
it verified, the agents' reports and the time; it returns each gateway's target commit, the
new state and the `Progressing` condition.

The controller keeps nothing else: after a restart or a leader change it calls `decide` with
the state it persisted (`status.rollout`) and carries on where it was
(stoker_k8s.rolloutpass).

Rules, each kept here once:
- Steps run in order; a gateway belongs to the first step that selects it, gateways no step
  selects move last (`waves`). A step starts when the one before is done (and its pause over).
- At most the step's allowance of its gateways is *moving* (given the commit, not yet done).
- A gateway is done when its agent reports it in step at the commit and healthy for
  `healthWindow` (measured by the agent: `stoker_core.healthchecks`). A `dryRun` gateway is
  given the commit when its step starts and is never counted: it neither holds a step back
  nor fills its allowance.
- A gateway fails the commit when its agent rejects it, reports `Error` RETRIES times in a
  row, or finds it unhealthy within the window (`observe`).
- A redundant pair is one unit: its primary moves first, its backup once the primary is done,
  so one node always runs a commit that has held (`pairs`).
- A failed gateway halts the rollout: gateways not yet moved stay where they are, the failed one
  is sent back to its previous target (its agent has rolled its files back; a target it failed
  would be retried every period), `rollback` sends back every gateway this rollout moved. A
  halted commit stays halted; a newer commit starts a new rollout from the first step, and so
  does an approved `resume` of the halted commit (once per halted commit).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence

import attrs

from stoker_core import model, waves
from stoker_core.parsing import unstructure
from stoker_core.rolloutstate import COMPLETE, ERROR_CHARS, Halt, State
from stoker_core.standings import IN_STEP, NAMED, Report, Standing
from stoker_core.vocabulary import SyncStatus

ROLLOUT_GATE = "rollout"  # the approval a commit needs before its first step
RETRIES = 3  # failed attempts of a commit in a row after which an `Error` is a failure
RESUME_GATE = "resume"  # the approval that starts a halted commit again (`stoker rollout resume`)


class Reason(enum.StrEnum):
    """Reasons of the `Progressing` condition (Kubernetes' Deployment shape: True while moving
    or done, Unknown while waiting on a person or a pause, False when halted)."""

    PROGRESSING = "RolloutProgressing"
    PAUSED = "RolloutPaused"
    AWAITING_APPROVAL = "AwaitingApproval"
    HALTED = "RolloutHalted"
    COMPLETE = "RolloutComplete"


class Phase(enum.Enum):
    """Where a gateway is in the rollout of the commit."""

    WAITING = "waiting"  # not yet given the commit
    MOVING = "moving"  # given it, not yet done
    DONE = "done"
    FAILED = "failed"
    UNCOUNTED = "uncounted"  # dryRun: given the commit, never counted


@attrs.frozen(slots=True, kw_only=True)
class Gateway:
    """One gateway as the rollout sees it (the controller builds it from discovery and the
    standings of its agent's report)."""

    name: str
    profile: str = ""
    labels: Mapping[str, str] = attrs.field(factory=dict)
    pair: str = ""  # the redundant pair it belongs to (`pairs`); "" alone
    backup: bool = False  # the pair's backup
    dry_run: bool = False
    commit: str = ""  # the commit its agent reports it in step at
    healthy_for: float = 0.0  # seconds its agent has seen it healthy at `commit`
    failed: str = ""  # a commit it failed (Rejected, Error past RETRIES, unhealthy)
    error: str = ""  # that failure, as the agent said it
    # Its agent reports but does not read per-gateway targets (a release before them, its pod
    # not restarted since the upgrade): it stays at the baseline, and the condition says why.
    old_agent: bool = False


@attrs.frozen(slots=True, kw_only=True)
class Progress:
    """The `Progressing` condition."""

    status: str
    reason: Reason
    message: str


@attrs.frozen(slots=True, kw_only=True)
class Decision:
    """Each gateway's target, the state to persist, the condition, the approval awaited."""

    targets: Mapping[str, str]
    state: State
    progress: Progress | None
    awaiting: str = ""  # the gate an approval of `state.commit` must name ("": none)


def observe(
    gateway: Gateway, standing: Standing, report: Report | None, *, said: str = ""
) -> Gateway:
    """`gateway` (its identity filled) with what its agent reports, read through the status
    model: the commit it is in step at (its result counts as in step there, or it is a backup
    its primary covers) and how long its agent has seen it healthy there (its health window,
    for that commit), and a commit it failed and why: `Rejected`, `Error` after RETRIES
    attempts in a row (fewer hold its step: the agent retries), or unhealthy within the
    window. `said` overrides the report's error text."""
    if report is None:
        return attrs.evolve(
            gateway, commit="", healthy_for=0.0, failed="", error="", old_agent=False
        )
    in_step = report.result in IN_STEP or standing.in_step
    health = report.health
    watched = health is not None and in_step and health.commit == report.commit
    failure = _failure(report, watched)
    return attrs.evolve(
        gateway,
        commit=report.commit if in_step else "",
        healthy_for=health.healthy_for if watched and health is not None else 0.0,
        failed=report.commit if failure else "",
        error=(said or failure)[:ERROR_CHARS] if failure else "",
        old_agent=bool(report.result) and not report.reads_targets,
    )


def _failure(report: Report, watched: bool) -> str:
    """What failed the report's commit, as the agent said it ("": nothing did)."""
    if report.result == SyncStatus.REJECTED:
        return report.error or "rejected"
    if report.result == SyncStatus.ERROR and report.failures >= RETRIES:
        return f"{report.failures} attempts failed: {report.error or 'error'}"
    if watched and report.health is not None and report.health.unhealthy:
        return f"unhealthy within the health window: {report.health.problem or 'checks failed'}"
    return ""


def pairs(members: Sequence[tuple[str, str, int | None]]) -> dict[str, tuple[str, bool]]:
    """Redundant pairs among (gateway name, owner, StatefulSet ordinal): the two gateways of a
    StatefulSet whose claimed pods are exactly ordinals 0 and 1 (the Ignition chart's
    redundancy layout, named `<instance>` and `<instance>-1`). Returns name → (pair key,
    is the backup) for the members of a pair; any other gateway moves alone."""
    by_owner: dict[str, list[tuple[str, int | None]]] = {}
    for name, owner, ordinal in members:
        if owner.startswith("StatefulSet "):
            by_owner.setdefault(owner, []).append((name, ordinal))
    return {
        name: (owner, ordinal == 1)
        for owner, group in by_owner.items()
        if sorted(o for _, o in group if o is not None) == [0, 1] and len(group) == 2
        for name, ordinal in group
    }


def decide(
    rollout: model.Rollout | None,
    state: State,
    gateways: Sequence[Gateway],
    *,
    published: str,
    approvals: Collection[str] = (),
    now: float,
) -> Decision:
    """Targets, the new state and the condition for one pass (pure: same inputs, same answer).
    `approvals` are the gates the controller verified as approved for `published`."""
    if rollout is None or not state.commit:
        settled = State.settled(published)
        return Decision(targets={g.name: published for g in gateways}, state=settled, progress=None)
    plan = digest(rollout)
    if published != state.commit:
        state = attrs.evolve(_restart(state, published, gateways), plan=plan)
    elif state.plan != plan:  # new steps: their indexes mean other gateways now
        restarted = state if state.halted else _restart(state, published, gateways)
        state = attrs.evolve(restarted, plan=plan)
    if state.halted is not None and _resumed(state, approvals):
        state = _resume(state, gateways)
    if state.halted is not None:
        return _decision(state, gateways, _halted(state.halted))  # on every pass, as it halted
    state = attrs.evolve(state, approvals=tuple(sorted({*state.approvals, *approvals})))
    if rollout.approval is model.Approval.REQUIRED and ROLLOUT_GATE not in state.approvals:
        return _awaiting(state, gateways, ROLLOUT_GATE, "the commit")
    return _walk(rollout, state, gateways, now)


def digest(rollout: model.Rollout) -> str:
    """A short digest of a rollout's steps (what a step index means)."""
    steps = json.dumps(unstructure(rollout.steps), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(steps.encode()).hexdigest()[:16]


def _restart(old: State, commit: str, gateways: Sequence[Gateway]) -> State:
    """A newer commit: a new rollout from the first step; every gateway stays where it is."""
    baseline = old.commit if old.halted is None and old.step == COMPLETE else old.baseline
    where = {g.name: old.target(g.name) for g in gateways}
    held = {name: at for name, at in where.items() if at != baseline}
    return State(commit=commit, baseline=baseline, held=held)


def _resumed(state: State, approvals: Collection[str]) -> bool:
    """Whether a person approved `resume` of the halted commit, not yet used (one resume per
    halted commit: the approval stays on the object, and a second halt must not loop)."""
    halt = state.halted
    return (
        halt is not None
        and halt.commit == state.commit
        and RESUME_GATE in approvals
        and RESUME_GATE not in state.approvals
    )


def _resume(state: State, gateways: Sequence[Gateway]) -> State:
    """The halted commit's rollout again from its first step: the halt cleared, every gateway
    where the halt left it (nothing moves before its step), the gates approved kept."""
    restarted = _restart(attrs.evolve(state, halted=None, step=0), state.commit, gateways)
    approved = tuple(sorted({*state.approvals, RESUME_GATE}))
    return attrs.evolve(restarted, plan=state.plan, approvals=approved)


def _units(rollout: model.Rollout, gateways: Sequence[Gateway]) -> list[list[list[Gateway]]]:
    """Per step, its units in name order: a pair (primary first) or a single gateway. A pair
    belongs to the earliest step selecting either node, so it is never split."""
    grouped: dict[str, list[Gateway]] = {}
    for g in sorted(gateways, key=lambda g: (g.backup, g.name)):
        grouped.setdefault(g.pair or "\0" + g.name, []).append(g)
    steps: list[list[list[Gateway]]] = [[] for _ in range(len(rollout.steps) + 1)]
    for unit in sorted(grouped.values(), key=lambda u: u[0].name):
        index = min(waves.step_of(rollout, _member(g)) for g in unit)
        steps[index].append(unit)
    return steps


def _member(g: Gateway) -> waves.Member:
    return waves.Member(name=g.name, profile=g.profile, labels=g.labels)


def _phase(g: Gateway, state: State, window: float, now: float) -> Phase:
    if g.name not in state.moved:
        return Phase.WAITING
    if g.dry_run:
        return Phase.UNCOUNTED
    if g.failed and g.failed == state.commit:
        return Phase.FAILED
    return Phase.DONE if g.commit == state.commit and g.healthy_for >= window else Phase.MOVING


def _walk(
    rollout: model.Rollout, state: State, gateways: Sequence[Gateway], now: float
) -> Decision:
    if state.baseline == state.commit and not state.held:  # every gateway is at the commit
        return _decision(state, gateways, _complete(state))
    window = waves.seconds(rollout.health_window)
    steps = _units(rollout, gateways)
    for index, units in enumerate(steps):
        if index > state.step:
            break
        first = index == state.step and len(state.started) <= index
        if first:
            gate = _step_gate(rollout, index)
            if gate and gate not in state.approvals:
                return _awaiting(state, gateways, gate, f"step {_name(rollout, index)}")
            state = attrs.evolve(state, started=(*state.started, now))
        members = [g for unit in units for g in unit]
        failed = [g for g in members if _phase(g, state, window, now) is Phase.FAILED]
        if failed:
            return _halt(rollout, state, gateways, failed[0], now)
        state = _move(rollout, state, index, units, window, now)
        if index < state.step:
            continue
        counted = {g.name: _phase(g, state, window, now) for g in members if not g.dry_run}
        if any(p is not Phase.DONE for p in counted.values()):
            stale = [g.name for g in members if g.old_agent and counted.get(g.name) is Phase.MOVING]
            progress = _moving(rollout, state, index, counted, stale)
            return _decision(state, gateways, progress)
        if len(state.finished) <= index:
            state = attrs.evolve(state, finished=(*state.finished, now))
        waiting = _pause(rollout, state, index, gateways, now)
        if waiting is not None:
            return waiting
        state = attrs.evolve(state, step=index + 1)
    return _decision(attrs.evolve(state, step=COMPLETE), gateways, _complete(state))


def _complete(state: State) -> Progress:
    message = f"commit {state.commit[:12]} reached every gateway"
    return Progress(status="True", reason=Reason.COMPLETE, message=message)


def _move(
    rollout: model.Rollout,
    state: State,
    index: int,
    units: list[list[Gateway]],
    window: float,
    now: float,
) -> State:
    """Give the commit to as many of the step's units as its allowance leaves room for: to a
    unit's next node once no node of it is moving; dryRun gateways all at once, uncounted."""
    size = sum(1 for unit in units for g in unit if not g.dry_run)
    phases = {g.name: _phase(g, state, window, now) for unit in units for g in unit}
    room = waves.allowance(rollout, index, size) - sum(
        1 for p in phases.values() if p is Phase.MOVING
    )
    moved = list(state.moved)
    for unit in units:
        counted = [g for g in unit if not g.dry_run]
        moved += [g.name for g in unit if g.dry_run and phases[g.name] is Phase.WAITING]
        if any(phases[g.name] is Phase.MOVING for g in counted):
            continue
        waiting = [g for g in counted if phases[g.name] is Phase.WAITING]
        if waiting and room > 0:
            moved.append(waiting[0].name)
            room -= 1
    return attrs.evolve(state, moved=tuple(moved))


def _halt(
    rollout: model.Rollout, state: State, gateways: Sequence[Gateway], g: Gateway, now: float
) -> Decision:
    error = g.error if len(g.error) <= ERROR_CHARS else g.error[: ERROR_CHARS - 1] + "…"
    keep = rollout.on_failure is model.OnFailure.HALT
    moved = tuple(n for n in state.moved if keep and n != g.name)
    halt = Halt(gateway=g.name, commit=state.commit, error=error, at=now, rolled_back=not keep)
    state = attrs.evolve(state, moved=moved, halted=halt)
    return _decision(state, gateways, _halted(halt))


def _halted(halt: Halt) -> Progress:
    back = "; the gateways it had moved are sent back" if halt.rolled_back else ""
    return Progress(
        status="False",
        reason=Reason.HALTED,
        message=f"gateway {halt.gateway} failed commit {halt.commit[:12]}: {halt.error}; "
        f"gateways not yet moved stay on their previous commit{back}. A newer commit starts "
        "a new rollout; stoker rollout resume starts this one again from its first step",
    )


def _step_gate(rollout: model.Rollout, index: int) -> str:
    if index < len(rollout.steps) and rollout.steps[index].approval is model.Approval.REQUIRED:
        return f"step:{_name(rollout, index)}"
    return ""


def _pause(
    rollout: model.Rollout, state: State, index: int, gateways: Sequence[Gateway], now: float
) -> Decision | None:
    """The wait after a done step, if it is not over (None: go on)."""
    pause = rollout.steps[index].pause if index < len(rollout.steps) else None
    if pause is None:
        return None
    name = _name(rollout, index)
    if pause.until_approved:
        gate = f"pause:{name}"
        return (
            None
            if gate in state.approvals
            else _awaiting(state, gateways, gate, f"past step {name}")
        )
    left = state.finished[index] + waves.seconds(pause.duration) - now
    if left <= 0:
        return None
    message = f"step {name} is done; the next starts in {left:.0f}s (pause {pause.duration})"
    return _decision(
        state, gateways, Progress(status="Unknown", reason=Reason.PAUSED, message=message)
    )


def _moving(
    rollout: model.Rollout,
    state: State,
    index: int,
    phases: Mapping[str, Phase],
    stale: Sequence[str] = (),
) -> Progress:
    """The step's counts, naming the first gateways it waits on (one whose agent never
    reports the commit shows here) and those whose agent does not read targets (`stale`)."""
    done = sum(1 for p in phases.values() if p is Phase.DONE)
    moving = [name for name, p in phases.items() if p is Phase.MOVING]
    more = f" and {len(moving) - NAMED} more" if len(moving) > NAMED else ""
    named = f" ({', '.join(moving[:NAMED])}{more})" if moving else ""
    total = len(rollout.steps) + 1
    return Progress(
        status="True",
        reason=Reason.PROGRESSING,
        message=f"commit {state.commit[:12]}: step {index + 1}/{total} {_name(rollout, index)}: "
        f"{done} of {len(phases)} gateway(s) done, {len(moving)} moving{named}{_stale(stale)}",
    )


def _stale(names: Sequence[str]) -> str:
    """Why gateways whose agent does not read targets never move, and the fix."""
    if not names:
        return ""
    more = f" and {len(names) - NAMED} more" if len(names) > NAMED else ""
    return (
        f"; {', '.join(names[:NAMED])}{more}: its agent does not read per-gateway targets (a "
        "release before them) and stays at the baseline commit until its pod is restarted"
    )


def _awaiting(state: State, gateways: Sequence[Gateway], gate: str, what: str) -> Decision:
    progress = Progress(
        status="Unknown",
        reason=Reason.AWAITING_APPROVAL,
        message=f"{what} waits for an approval of commit {state.commit}",
    )
    return attrs.evolve(_decision(state, gateways, progress), awaiting=gate)


def _name(rollout: model.Rollout, index: int) -> str:
    if index < len(rollout.steps):
        return waves.step_name(rollout.steps[index], index)
    return "unselected"


def _decision(state: State, gateways: Sequence[Gateway], progress: Progress | None) -> Decision:
    return Decision(
        targets={g.name: state.target(g.name) for g in gateways}, state=state, progress=progress
    )


def step_names(rollout: model.Rollout) -> list[str]:
    """Every step's name as messages and gates say it, the unselected gateways' step last."""
    return [_name(rollout, i) for i in range(len(rollout.steps) + 1)]


def phases(
    rollout: model.Rollout, state: State, gateways: Sequence[Gateway], *, now: float
) -> dict[str, Phase]:
    """Where each gateway is in the rollout `state` describes (for metrics and people)."""
    window = waves.seconds(rollout.health_window)
    return {g.name: _phase(g, state, window, now) for g in gateways}
