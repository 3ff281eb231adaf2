"""A GatewaySync's history in the cluster (issue 17): `status.history`, the last N published
commits, oldest first, each with who or what asked for it, when it was published, its steps,
its outcome, who approved it and where each gateway given it stands.

Pure: each pass the controller hands over the status.history it last wrote, the commit it
published (or the rollout's, from `status.rollout`), the marks the receiver left on the
GatewaySync, each gateway's target and standing, and the time; it writes what comes back with
the rest of the status, so the history survives a restart. What it reads back is hostile input
(anyone with the status subresource may have written it, a damaged one must not stop a
reconcile): the reading is stoker_core.history's (known fields of their type, strings bounded),
an entry that is not one is dropped and counted. Bounded in entries (`spec.historyLimit`) and
in bytes (BYTE_CAP, oldest dropped first; a single entry too large shows fewer gateways).
"""

from __future__ import annotations

import enum
import functools
import json
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from stoker_core import history, model, waves
from stoker_core.model import Approver, GatewayOutcome, HistoryEntry, HistoryStep, Requester
from stoker_core.parsing import unstructure, wire_name
from stoker_core.receiving import Source, valid_delivery
from stoker_core.rolloutstate import COMPLETE, State, load
from stoker_core.vocabulary import Annotation

BYTE_CAP = 64 * 1024  # bytes of status.history as JSON: far below the object's 1.5 MiB
MAX_GATEWAYS = 250  # gateways listed per entry; more are counted in gatewaysNotShown
TIME_CHARS = 64  # of a time, a commit, an outcome or a gate read back
ALL = "all"  # the one step of a commit published without a rollout
UNSELECTED = "unselected"  # the last step: the gateways no step selects
_SHORT = {"commit", "published_at", "started_at", "finished_at", "at", "outcome", "via"}
_STAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")  # RFC 3339, UTC
_SOURCES = frozenset(s.value for s in Source)


class Via(enum.StrEnum):
    """What asked for a commit."""

    RECEIVER = "receiver"  # a push or CD event (its source and delivery id)
    POLLING = "polling"  # the ref moved, found by polling, with no receiver mark
    REQUESTED_REF = "requested-ref"  # stoker.io/requested-ref written by hand
    SPEC = "spec"  # spec.git.ref changed (or the GatewaySync's first commit)


class Outcome(enum.StrEnum):
    """How a published commit went."""

    PROGRESSING = "Progressing"
    AWAITING_APPROVAL = "AwaitingApproval"
    HALTED = "Halted"
    COMPLETE = "Complete"
    SUPERSEDED = "Superseded"  # a newer commit came before this one was complete


OPEN = frozenset({Outcome.PROGRESSING, Outcome.AWAITING_APPROVAL, ""})
PENDING = "Pending"  # a gateway given a commit whose agent reports another one


@attrs.frozen(slots=True, kw_only=True)
class Seen:
    """One gateway this pass: the commit it should be at, its syncStatus and whether it is
    in step there (stoker_core.conditions.standing), and its agent's last report."""

    name: str
    target: str
    status: str
    in_step: bool = False
    reported: str = ""  # the commit its agent last reported about ("": none)
    result: str = ""  # what it reported about that commit (Synced, Rejected, ...)


@attrs.frozen(slots=True, kw_only=True)
class Asked:
    """What tells who asked for a new commit: the GatewaySync's annotations (the receiver's
    marks) and whether this pass resolved afresh because the receiver asked it to."""

    annotations: Mapping[str, Any] = attrs.field(factory=dict)
    refreshed: bool = False


@attrs.frozen(slots=True)
class Read:
    """A status.history read back: its well-formed entries, oldest first, and how many were
    not entries (dropped)."""

    entries: tuple[HistoryEntry, ...] = ()
    damaged: int = 0


