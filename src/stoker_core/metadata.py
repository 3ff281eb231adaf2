"""The metadata ConfigMap the controller publishes for the agents of one GatewaySync.

Keys (all strings): `commit` (resolved SHA), `ref` (the ref as resolved), `repo`, `paused`
("true"/"false": the agents idle when true), and `gatewaysync` — the CR's spec as canonical
JSON, so an agent resolves its own profile with the same core code and compares metadata by
value, never by raw text (`spec.rollout` left out: the agents never read it). Secrets are never
in it: credentials reach the agent only as mounted Secret files.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from stoker_core.errors import InvalidInput
from stoker_core.model import GatewaySync
from stoker_core.parsing import unstructure
from stoker_core.validation import load

FORMAT = "1"


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


def encode(gs: GatewaySync, *, commit: str, ref: str) -> dict[str, str]:
    """ConfigMap data for `gs` at `commit`."""
    body = {
        "apiVersion": gs.api_version,
        "kind": gs.kind,
        "metadata": {"name": gs.metadata.name, "namespace": gs.metadata.namespace},
        # The rollout is the controller's alone (it publishes each gateway's target); an agent
        # of the release before it reads the spec strictly and would refuse an unknown field.
        "spec": unstructure(attrs.evolve(gs.spec, rollout=None)),
    }
    return {
        "format": FORMAT,
        "commit": commit,
        "ref": ref,
        "repo": gs.spec.git.repo,
        "paused": "true" if gs.spec.paused else "false",
        "gatewaysync": json.dumps(_strip_nulls(body), sort_keys=True, separators=(",", ":")),
    }


@attrs.frozen(slots=True, kw_only=True)
class Published:
    """What an agent reads back."""

    gatewaysync: GatewaySync
    commit: str
    ref: str
    paused: bool


def decode(data: dict[str, str]) -> Published | None:
    """Parse ConfigMap data; None while the controller has not resolved a commit yet."""
    if not data.get("commit"):
        return None
    try:
        gs = load(json.loads(data["gatewaysync"]))
    except (KeyError, ValueError) as e:
        raise InvalidInput.one(f"metadata ConfigMap is damaged: {e}", field="gatewaysync") from None
    return Published(
        gatewaysync=gs,
        commit=data["commit"],
        ref=data.get("ref", ""),
        paused=data.get("paused") == "true",
    )


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value
