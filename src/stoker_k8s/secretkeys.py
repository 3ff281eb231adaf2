"""Which keys the Secrets a GatewaySync names hold, read by name (the controller's RBAC allows
`get` of Secrets in the served namespaces only). Only the key names leave this module: the
values are dropped as soon as the answer is parsed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stoker_core import secretrefs
from stoker_core.model import GatewaySync


def keys(
    core: Any, namespace: str, names: Iterable[str]
) -> tuple[dict[str, frozenset[str] | None], str | None]:
    """Each Secret's key names (None: not found), and why Secrets of `namespace` may not be
    read (None: they may)."""
    from kubernetes.client.exceptions import ApiException

    found: dict[str, frozenset[str] | None] = {}
    for name in names:
        try:
            secret = core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                found[name] = None
                continue
            if e.status == 403:
                return found, f"{e.status} {e.reason}"
            raise
        found[name] = frozenset(secret.data or {}) | frozenset(secret.string_data or {})
    return found, None


def verdict(core: Any, namespace: str, gs: GatewaySync) -> secretrefs.Check:
    """Whether every Secret key `gs` names exists in `namespace`."""
    wanted = secretrefs.uses(gs)
    found, denied = keys(core, namespace, secretrefs.names(wanted))
    return secretrefs.check(namespace, wanted, found, denied)