def read(raw: Any) -> Read:
    """Read status.history defensively (only the newest MAX_HISTORY items are looked at)."""
    if not isinstance(raw, list):
        return Read(damaged=0 if raw is None else 1)
    items = raw[-model.MAX_HISTORY :]
    entries = [_read(HistoryEntry, item) for item in items]
    kept = tuple(e for e in entries if isinstance(e, HistoryEntry) and e.commit)
    return Read(kept, len(raw) - len(kept))


def _read(cls: type, body: Any) -> Any:
    """An instance of the model class `cls` from `body`, or None when `body` is not one: every
    known field of its type, strings within their bound, lists within theirs."""
    if not isinstance(body, Mapping):
        return None
    values: dict[str, Any] = {}
    for name, wire, tp in _fields(cls):
        if wire not in body:
            continue
        value = _value(tp, body[wire], name)
        if value is None:
            return None
        values[name] = value
    return cls(**values)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, Any], ...]:
    """(attribute, wire name, type) of each field of a model class, worked out once."""
    hints = typing.get_type_hints(cls, vars(model))
    return tuple((f.name, wire_name(f), hints[f.name]) for f in attrs.fields(cls))


def _value(tp: Any, raw: Any, name: str) -> Any:
    if attrs.has(tp):
        return _read(tp, raw)
    if typing.get_origin(tp) is tuple:
        if not isinstance(raw, list) or len(raw) > MAX_GATEWAYS:
            return None
        items = [_read(typing.get_args(tp)[0], item) for item in raw]
        return None if any(i is None for i in items) else tuple(items)
    bound = TIME_CHARS if name in _SHORT else history.MAX_TEXT
    return history.typed(raw, tp, bound)


