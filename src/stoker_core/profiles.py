"""Profile resolution: which profile a gateway uses and what it inherits from the defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from typing import TypeVar

import attrs

from stoker_core import model
from stoker_core.errors import InvalidInput
from stoker_core.fieldwise import FIELDWISE
from stoker_core.vocabulary import DEFAULT_PROFILE


@attrs.frozen(slots=True, kw_only=True)
class EffectiveProfile:
    """A profile with every inherited value filled in."""

    __eq__, __hash__, __repr__ = FIELDWISE

    name: str
    mappings: tuple[model.Mapping, ...]
    exclude_patterns: tuple[str, ...]
    vars: dict[str, str]
    vars_from: tuple[model.VarFrom, ...]
    sync_period: int
    dry_run: bool
    designer_session_policy: model.DesignerPolicy
    paused: bool
    drift_policy: model.DriftPolicy
    rollback_on_failure: bool
    apply_on_backup: bool


V = TypeVar("V")


def _pick(value: V | None, inherited: V) -> V:
    return inherited if value is None else value


def resolve(spec: model.SyncSpec, name: str | None) -> EffectiveProfile:
    """Return the effective profile `name` (empty or None means `default`); raise if missing."""
    wanted = name or DEFAULT_PROFILE
    profile = spec.profiles.get(wanted)
    if profile is None:
        known = ", ".join(sorted(spec.profiles)) or "none"
        hint = (
            "add a 'default' profile or set the stoker.io/profile annotation"
            if not name
            else "fix the stoker.io/profile annotation (or --profile)"
        )
        raise InvalidInput.one(
            f'profile "{wanted}" not found (profiles: {known}); {hint}',
            field="spec.sync.profiles",
        )
    d = spec.defaults
    return EffectiveProfile(
        name=wanted,
        mappings=profile.mappings,
        exclude_patterns=tuple(dict.fromkeys((*d.exclude_patterns, *profile.exclude_patterns))),
        vars={**d.vars, **profile.vars},
        vars_from=tuple({v.name: v for v in (*d.vars_from, *profile.vars_from)}.values()),
        sync_period=_pick(profile.sync_period, d.sync_period),
        dry_run=_pick(profile.dry_run, d.dry_run),
        designer_session_policy=_pick(profile.designer_session_policy, d.designer_session_policy),
        paused=_pick(profile.paused, d.paused),
        drift_policy=_pick(profile.drift_policy, d.drift_policy),
        rollback_on_failure=_pick(profile.rollback_on_failure, d.rollback_on_failure),
        apply_on_backup=_pick(profile.apply_on_backup, d.apply_on_backup),
    )


_TRAILING_NUMBER = re.compile(r"-([+-]?\d+)$")


def pod_ordinal(pod_name: str, labels: MappingABC[str, str]) -> int:
    """Return a pod's ordinal: the pod-index label, else a trailing `-N` in its name, else 0."""
    index = labels.get("apps.kubernetes.io/pod-index", "")
    if re.fullmatch(r"[+-]?\d+", index.strip()):
        return int(index)
    match = _TRAILING_NUMBER.search(pod_name)
    return int(match.group(1)) if match else 0
