"""One controller pass over a GatewaySync's fleet rollout (issue 17; docs/rollouts.md): the
state from `status.rollout`, the discovered gateways as the rollout sees them (pairs, profiles,
labels, their agents' reports), the approvals that verify, then `rollouts.decide`; back come
what to publish (the baseline commit, each gateway's target, the health window) and what to
write (`status.rollout`, the `Progressing` condition).

Thin: every rule is stoker_core's (rollouts, rolloutstate, rolloutstatus, approvals); this
module only gathers the inputs and shapes the outputs. The I/O (the approval key Secret, the
writes) stays in the controller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from stoker_core import approvals, conditions, profiles, rollouts, rolloutstate, rolloutstatus
from stoker_core.errors import InvalidInput
from stoker_core.model import GatewaySync, OnFailure
from stoker_core.rolloutstate import State
from stoker_core.vocabulary import DEFAULT_PROFILE, Condition

REQUEUE = 5.0  # seconds between passes while a rollout moves (reports also wake it)
_MOVING = {rollouts.Reason.PROGRESSING, rollouts.Reason.PAUSED}


@attrs.frozen(slots=True, kw_only=True)
class Outcome:
    """What one pass of a rollout publishes and writes."""

    commit: str  # the metadata's `commit`: where gateways `targets` does not name are held
    targets: Mapping[str, str]  # gateway name → commit (the metadata keeps those differing)
    health_window: str
    gateways: list[conditions.Gateway]  # as discovered, each with its target
    record: dict[str, Any]  # status.rollout
    progress: rollouts.Progress | None
    phases: Mapping[str, rollouts.Phase]  # gateway name → where it is (metrics)
    within: float | None  # look again within this many seconds (None: nothing moves by itself)
    steps: tuple[str, ...]  # step names as events say them, the unselected gateways' last

    @property
    def state(self) -> State:
        """The state this pass persists."""
        return rolloutstate.load(self.record, fallback=self.commit)


def state_of(previous: Mapping[str, Any], resolved: str) -> State:
    """The persisted state: `status.rollout` read defensively, else settled at the commit last
    published to every gateway (a GatewaySync seen for the first time with a rollout)."""
    last = previous.get("lastSyncCommit") or ""
    record = previous.get("rollout")
    if not isinstance(record, Mapping):
        return State.settled(last if isinstance(last, str) else "")
    return rolloutstate.load(record, fallback=last if isinstance(last, str) and last else resolved)


def run(
    gs: GatewaySync,
    found: Sequence[conditions.Gateway],
    *,
    resolved: str,
    previous: Mapping[str, Any],
    key: bytes,
    now: float,
) -> Outcome:
    """Decide this pass of `gs`'s rollout of `resolved` over the gateways `found`."""
    rollout = gs.spec.rollout
    if rollout is None:
        raise ValueError(f"GatewaySync {gs.metadata.name} has no spec.rollout")
    state = state_of(previous, resolved)
    meta = gs.metadata
    verified = approvals.verified(
        meta.annotations,
        key=key,
        namespace=meta.namespace,
        name=meta.name,
        uid=str(meta.extra.get("uid", "")),
        commit=resolved,
    )
    members = _members(gs, found, state, resolved)
    decision = rollouts.decide(
        rollout, state, members, published=resolved, approvals=verified.gates, now=now
    )
    new = decision.state
    old = previous.get("rollout") if isinstance(previous.get("rollout"), Mapping) else None
    since, by = rolloutstatus.carried(old, new, now)
    record = rolloutstatus.record(
        new,
        awaiting=decision.awaiting,
        by={**by, **verified.by},
        ignored=verified.ignored,
        since=since,
    )
    complete = new.step == rolloutstate.COMPLETE and new.halted is None
    return Outcome(
        commit=new.commit if complete else new.baseline,
        targets=dict(decision.targets),
        health_window=rollout.health_window,
        gateways=[
            attrs.evolve(g, target=decision.targets.get(g.name, new.baseline)) for g in found
        ],
        record=record,
        progress=decision.progress,
        phases=rollouts.phases(rollout, new, members, now=now),
        within=_within(decision),
        steps=tuple(rollouts.step_names(rollout)),
    )


def condition(
    outcome: Outcome, generation: int, now: str, previous: Sequence[dict[str, Any]]
) -> dict[str, Any] | None:
    """The `Progressing` condition (None before the rollout has anything to say)."""
    progress = outcome.progress
    if progress is None:
        return None
    message = progress.message
    ignored = outcome.record.get("ignored") or []
    if progress.reason is rollouts.Reason.AWAITING_APPROVAL and ignored:
        # Why an approval someone gave does not count belongs where they look first.
        message += f"; {len(ignored)} approval(s) ignored: {ignored[0]}"
    return conditions.condition(
        Condition.PROGRESSING,
        progress.status,
        progress.reason,
        message,
        generation,
        now,
        previous,
    )


def events(
    gs: GatewaySync, old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> list[rolloutstatus.Event]:
    """The rollout's events between the `status.rollout` last written and the new one."""
    rollout = gs.spec.rollout
    if rollout is None:
        return []
    return rolloutstatus.events(
        old,
        new,
        steps=rollouts.step_names(rollout),
        rollback=rollout.on_failure is OnFailure.ROLLBACK,
    )


def _within(decision: rollouts.Decision) -> float | None:
    progress = decision.progress
    return REQUEUE if progress is not None and progress.reason in _MOVING else None


def _members(
    gs: GatewaySync, found: Sequence[conditions.Gateway], state: State, resolved: str
) -> list[rollouts.Gateway]:
    """The discovered gateways as the rollout sees them: their pairs, profiles and labels, and
    their agents' reports read against the targets they were given last pass."""
    told = [attrs.evolve(g, target=state.target(g.name) or resolved) for g in found]
    where = conditions.standing(told, resolved)
    paired = rollouts.pairs([(g.name, g.owner, g.ordinal) for g in found])
    return [
        rollouts.observe(
            rollouts.Gateway(
                name=g.name,
                profile=g.profile or DEFAULT_PROFILE,
                labels=dict(g.labels),
                pair=paired.get(g.name, ("", False))[0],
                backup=paired.get(g.name, ("", False))[1],
                dry_run=_dry_run(gs, g.profile),
            ),
            standing,
            g.report(),
        )
        for g, standing in zip(found, where, strict=True)
    ]


def _dry_run(gs: GatewaySync, profile: str) -> bool:
    try:
        return profiles.resolve(gs.spec.sync, profile).dry_run
    except InvalidInput:  # an unknown profile: its agent reports the error, the rollout waits
        return False