def advance(
    previous: Any,
    *,
    commit: str,
    ref: str,
    asked: Asked,
    gateways: Sequence[Seen],
    now: float,
    limit: int = model.DEFAULT_HISTORY,
    rollout: Mapping[str, Any] | None = None,
    steps: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The new status.history: `previous` (as last written) with `commit` (the one published
    this pass; the rollout's when `rollout`, status.rollout, holds one) recorded, each
    gateway's standing at its target, the steps (`steps`: their names) and the outcome, within
    `limit` entries and BYTE_CAP bytes."""
    entries = list(read(previous).entries)
    state = load(rollout, fallback="") if isinstance(rollout, Mapping) else None
    current = state.commit if state is not None and state.commit else commit
    if not current:
        return dump(bounded(entries, limit))
    stamp = _stamp(now)
    if not entries or entries[-1].commit != current:
        last = entries[-1] if entries else None
        entries = [_superseded(e) for e in entries]
        entries.append(
            HistoryEntry(
                commit=current[:TIME_CHARS],
                ref=ref[: history.MAX_TEXT],
                requested_by=requester(asked, ref=ref, last=last),
                published_at=stamp,
            )
        )
    entries = _placed(entries, gateways, stamp)
    if state is not None and state.commit == current:
        entries[-1] = _rolled(entries[-1], state, rollout or {}, steps)
    else:
        entries[-1] = _at_once(entries[-1], gateways, stamp)
    return dump(bounded(entries, limit))


def requester(asked: Asked, *, ref: str, last: HistoryEntry | None) -> Requester:
    """Who asked for a commit first seen now: the receiver's mark on the GatewaySync (a
    requested ref, or the refresh this pass made) unless the last entry already used it or it
    predates that entry; else a changed ref (`spec`), else `polling`."""
    notes = asked.annotations
    marks = []
    requested = notes.get(Annotation.REQUESTED_REF)
    if isinstance(requested, str) and requested and requested == ref:
        source = _source(notes.get(Annotation.REQUESTED_BY))
        marks.append(
            Requester(
                via=Via.RECEIVER if source else Via.REQUESTED_REF,
                source=source,
                delivery=valid_delivery(notes.get(Annotation.REQUESTED_DELIVERY)),
                at=_when(notes.get(Annotation.REQUESTED_AT)),
            )
        )
    if asked.refreshed:
        marks.append(
            Requester(
                via=Via.RECEIVER,
                source=_source(notes.get(Annotation.REFRESH_REQUESTED_BY)),
                delivery=valid_delivery(notes.get(Annotation.REFRESH_DELIVERY)),
                at=_when(notes.get(Annotation.REFRESH_REQUESTED_AT)),
            )
        )
    for mark in marks:
        unused = last is None or mark != last.requested_by
        if unused and (last is None or not mark.at or mark.at >= last.published_at):
            return mark
    if last is None or last.ref != ref:
        return Requester(via=Via.SPEC)
    return Requester(via=Via.POLLING)


def _source(value: Any) -> str:
    """A receiver source named by an annotation ("" unless it is one)."""
    return value if isinstance(value, str) and value in _SOURCES else ""


def _when(value: Any) -> str:
    """An annotation's time when it is one as the receiver writes it (RFC 3339 in UTC, to
    the second), else ""."""
    if not isinstance(value, str) or len(value) > TIME_CHARS:
        return ""
    found = _STAMP.fullmatch(value)
    if found is None:
        return ""
    _, month, day, hour, minute, second = (int(part) for part in found.groups())
    ok = 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61
    return value if ok else ""


def _stamp(seconds: float) -> str:
    """Epoch seconds as RFC 3339 in UTC (civil from days: H. Hinnant's algorithm; the core
    imports no clock or calendar library); "" outside years 1970-9999 (a damaged record)."""
    if not 0 <= seconds < 253_402_300_800:
        return ""
    days, rest = divmod(int(seconds), 86400)
    days += 719468
    era, doe = divmod(days, 146097)
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    hour, minute, second = rest // 3600, rest % 3600 // 60, rest % 60
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"


def _superseded(entry: HistoryEntry) -> HistoryEntry:
    return attrs.evolve(entry, outcome=Outcome.SUPERSEDED) if entry.outcome in OPEN else entry


def _placed(
    entries: list[HistoryEntry], gateways: Sequence[Seen], stamp: str
) -> list[HistoryEntry]:
    """Each gateway in the newest entry of the commit it should be at: its standing once its
    agent reports about that commit (or about none), else listed as given (`Pending`); and
    what its agent reports about another commit it was given (a rejected commit it was sent
    back from) in that commit's entry. `at`: when an outcome was first seen."""
    newest = {e.commit: i for i, e in enumerate(entries)}
    marks: dict[int, list[tuple[str, str, _Mark]]] = {}
    for g in gateways:
        if g.target in newest:
            there = g.reported in ("", g.target)
            mark = (g.name, g.status if there else PENDING, _Mark.SET if there else _Mark.ADD)
            marks.setdefault(newest[g.target], []).append(mark)
        if g.reported and g.reported != g.target and g.reported in newest and g.result:
            marks.setdefault(newest[g.reported], []).append((g.name, g.result, _Mark.LISTED))
    out = list(entries)
    for index, seen in marks.items():
        out[index] = _outcomes(out[index], seen, stamp)
    return out


class _Mark(enum.Enum):
    """How an outcome changes an entry's list of gateways."""

    SET = "set"  # add or change
    ADD = "add"  # add only (a gateway given the commit, not yet there)
    LISTED = "listed"  # change only (a gateway the commit was given before)


def _outcomes(
    entry: HistoryEntry, seen: Sequence[tuple[str, str, _Mark]], stamp: str
) -> HistoryEntry:
    listed = {g.name: g for g in entry.gateways}
    missing = 0
    for full, status, mark in seen:
        name, outcome = full[: history.MAX_TEXT], status[:TIME_CHARS]
        old = listed.get(name)
        if old is None and mark is _Mark.LISTED:
            continue
        if old is not None and (old.outcome == outcome or mark is _Mark.ADD):
            continue
        if old is None and len(listed) >= MAX_GATEWAYS:
            missing += 1
            continue
        listed[name] = GatewayOutcome(name=name, outcome=outcome, at=stamp)
    return attrs.evolve(
        entry,
        gateways=tuple(listed[n] for n in sorted(listed)),
        gateways_not_shown=max(entry.gateways_not_shown, missing),
    )


