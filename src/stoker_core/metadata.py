"""The metadata ConfigMap the controller publishes for the agents of one GatewaySync.

Keys (all strings): `commit` (resolved SHA), `ref` (the ref as resolved), `repo`, `paused`
("true"/"false": the agents idle when true), and `gatewaysync` — the CR's spec as canonical
JSON, so an agent resolves its own profile with the same core code and compares metadata by
value, never by raw text (`spec.rollout` and `spec.historyLimit` left out: the agents never
read them). Secrets are never in it: credentials reach the agent only as mounted Secret files.

Format "2" (a GatewaySync with `spec.rollout`, issue 17) adds `targets` (canonical JSON: gateway
name → commit, only the gateways held at another commit than `commit`) and `healthWindow` (the
rollout's duration text). `commit` stays the baseline every gateway not named is held at: an
agent of the release before format "2" reads only `commit`, which holds it back with the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from stoker_core import jsontext
from stoker_core.durations import parse_duration
from stoker_core.errors import InvalidInput
from stoker_core.model import GatewaySync
from stoker_core.parsing import unstructure
from stoker_core.refs import SHA
from stoker_core.validation import load
from stoker_core.waves import MAX_WINDOW

FORMAT = "1"
FORMAT_TARGETS = "2"  # with `targets` or `healthWindow`: a rollout is on


def name_for(cr_name: str) -> str:
    """The metadata ConfigMap's name."""
    return f"stoker-metadata-{cr_name}"


def status_name_for(cr_name: str, pod_name: str) -> str:
    """One status ConfigMap per gateway pod, written only by that pod's agent."""
    return f"stoker-status-{cr_name}-{pod_name}"[:253]


def agent_identity_for(cr_name: str) -> str:
    """The agents' own ServiceAccount (and its Role and RoleBinding) for one GatewaySync: never
    the gateway pod's ServiceAccount, which the gateway container holds too."""
    return f"stoker-agent-{cr_name}"


def agent_token_for(cr_name: str) -> str:
    """The Secret holding that ServiceAccount's token, mounted into the sidecar only."""
    return f"stoker-agent-token-{cr_name}"


def encode(
    gs: GatewaySync,
    *,
    commit: str,
    ref: str,
    targets: Mapping[str, str] | None = None,
    health_window: str = "",
) -> dict[str, str]:
    """ConfigMap data for `gs` at the baseline `commit`, each gateway of `targets` at its own."""
    body = {
        "apiVersion": gs.api_version,
        "kind": gs.kind,
        "metadata": {"name": gs.metadata.name, "namespace": gs.metadata.namespace},
        # The rollout and the history limit are the controller's alone (it publishes each
        # gateway's target, it writes status.history); an agent of the release before them
        # reads the spec strictly and would refuse an unknown field.
        "spec": unstructure(attrs.evolve(gs.spec, rollout=None, history_limit=None)),
    }
    data = {
        "format": FORMAT,
        "commit": commit,
        "ref": ref,
        "repo": gs.spec.git.repo,
        "paused": "true" if gs.spec.paused else "false",
        "gatewaysync": _canonical(_strip_nulls(body)),
    }
    differing = {name: at for name, at in (targets or {}).items() if at != commit}
    if differing:
        data["targets"] = _canonical(differing)
    if health_window:
        data["healthWindow"] = health_window
    if differing or health_window:
        data["format"] = FORMAT_TARGETS
    return data


@attrs.frozen(slots=True, kw_only=True)
class Published:
    """What an agent reads back."""

    gatewaysync: GatewaySync
    commit: str  # the baseline: every gateway `targets` does not name
    ref: str
    paused: bool
    targets: Mapping[str, str] = attrs.field(factory=dict)
    health_window: float = 0.0  # seconds; 0: no rollout, nothing to watch after a sync

    def commit_for(self, gateway_name: str) -> str:
        """The commit this gateway is to be at: its target, else the baseline."""
        return self.targets.get(gateway_name, self.commit)


def decode(data: Mapping[str, str]) -> Published | None:
    """Parse ConfigMap data; None while the controller has not resolved a commit yet."""
    if not data.get("commit"):
        return None
    try:
        gs = load(jsontext.loads(data["gatewaysync"]))
    except (KeyError, ValueError) as e:
        raise InvalidInput.one(f"metadata ConfigMap is damaged: {e}", field="gatewaysync") from None
    return Published(
        gatewaysync=gs,
        commit=data["commit"],
        ref=data.get("ref", ""),
        paused=data.get("paused") == "true",
        targets=_targets(data.get("targets", "")),
        health_window=_window(data.get("healthWindow", "")),
    )


def _targets(text: str) -> dict[str, str]:
    """The `targets` key: a JSON object of gateway name → 40-hex commit, or InvalidInput."""
    if not text:
        return {}
    try:
        value = jsontext.loads(text)
    except ValueError as e:
        raise InvalidInput.one(f"metadata ConfigMap is damaged: {e}", field="targets") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and SHA.match(v) for k, v in value.items()
    ):
        raise InvalidInput.one(
            "metadata ConfigMap is damaged: targets must map gateway names to 40-hex commits",
            field="targets",
        )
    return value


def _window(text: str) -> float:
    """The `healthWindow` key in seconds (0: absent), or InvalidInput."""
    if not text:
        return 0.0
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise InvalidInput.one(
            f"metadata ConfigMap is damaged: {e}", field="healthWindow"
        ) from None
    if not 0 <= seconds <= MAX_WINDOW:
        raise InvalidInput.one(
            f'metadata ConfigMap is damaged: healthWindow "{text[:40]}" is out of range',
            field="healthWindow",
        )
    return seconds


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value
