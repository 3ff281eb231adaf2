"""The agents' own identity and rights, one per GatewaySync (H15).

Kubernetes gives the pod's ServiceAccount token to every container of the pod, the gateway
included, so Stoker grants that account nothing. Instead the controller keeps, per GatewaySync:

- a ServiceAccount `stoker-agent-<cr>`, and a token of it minted through the TokenRequest API,
  bound to the Secret `stoker-agent-token-<cr>` that holds it (deleting the Secret revokes it)
  and renewed at half its life; the webhook mounts that Secret into the sidecar only;
- a Role `stoker-agent-<cr>` granting, by name, read access to the metadata ConfigMap, `update`
  of the status ConfigMaps of the pods discovered (which the controller creates, owned by each
  pod: RBAC cannot limit `create` by name), and `get` of those pods; and its RoleBinding.
"""

from __future__ import annotations

import base64
import calendar
import time
from typing import Any

import attrs

from stoker_core import metadata
from stoker_core.vocabulary import Label

TOKEN_SECONDS = 12 * 3600  # each agent token's life; renewed when less than half is left
EXPIRES = "stoker.io/token-expires-at"  # Secret annotation: the token's expiry, Unix seconds


@attrs.frozen(slots=True)
class AgentPod:
    """A discovered gateway pod with a sidecar, and its status ConfigMap as found (or None)."""

    name: str
    uid: str
    status: Any | None


def rules(cr: str, pods: list[AgentPod]) -> list[dict[str, Any]]:
    """The agent Role's rules. A rule with no names would grant every name: never emitted."""
    out: list[dict[str, Any]] = [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [metadata.name_for(cr)],
            "verbs": ["get", "list", "watch"],
        }
    ]
    names = sorted(p.name for p in pods)
    if names:
        out += [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [metadata.status_name_for(cr, n) for n in names],
                "verbs": ["update"],
            },
            {"apiGroups": [""], "resources": ["pods"], "resourceNames": names, "verbs": ["get"]},
        ]
    return out


def status_body(cr: str, pod: AgentPod) -> dict[str, Any]:
    """An empty status ConfigMap for `pod`, owned by it (removed with it), for its agent to fill."""
    return {
        "metadata": {
            "name": metadata.status_name_for(cr, pod.name),
            "labels": {Label.CR_NAME: cr, Label.MANAGED_BY: "stoker-agent"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}
            ],
        },
        "data": {},
    }


def owned_by_pod(cm: Any, uid: str) -> bool:
    """Whether a status ConfigMap names the pod with this uid as its owner."""
    owners = cm.metadata.owner_references or []
    return bool(owners) and owners[0].kind == "Pod" and owners[0].uid == uid


def expiry(secret: Any) -> float:
    """The expiry recorded on a token Secret (0: none, or no token in it)."""
    notes = secret.metadata.annotations or {}
    if not (secret.data or {}).get("token"):
        return 0.0
    try:
        return float(notes.get(EXPIRES, "0"))
    except ValueError:
        return 0.0


def due(expires_at: float, now: float) -> bool:
    """Whether a token expiring at `expires_at` should be renewed now."""
    return expires_at - now < TOKEN_SECONDS / 2


def token_request(secret: str, uid: str) -> dict[str, Any]:
    """A TokenRequest bound to the Secret that will hold the token."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": secret, "uid": uid},
        },
    }


def token_data(token: str, expires: Any) -> tuple[dict[str, str], str]:
    """Secret data and the expiry annotation for a minted token (`expires`: a datetime)."""
    seconds = calendar.timegm(expires.utctimetuple()) if expires else time.time() + TOKEN_SECONDS
    return {"token": base64.b64encode(token.encode()).decode()}, str(int(seconds))
