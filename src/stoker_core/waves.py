"""A rollout's steps read from `spec.rollout` (issue 17): what is wrong with them, which step
holds a gateway, and how many of a step's gateways may move at once.

Pure. `validation` reports the problems with the rest of a GatewaySync; `rollouts` (the decision
of which gateway moves next) uses the rest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping

import attrs

from stoker_core import model
from stoker_core.durations import parse_duration
from stoker_core.errors import Problem

BASE = "spec.rollout"
MAX_PAUSE = 30 * 24 * 3600  # a pause longer than a month is a forgotten rollout
MAX_WINDOW = 24 * 3600  # a health window longer than a day holds every step for a day
# Kubernetes label syntax: an optional DNS-subdomain prefix and "/", a name of at most 63
# characters; values the same name rule or empty.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@attrs.frozen(slots=True, kw_only=True)
class Member:
    """What a step's selector reads of a gateway."""

    name: str
    profile: str
    labels: Mapping[str, str] = attrs.field(factory=dict)


def step_name(step: model.RolloutStep, index: int) -> str:
    """A step's name as messages and approvals say it: its own, else `step-N` (from 1)."""
    return step.name or f"step-{index + 1}"


def matches(selector: model.StepSelector, member: Member) -> bool:
    """Whether every criterion the selector gives holds for the gateway (an empty one: none)."""
    given = selector.match_labels or selector.gateways or selector.profiles
    return (
        bool(given)
        and all(member.labels.get(k) == v for k, v in selector.match_labels.items())
        and (not selector.gateways or member.name in selector.gateways)
        and (not selector.profiles or member.profile in selector.profiles)
    )


def step_of(rollout: model.Rollout, member: Member) -> int:
    """The index of the first step whose selector matches; `len(steps)`: none (moves last)."""
    return next(
        (i for i, step in enumerate(rollout.steps) if matches(step.selector, member)),
        len(rollout.steps),
    )


def allowance(rollout: model.Rollout, index: int, size: int) -> int:
    """How many of a step's `size` gateways may be moving at once: its count, or its percent of
    `size` rounded down, and never less than 1 (else nothing would ever move). The gateways no
    step matches move with the last step's `maxUnavailable`; with no steps at all, every one."""
    if not rollout.steps:
        return max(size, 1)
    step = rollout.steps[min(index, len(rollout.steps) - 1)]
    value = step.max_unavailable
    if isinstance(value, int):
        return max(value, 1)
    percent = int(value.rstrip("%")) if re.fullmatch(model.PERCENT, value) else 100
    return max(math.floor(size * percent / 100), 1)


def seconds(text: str) -> float:
    """A duration the validator accepted, in seconds (an unparsable one counts as 0)."""
    try:
        return max(parse_duration(text), 0.0)
    except ValueError:
        return 0.0


def problems(rollout: model.Rollout, profiles: Mapping[str, object]) -> Iterator[Problem]:
    """Every problem in `spec.rollout`, each naming its field and the fix."""
    yield from _duration(f"{BASE}.healthWindow", rollout.health_window, MAX_WINDOW)
    names: dict[str, int] = {}
    owners: dict[tuple[str, str], int] = {}
    for i, step in enumerate(rollout.steps):
        where = f"{BASE}.steps[{i}]"
        yield from _step(where, step, profiles)
        if step.name and step.name in names:
            yield Problem(
                field=f"{where}.name",
                message=f'"{step.name}" also names steps[{names[step.name]}]; give each step '
                "its own name",
            )
        names.setdefault(step.name, i)
        chosen = [("gateway", g) for g in step.selector.gateways]
        chosen += [("profile", p) for p in step.selector.profiles]
        for kind, value in chosen:
            first = owners.setdefault((kind, value), i)
            if first != i:
                yield Problem(
                    field=f"{where}.selector.{kind}s",
                    message=f'{kind} "{value}" is also chosen by steps[{first}], which takes it '
                    "first; name it in one step only",
                )


def _step(where: str, step: model.RolloutStep, profiles: Mapping[str, object]) -> Iterator[Problem]:
    if step.name and not _DNS_LABEL.match(step.name):
        yield Problem(
            field=f"{where}.name", message=f'"{step.name}" must be a DNS label, e.g. "line-1"'
        )
    yield from _selector(f"{where}.selector", step.selector, profiles)
    yield from _unavailable(f"{where}.maxUnavailable", step.max_unavailable)
    if step.pause is None:
        return
    if bool(step.pause.duration) == step.pause.until_approved:
        yield Problem(
            field=f"{where}.pause",
            message='set exactly one of duration (e.g. "30m") and untilApproved: true',
        )
    elif step.pause.duration:
        yield from _duration(f"{where}.pause.duration", step.pause.duration, MAX_PAUSE)


def _selector(
    where: str, selector: model.StepSelector, profiles: Mapping[str, object]
) -> Iterator[Problem]:
    if not (selector.match_labels or selector.gateways or selector.profiles):
        yield Problem(
            field=where,
            message="selects no gateway; give matchLabels, gateways or profiles (gateways no "
            "step selects move last anyway)",
        )
    for label, value in selector.match_labels.items():
        if len(label) <= model.MAX_LABEL_KEY and not _LABEL_KEY.match(label):
            yield Problem(
                field=f"{where}.matchLabels",
                message=f'"{label[:60]}" is not a label key; write e.g. "stoker.io/wave" or "line"',
            )
        if len(value) <= model.MAX_LABEL_VALUE and not _LABEL_VALUE.match(value):
            yield Problem(
                field=f"{where}.matchLabels.{label[:60]}",
                message=f'"{value}" is not a label value (letters, digits, "-", "_", "."; at most '
                "63; starting and ending with a letter or digit)",
            )
    for i, name in enumerate(selector.profiles):
        if len(name) <= model.MAX_IDENTIFIER and name not in profiles:
            yield Problem(
                field=f"{where}.profiles[{i}]",
                message=f'"{name}" is not a profile of spec.sync.profiles; name one of them',
            )
    for i, name in enumerate(selector.gateways):
        if not name.strip():
            yield Problem(field=f"{where}.gateways[{i}]", message="must not be empty")


def _unavailable(where: str, value: int | str) -> Iterator[Problem]:
    if isinstance(value, int):
        if value < 1:
            yield Problem(
                field=where,
                message=f"must be at least 1, got {value} (0 would never move a gateway)",
            )
    elif len(value) <= model.MAX_SHORT and not re.fullmatch(model.PERCENT, value):
        yield Problem(
            field=where,
            message=f'"{value}" must be a count (e.g. 2) or a percent from "1%" to "100%"',
        )


def _duration(where: str, text: str, longest: float) -> Iterator[Problem]:
    try:
        value = parse_duration(text)
    except ValueError as e:
        yield Problem(field=where, message=str(e))
        return
    if not 0 <= value <= longest:
        yield Problem(
            field=where, message=f'must be from "0s" to "{int(longest // 3600)}h", got "{text}"'
        )
