"""`status.rollout` as the controller writes it (issue 17) and the rollout events read from two
of them: the persisted state (`rolloutstate.dump`) plus what people and the CLI read (the gate
awaited, the commit pending, who approved what, the approvals ignored), and one event per step
started or done, approval, halt, rollback and completion, computed from the record last written
and the new one (so a restart or a repeated pass never says a thing twice).

Pure: the controller passes the records and writes what comes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from stoker_core.rolloutstate import COMPLETE, ERROR_CHARS, State, dump, load
from stoker_core.vocabulary import Reason

IGNORED = 10  # approvals ignored, kept in the record (each one sentence, cut at ERROR_CHARS)


@attrs.frozen(slots=True, kw_only=True)
class Event:
    """One event about a GatewaySync's rollout."""

    reason: Reason
    message: str
    warning: bool = False


def record(
    state: State,
    *,
    awaiting: str,
    by: Mapping[str, str],
    ignored: Sequence[str],
    since: float,
) -> dict[str, Any]:
    """`status.rollout`: `state` as persisted, and `awaiting` (the gate an approval must name,
    "" none), `pendingCommit` (the commit still on its way: "" once complete or halted),
    `approvedBy` (gate → the user the admission webhook stamped), `ignored` (one sentence per
    approval that does not count) and `since` (when this commit's rollout began)."""
    out = dump(state)
    if out.get("halted") is None:
        out.pop("halted", None)  # the API server prunes a null: keep the stored copy equal
    moving = state.step != COMPLETE and state.halted is None
    out["awaiting"] = awaiting
    out["pendingCommit"] = state.commit if moving else ""
    out["approvedBy"] = {gate: by[gate] for gate in state.approvals if gate in by}
    out["ignored"] = [text[:ERROR_CHARS] for text in ignored[:IGNORED]]
    out["since"] = since
    return out


def carried(
    old: Mapping[str, Any] | None, state: State, now: float
) -> tuple[float, dict[str, str]]:
    """What the new record keeps of the last one for the same commit: when its rollout began
    and who approved its gates (the annotations may have been removed since)."""
    if not old or old.get("commit") != state.commit:
        return now, {}
    since = old.get("since")
    by = old.get("approvedBy")
    return (
        float(since) if isinstance(since, int | float) and not isinstance(since, bool) else now,
        {k: v for k, v in by.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(by, Mapping)
        else {},
    )


def events(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    steps: Sequence[str],
    rollback: bool,
) -> list[Event]:
    """The events between the record last written (`old`, None: none) and `new`; `steps` names
    the steps (the unselected gateways' last), `rollback`: onFailure sends moved gateways back."""
    after = load(new, fallback="")
    before = load(old, fallback="") if old else None
    same = before is not None and before.commit == after.commit
    was = before if same and before is not None else State(commit=after.commit)
    # A resumed commit runs its steps again from the first: they start (and finish) anew.
    ran = State() if was.halted is not None and after.halted is None else was
    short = after.commit[:12]
    out = [
        Event(
            reason=Reason.ROLLOUT_STEP_STARTED,
            message=f"commit {short}: step {i + 1}/{len(steps)} {_step(steps, i)} started",
        )
        for i in range(len(ran.started), len(after.started))
    ]
    out += [
        Event(
            reason=Reason.ROLLOUT_STEP_DONE,
            message=f"commit {short}: step {i + 1}/{len(steps)} {_step(steps, i)} is done",
        )
        for i in range(len(ran.finished), len(after.finished))
    ]
    given = new.get("approvedBy")
    who: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    out += [
        Event(
            reason=Reason.ROLLOUT_APPROVED,
            message=f"{gate} approved for commit {short} by {who.get(gate) or 'an unknown user'}",
        )
        for gate in after.approvals
        if gate not in was.approvals
    ]
    out += _ends(was, after, rollback=rollback)
    seen = set(old.get("ignored") or []) if old else set()
    out += [
        Event(reason=Reason.APPROVAL_IGNORED, message=text, warning=True)
        for text in new.get("ignored") or []
        if text not in seen
    ]
    return out


def _ends(was: State, after: State, *, rollback: bool) -> list[Event]:
    """The halt (and rollback) or the completion, when it is new."""
    halt = after.halted
    if halt is not None and halt != was.halted:
        said = [
            Event(
                reason=Reason.ROLLOUT_HALTED,
                message=f"gateway {halt.gateway} failed commit {halt.commit[:12]}: {halt.error}",
                warning=True,
            )
        ]
        if rollback:
            said.append(
                Event(
                    reason=Reason.ROLLOUT_ROLLED_BACK,
                    message=f"commit {halt.commit[:12]} halted: the gateways it had moved are "
                    f"sent back to {after.baseline[:12]}",
                    warning=True,
                )
            )
        return said
    done = after.halted is None and after.step == COMPLETE and after.commit != after.baseline
    if done and not (was.step == COMPLETE and was.halted is None):
        return [
            Event(
                reason=Reason.ROLLOUT_COMPLETE,
                message=f"commit {after.commit[:12]} reached every gateway",
            )
        ]
    return []


def _step(steps: Sequence[str], index: int) -> str:
    return steps[index] if index < len(steps) else f"step-{index + 1}"
