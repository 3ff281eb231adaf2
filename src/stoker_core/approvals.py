"""Approvals of a rollout's commit (issue 17; docs/rollouts.md, "Approvals"): the annotation a
person writes, the stamp the admission webhook puts in its place, and the check the controller
makes before it counts one.

A person (`stoker approve`, or by hand) writes the commit SHA under `approval.stoker.io/<gate>`.
The mutating webhook checks the writer's right to `approve` and that the commit is the pending
one, then rewrites the value to a stamp: the commit, who (the API server's `userInfo`), when,
and an HMAC-SHA256 over the object's namespace, name and uid, the gate, the commit, who and
when, keyed by a Secret only the webhook and the controller read. The controller counts only
stamps that verify: an approval written while the webhook was bypassed, copied from another
GatewaySync (or another incarnation of this one), moved to another gate, or edited to another
commit does not. Everything read here is hostile: bounded in size and count, parsed once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from stoker_core import jsontext
from stoker_core.refs import SHA
from stoker_core.vocabulary import GUARDED_ANNOTATIONS

PREFIX = GUARDED_ANNOTATIONS  # "approval.stoker.io/"
# `rollouts.ROLLOUT_GATE`, spelled here so that `rollouts` may import this module (a test
# keeps the two equal).
ROLLOUT_GATE = "rollout"
# The Secret holding the key, in Stoker's namespace (the webhook creates it, the controller
# reads it): the chart names it `<release>-approval-key` and tells the controller in
# STOKER_APPROVAL_KEY_SECRET; this is the default release's name.
KEY_SECRET = "stoker-approval-key"
KEY_SECRET_ENV = "STOKER_APPROVAL_KEY_SECRET"
RESUME_GATE = "resume"  # restarts a halted commit from its first step (`stoker rollout resume`)
KINDS = ("step", "pause")  # gates that name a step: `step:<name>`, `pause:<name>`
MAX_VALUE = 2048  # characters of an annotation value read: a stamp is about 200
MAX_READ = 64  # approval annotations read per object; more are ignored, said once
MAX_NAME = 63  # characters of an annotation key's name part (the API server's rule)
_STAMP_KEYS = frozenset({"commit", "by", "at", "sig"})
_SHOWN = 60  # characters of a hostile key shown in a sentence


@attrs.frozen(slots=True, kw_only=True)
class Stamp:
    """An approval as the webhook recorded it."""

    commit: str
    by: str
    at: str  # RFC 3339, the webhook's clock
    sig: str  # hex HMAC-SHA256 (`sign`)


@attrs.frozen(slots=True, kw_only=True)
class Verified:
    """What the controller may count for one commit, and what it must say it ignored."""

    gates: frozenset[str] = frozenset()
    by: Mapping[str, str] = attrs.field(factory=dict)  # gate → the approving user
    ignored: tuple[str, ...] = ()  # one sentence per approval not counted


def key(gate: str) -> str:
    """The annotation key of a gate: `step:test` → `approval.stoker.io/step.test`."""
    return PREFIX + gate.replace(":", ".", 1)


def gate_of(annotation: str) -> str:
    """The gate an annotation key approves, "" when it is not an approval key."""
    if not annotation.startswith(PREFIX):
        return ""
    rest = annotation[len(PREFIX) :]
    if rest in (ROLLOUT_GATE, RESUME_GATE):
        return rest
    kind, dot, name = rest.partition(".")
    return f"{kind}:{name}" if kind in KINDS and dot and name else ""


def too_long(gate: str) -> str:
    """Why a gate's key is not a valid annotation key ("": it is), for the CLI to say first."""
    name = key(gate)[len(PREFIX) :]
    if len(name) <= MAX_NAME:
        return ""
    return (
        f"the annotation key for {gate} would be {len(name)} characters after "
        f'"{PREFIX}", more than the {MAX_NAME} Kubernetes allows: give the step a name of '
        f"at most {MAX_NAME - len(gate.partition(':')[0]) - 1} characters"
    )


def sign(
    secret: bytes, *, namespace: str, name: str, uid: str, gate: str, commit: str, by: str, at: str
) -> str:
    """The stamp's signature: HMAC-SHA256 over every field it binds, as one JSON array (no
    separator a user name could forge)."""
    message = json.dumps([namespace, name, uid, gate, commit, by, at], ensure_ascii=True)
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def stamp(
    secret: bytes, *, namespace: str, name: str, uid: str, gate: str, commit: str, by: str, at: str
) -> str:
    """The annotation value the webhook writes for an approval it admits."""
    sig = sign(
        secret, namespace=namespace, name=name, uid=uid, gate=gate, commit=commit, by=by, at=at
    )
    return json.dumps({"commit": commit, "by": by, "at": at, "sig": sig}, sort_keys=True)


def parse(value: str) -> Stamp | None:
    """A stamp read from an annotation value, None when it is not one (a plain SHA, damaged
    JSON, other fields, a value over `MAX_VALUE`)."""
    if len(value) > MAX_VALUE or not value.startswith("{"):
        return None
    try:
        data: Any = jsontext.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != _STAMP_KEYS:
        return None
    if not all(isinstance(data[k], str) for k in _STAMP_KEYS) or not SHA.match(data["commit"]):
        return None
    return Stamp(commit=data["commit"], by=data["by"], at=data["at"], sig=data["sig"])


