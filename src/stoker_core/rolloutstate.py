"""The state of a fleet rollout that the controller persists between passes (issue 17;
docs/rollouts.md, "Where the state lives"): what `rollouts.decide` reads and returns, and its
plain-JSON form, read back defensively.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

ERROR_CHARS = 200  # of a gateway's error in a message: enough to act on, bounded
COMPLETE = 1 << 30  # `State.step` once every step is done


@attrs.frozen(slots=True, kw_only=True)
class Halt:
    """Why a rollout stopped."""

    gateway: str
    commit: str
    error: str
    at: float
    rolled_back: bool = False  # onFailure: rollback sent back what the rollout had moved


@attrs.frozen(slots=True, kw_only=True)
class State:
    """What the controller persists between passes."""

    commit: str = ""  # the commit being rolled out
    baseline: str = ""  # where gateways not yet moved are held (new ones too)
    held: Mapping[str, str] = attrs.field(factory=dict)  # others held elsewhere (an older
    # rollout moved them before a newer commit arrived)
    moved: tuple[str, ...] = ()  # gateways this rollout gave `commit`, in order
    step: int = 0  # the step in progress; past the last (the unselected gateways'): complete
    started: tuple[float, ...] = ()  # when each step reached started
    finished: tuple[float, ...] = ()  # when each step reached was done
    approvals: tuple[str, ...] = ()  # the gates approved for `commit`
    halted: Halt | None = None
    plan: str = ""  # a digest of the steps it follows: new steps start the rollout again

    @classmethod
    def settled(cls, commit: str) -> State:
        """A state where every gateway is at `commit` (a GatewaySync seen for the first time is
        seeded with the commit it last published to all)."""
        return cls(commit=commit, baseline=commit, step=COMPLETE)

    def target(self, name: str) -> str:
        """The commit a gateway should be at."""
        return self.commit if name in self.moved else self.held.get(name, self.baseline)


def dump(state: State) -> dict[str, Any]:
    """The state as plain JSON data, for the controller to persist."""
    out: dict[str, Any] = attrs.asdict(state, recurse=True)
    out["held"] = dict(state.held)
    if state.halted is not None:  # the CRD's spelling
        out["halted"]["rolledBack"] = out["halted"].pop("rolled_back")
    return out


def load(record: Mapping[str, Any], *, fallback: str) -> State:
    """A persisted state, read defensively: a malformed one reads as settled at its baseline,
    else at `fallback` (the commit every gateway was last known at), so a damaged record sends
    gateways back and starts the rollout again, never moves one ahead of its wave."""
    try:
        halt = record.get("halted")
        held = record.get("held") or {}
        if not isinstance(held, Mapping):
            raise TypeError("held")
        return State(
            commit=_text(record["commit"]),
            baseline=_text(record["baseline"]),
            held={_text(k): _text(v) for k, v in held.items()},
            moved=tuple(_text(n) for n in _items(record.get("moved"))),
            step=_int(record.get("step", 0)),
            started=tuple(_time(t) for t in _items(record.get("started"))),
            finished=tuple(_time(t) for t in _items(record.get("finished"))),
            approvals=tuple(_text(a) for a in _items(record.get("approvals"))),
            plan=_text(record.get("plan", "")),
            halted=None if halt is None else _halt_of(halt),
        )
    except (KeyError, TypeError, ValueError):
        baseline = record.get("baseline")
        return State.settled(baseline if isinstance(baseline, str) and baseline else fallback)


def _halt_of(record: Any) -> Halt:
    if not isinstance(record, Mapping):
        raise TypeError("halted")
    return Halt(
        gateway=_text(record["gateway"]),
        commit=_text(record["commit"]),
        error=_text(record["error"])[:ERROR_CHARS],
        at=_time(record["at"]),
        rolled_back=record.get("rolledBack", False) is True,
    )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not a string: {type(value).__name__}")
    return value


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise TypeError(f"not a list: {type(value).__name__}")
    return list(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not a whole number: {type(value).__name__}")
    return value


def _time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a time: {value!r:.40}")
    return float(value)
