"""The Secrets a GatewaySync names and the SecretsAvailable verdict (pure: no API server)."""

from __future__ import annotations

import copy
from typing import Any

from stoker_core import secretrefs
from stoker_core.model import GatewaySync
from stoker_core.parsing import structure

SPEC: dict[str, Any] = {
    "metadata": {"name": "plant"},
    "spec": {
        "git": {
            "repo": "https://git.example/plant.git",
            "ref": "main",
            "auth": {"token": {"secretRef": {"name": "git", "key": "token"}}},
        },
        "gateway": {"api": {"secretName": "api"}},
        "sync": {
            "defaults": {"varsFrom": [{"name": "a", "secretKeyRef": {"name": "v", "key": "a"}}]},
            "profiles": {
                "p": {
                    "mappings": [{"source": "s", "destination": "projects"}],
                    "varsFrom": [{"name": "b", "secretKeyRef": {"name": "v", "key": "b"}}],
                }
            },
        },
    },
}


def uses() -> tuple[secretrefs.SecretUse, ...]:
    return secretrefs.uses(structure(copy.deepcopy(SPEC), GatewaySync))


def test_every_named_secret_key_is_listed_with_its_field_and_each_secret_read_once() -> None:
    found = uses()
    assert [(u.field, u.name, u.key) for u in found] == [
        ("spec.gateway.api", "api", "apiKey"),
        ("spec.git.auth.token.secretRef", "git", "token"),
        ("spec.sync.defaults.varsFrom.a", "v", "a"),
        ("spec.sync.profiles.p.varsFrom.b", "v", "b"),
    ]
    assert secretrefs.names(found) == ["api", "git", "v"]


def test_a_missing_secret_and_a_missing_key_are_named_and_present_ones_are_not() -> None:
    keys = {"api": frozenset({"apiKey"}), "git": None, "v": frozenset({"a"})}
    verdict = secretrefs.check("plant", uses(), keys)
    assert verdict.ok is False
    assert verdict.message == (
        "Secret plant/git not found (spec.git.auth.token.secretRef); "
        'key "b" not in Secret plant/v (spec.sync.profiles.p.varsFrom.b)'
    )


def test_when_secrets_may_not_be_read_the_verdict_is_unknown_not_a_guess() -> None:
    verdict = secretrefs.check("plant", uses(), {}, denied="403 Forbidden")
    assert (verdict.ok, verdict.reason) == (None, "SecretsNotChecked")
    assert "may not read Secrets in namespace plant (403 Forbidden)" in verdict.message


def test_a_missing_secret_turns_a_generic_ready_false_but_keeps_a_specific_reason() -> None:
    missing = secretrefs.Check(ok=False, reason="SecretMissing", message="Secret x not found")
    ready = {"type": "Ready", "status": "True", "reason": "SyncSucceeded", "message": "ok"}
    paused = {**ready, "status": "False", "reason": "Paused", "message": "Reconciliation paused"}
    args: dict[str, Any] = {"generation": 1, "now": "t", "previous": {}}
    turned = secretrefs.apply({"conditions": [ready]}, missing, **args)["conditions"]
    assert [c["type"] for c in turned] == ["SecretsAvailable", "Ready"]
    assert (turned[1]["status"], turned[1]["reason"]) == ("False", "SecretMissing")
    kept = secretrefs.apply({"conditions": [paused]}, missing, **args)["conditions"]
    assert kept[1] == paused