def verified(
    annotations: Mapping[str, Any],
    *,
    key: bytes,
    namespace: str,
    name: str,
    uid: str,
    commit: str,
) -> Verified:
    """The gates approved for `commit` by stamps that verify against `key`, and one sentence
    per approval annotation not counted. An empty key verifies nothing (the Secret could not
    be read): every approval is then ignored, and said to be."""
    gates: set[str] = set()
    by: dict[str, str] = {}
    ignored: list[str] = []
    read = 0
    for annotation, value in annotations.items():
        if not isinstance(annotation, str) or not annotation.startswith(PREFIX):
            continue
        read += 1
        if read > MAX_READ:
            ignored.append(f"more than {MAX_READ} approval annotations: the rest are ignored")
            break
        gate = gate_of(annotation)
        found = _check(key, annotation, gate, value, namespace, name, uid, commit)
        if isinstance(found, str):
            ignored.append(found)
            continue
        gates.add(gate)
        by[gate] = found.by
    return Verified(gates=frozenset(gates), by=by, ignored=tuple(ignored))


def _check(
    secret: bytes,
    annotation: str,
    gate: str,
    value: Any,
    namespace: str,
    name: str,
    uid: str,
    commit: str,
) -> Stamp | str:
    """The stamp of an approval annotation that counts for `commit`, else why it does not."""
    shown = annotation[:_SHOWN]
    if not gate:
        return f"{shown} names no approval gate (rollout, resume, step.NAME, pause.NAME): ignored"
    found = parse(value) if isinstance(value, str) else None
    if found is None:
        plain = isinstance(value, str) and bool(SHA.match(value))
        what = "a plain commit SHA" if plain else "not a stamp the webhook wrote"
        return (
            f"{shown} is {what}: ignored (written while the approval webhook was bypassed, "
            f"or damaged); approve again with stoker approve"
        )
    if not secret:
        return f"{shown} cannot be checked: the approval key Secret could not be read"
    expected = sign(
        secret,
        namespace=namespace,
        name=name,
        uid=uid,
        gate=gate,
        commit=found.commit,
        by=found.by,
        at=found.at,
    )
    if not hmac.compare_digest(expected, found.sig):
        return (
            f"{shown} carries a stamp that does not verify for this GatewaySync: ignored "
            f"(copied from another object, moved to another gate, or edited)"
        )
    if found.commit != commit:
        return f"{shown} approves commit {found.commit[:12]}, not {commit[:12]}: ignored"
    return found


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The approval annotations an update adds or changes, as (key, new value) in key order;
    removals are not listed (taking an approval back needs no right to approve)."""
    return sorted(
        (k, v)
        for k, v in new.items()
        if isinstance(k, str) and k.startswith(PREFIX) and old.get(k) != v
    )


def pending(status: Mapping[str, Any], gate: str) -> str:
    """The commit an approval of `gate` must name, from the stored `status.rollout` ("": none
    pending): the halted commit for `resume`, else the commit on its way (`pendingCommit`, ""
    once complete or halted; a record without it: `commit`)."""
    rollout = status.get("rollout")
    if not isinstance(rollout, Mapping):
        return ""
    if gate == RESUME_GATE:
        halted = rollout.get("halted")
        found = halted.get("commit") if isinstance(halted, Mapping) else None
    else:
        found = rollout.get("pendingCommit", rollout.get("commit"))
    return found if isinstance(found, str) and SHA.match(found) else ""


def step_names(spec: Mapping[str, Any]) -> list[str]:
    """The steps' names as gates say them (their own, else `step-N`), read leniently."""
    rollout = spec.get("rollout")
    steps = rollout.get("steps") if isinstance(rollout, Mapping) else None
    if not isinstance(steps, list):
        return []
    return [_step_name(step, i) for i, step in enumerate(steps)]


def _step_name(step: Any, index: int) -> str:
    name = step.get("name") if isinstance(step, Mapping) else None
    return name if isinstance(name, str) and name else f"step-{index + 1}"


def gates(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The approval gates a spec's rollout holds, in the order a commit meets them: `rollout`,
    then per step `step:<name>` and `pause:<name>`. Read leniently (a stored object may be of
    another release): only the values the CRD admits count, anything else is no gate."""
    rollout = spec.get("rollout")
    if not isinstance(rollout, Mapping):
        return ()
    found = [ROLLOUT_GATE] if rollout.get("approval") == "required" else []
    steps = rollout.get("steps")
    for index, step in enumerate(steps if isinstance(steps, list) else ()):
        if not isinstance(step, Mapping):
            continue
        name = _step_name(step, index)
        if step.get("approval") == "required":
            found.append(f"step:{name}")
        pause = step.get("pause")
        if isinstance(pause, Mapping) and pause.get("untilApproved") is True:
            found.append(f"pause:{name}")
    return tuple(dict.fromkeys(found))


def removed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The gates of spec `old` that spec `new` lacks, in `old`'s order: what an update takes
    away. A gate is known by its name, so a gated step renamed (or an unnamed one moved, its
    `step-N` changing) counts as removed; a step's selector changing does not."""
    kept = set(gates(new))
    return [gate for gate in gates(old) if gate not in kept]


def described(gate: str) -> str:
    """A gate in the words of the spec that holds it, for messages."""
    kind, _, name = gate.partition(":")
    if kind == "step":
        return f'approval: required of step "{name}"'
    if kind == "pause":
        return f'pause: {{untilApproved: true}} after step "{name}"'
    return "spec.rollout.approval: required"


def unknown_step(gate: str, names: Iterable[str]) -> str:
    """Why a step or pause gate names no step of the spec ("": it names one)."""
    kind, _, step = gate.partition(":")
    if kind not in KINDS:
        return ""
    listed = list(names)
    if step in listed:
        return ""
    known = ", ".join(listed[:10]) or "none"
    return f"spec.rollout.steps has no step named {step[:_SHOWN]!r} (steps: {known})"
