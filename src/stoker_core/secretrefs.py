"""The Secrets a GatewaySync names, and the `SecretsAvailable` condition that says whether they
exist with the keys it names, before any pod needs them (a missing Secret volume keeps a
gateway pod from starting; a missing key leaves the agent without its credential).

Only names and keys are ever looked at or reported: never a Secret's content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from stoker_core.model import GatewaySync, SecretKeyRef
from stoker_core.vocabulary import Condition, Reason


@attrs.frozen(slots=True, kw_only=True)
class SecretUse:
    """One Secret key a GatewaySync names, and the field that names it."""

    field: str  # "spec.gateway.api" …
    name: str
    key: str


@attrs.frozen(slots=True, kw_only=True)
class Check:
    """What the controller can say about the Secrets: ok (None: it cannot know), and why."""

    ok: bool | None
    reason: str
    message: str


def _ref(field: str, ref: SecretKeyRef) -> SecretUse:
    return SecretUse(field=field, name=ref.name, key=ref.key)


def uses(gs: GatewaySync) -> tuple[SecretUse, ...]:
    """Every Secret key `gs` names: the gateway API key, the Git credentials (token, SSH key
    and known_hosts, GitHub App key) and each varsFrom, in the order of the spec."""
    spec = gs.spec
    api = spec.gateway.api
    out = [SecretUse(field="spec.gateway.api", name=api.secret_name, key=api.secret_key)]
    auth = spec.git.auth
    if auth is not None and auth.token is not None:
        out.append(_ref("spec.git.auth.token.secretRef", auth.token.secret_ref))
    if auth is not None and auth.ssh_key is not None:
        out.append(_ref("spec.git.auth.sshKey.secretRef", auth.ssh_key.secret_ref))
        if auth.ssh_key.known_hosts is not None:
            held = auth.ssh_key.known_hosts.secret_ref
            out.append(_ref("spec.git.auth.sshKey.knownHosts.secretRef", held))
    if auth is not None and auth.github_app is not None:
        held = auth.github_app.private_key_secret_ref
        out.append(_ref("spec.git.auth.githubApp.privateKeySecretRef", held))
    places = [("spec.sync.defaults", spec.sync.defaults.vars_from)]
    places += [
        (f"spec.sync.profiles.{p}", spec.sync.profiles[p].vars_from) for p in spec.sync.profiles
    ]
    for where, sources in places:
        out += [_ref(f"{where}.varsFrom.{v.name}", v.secret_key_ref) for v in sources]
    return tuple(out)


def names(found: Sequence[SecretUse]) -> list[str]:
    """The distinct Secret names, in order (one read each)."""
    return list(dict.fromkeys(u.name for u in found))


def check(
    namespace: str,
    wanted: Sequence[SecretUse],
    keys: Mapping[str, frozenset[str] | None],
    denied: str | None = None,
) -> Check:
    """The verdict on `wanted`, given each Secret's keys (None: it does not exist), or why the
    controller may not read Secrets in `namespace` (`denied`: then it cannot know)."""
    if denied is not None:
        listed = ", ".join(names(wanted))
        return Check(
            ok=None,
            reason=Reason.SECRETS_NOT_CHECKED,
            message=(
                f"not checked: the controller may not read Secrets in namespace {namespace} "
                f"({denied}), so whether {listed} exist is not known; serve the namespace "
                "(chart value `namespaces`) to have them checked"
            ),
        )
    problems: dict[str, None] = {}  # ordered, each sentence once
    for use in wanted:
        held = keys.get(use.name)
        if held is None:
            problems[f"Secret {namespace}/{use.name} not found ({use.field})"] = None
        elif use.key not in held:
            problems[f'key "{use.key}" not in Secret {namespace}/{use.name} ({use.field})'] = None
    if problems:
        return Check(ok=False, reason=Reason.SECRET_MISSING, message="; ".join(problems))
    return Check(
        ok=True,
        reason=Reason.SECRETS_FOUND,
        message=f"All {len(names(wanted))} Secret(s) found with their keys",
    )


def _since(previous: Sequence[Mapping[str, Any]], kind: str, status: str, now: str) -> str:
    old = next((c for c in previous if c.get("type") == kind), None)
    return str(old["lastTransitionTime"]) if old and old.get("status") == status else now


def apply(
    status: dict[str, Any],
    verdict: Check,
    *,
    generation: int,
    now: str,
    previous: Mapping[str, Any],
) -> dict[str, Any]:
    """`status` with the SecretsAvailable condition added (before Ready) and, when a Secret is
    missing, Ready False with reason SecretMissing: its message is the one to act on first,
    unless Ready is already False for a reason of its own (paused, not served, invalid)."""
    old = previous.get("conditions") or []
    shown = {None: "Unknown", True: "True", False: "False"}[verdict.ok]
    secrets = {
        "type": str(Condition.SECRETS_AVAILABLE),
        "status": shown,
        "reason": verdict.reason,
        "message": verdict.message,
        "lastTransitionTime": _since(old, Condition.SECRETS_AVAILABLE, shown, now),
        "observedGeneration": generation,
    }
    out = []
    for cond in status["conditions"]:
        if cond["type"] == Condition.READY:
            out.append(secrets)
            generic = cond["status"] == "True" or cond["reason"] == Reason.RECONCILING
            if verdict.ok is False and generic:
                cond = {
                    **cond,
                    "status": "False",
                    "reason": str(Reason.SECRET_MISSING),
                    "message": verdict.message,
                    "lastTransitionTime": _since(old, Condition.READY, "False", now),
                }
        out.append(cond)
    if secrets not in out:
        out.append(secrets)
    return {**status, "conditions": out}