def _rolled(
    entry: HistoryEntry, state: State, rollout: Mapping[str, Any], steps: Sequence[str]
) -> HistoryEntry:
    """The newest entry from the rollout's state: its steps, outcome and approvals."""
    started = [_stamp(t) for t in state.started]
    finished = [_stamp(t) for t in state.finished]
    names = [*steps]
    shown = tuple(
        HistoryStep(
            name=(names[i] if i < len(names) else f"step-{i + 1}")[: history.MAX_TEXT],
            started_at=at,
            finished_at=finished[i] if i < len(finished) else "",
        )
        for i, at in enumerate(started)
    )
    if state.halted is not None and state.halted.commit == state.commit:
        outcome = Outcome.HALTED
    elif state.step >= COMPLETE:
        outcome = Outcome.COMPLETE
    elif rollout.get("awaiting"):
        outcome = Outcome.AWAITING_APPROVAL
    else:
        outcome = Outcome.PROGRESSING
    by = rollout.get("approvedBy")
    approved = _approvers(by) if isinstance(by, Mapping) else entry.approved_by
    return attrs.evolve(entry, steps=shown, outcome=outcome, approved_by=approved)


def _approvers(by: Mapping[Any, Any]) -> tuple[Approver, ...]:
    pairs = [(g, u) for g, u in by.items() if isinstance(g, str) and isinstance(u, str)]
    return tuple(
        Approver(gate=gate[:TIME_CHARS], user=user[: history.MAX_TEXT])
        for gate, user in sorted(pairs)[: model.MAX_STEPS * 2 + 2]
    )


def _at_once(entry: HistoryEntry, gateways: Sequence[Seen], stamp: str) -> HistoryEntry:
    """The newest entry of a commit published without a rollout: one step, done once every
    gateway is in step at it."""
    step = entry.steps[0] if entry.steps else HistoryStep(name=ALL, started_at=entry.published_at)
    done = all(g.in_step and g.target == entry.commit for g in gateways)
    if done and not step.finished_at:
        step = attrs.evolve(step, finished_at=stamp)
    outcome = Outcome.COMPLETE if step.finished_at else Outcome.PROGRESSING
    return attrs.evolve(entry, steps=(step,), outcome=outcome)


def step_names(rollout: model.Rollout | None) -> list[str]:
    """The names of a rollout's steps as the history shows them, the unselected gateways' last."""
    if rollout is None:
        return []
    return [waves.step_name(s, i) for i, s in enumerate(rollout.steps)] + [UNSELECTED]


def bounded(entries: Sequence[HistoryEntry], limit: int) -> list[HistoryEntry]:
    """The newest `limit` entries within BYTE_CAP bytes: the oldest go first; the newest alone
    too large lists fewer gateways (counted in gatewaysNotShown)."""
    kept = list(entries[-max(1, min(limit, model.MAX_HISTORY)) :])
    sizes = [_size(e) for e in kept]
    while len(kept) > 1 and sum(sizes) + len(kept) + 1 > BYTE_CAP:
        kept.pop(0)
        sizes.pop(0)
    while kept and _size(kept[-1]) + 2 > BYTE_CAP:
        last = kept[-1]
        if not last.gateways:  # only a hand-written entry gets here: its lists go
            kept[-1] = attrs.evolve(last, steps=(), approved_by=())
            break
        shown = len(last.gateways) // 2
        kept[-1] = attrs.evolve(
            last,
            gateways=last.gateways[:shown],
            gateways_not_shown=last.gateways_not_shown + len(last.gateways) - shown,
        )
    return kept


def _size(entry: HistoryEntry) -> int:
    return len(_json(unstructure(entry)))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dump(entries: Sequence[HistoryEntry]) -> list[dict[str, Any]]:
    """The entries as status.history holds them (every field written: the API server's
    defaults would otherwise make the stored copy differ from a fresh one)."""
    out: list[dict[str, Any]] = json.loads(_json([unstructure(e) for e in entries]))
    return out  # plain JSON data (the enums become their strings)
