"""Which keys the Secrets a GatewaySync names hold, read by name (the controller's RBAC allows
`get` of Secrets in the served namespaces only). Only the key names leave this module: the
values are dropped as soon as the answer is parsed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from stoker_core import secretrefs
from stoker_core.model import GatewaySync

# Secrets all found are read again this often (a deleted one is noticed within it); while one
# is missing they are read on every pass, so creating it turns the condition at the next one.
RECHECK_SECONDS = 600.0


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


class Verdicts:
    """verdict(), remembered per GatewaySync while every Secret was found and the spec names
    the same ones, for RECHECK_SECONDS: a steady fleet does not read its Secrets on every pass."""

    def __init__(self, core: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._core, self._clock = core, clock
        self._known: dict[tuple[str, str], tuple[Any, secretrefs.Check, float]] = {}
        self._lock = threading.Lock()

    def verdict(self, namespace: str, gs: GatewaySync) -> secretrefs.Check:
        """Whether every Secret key `gs` names exists in `namespace` (maybe as remembered)."""
        key, wanted, now = (namespace, gs.metadata.name), secretrefs.uses(gs), self._clock()
        with self._lock:
            known = self._known.get(key)
        if known is not None and known[0] == wanted and now - known[2] < RECHECK_SECONDS:
            return known[1]
        found = verdict(self._core, namespace, gs)
        with self._lock:
            if found.ok:
                self._known[key] = (wanted, found, now)
            else:
                self._known.pop(key, None)
        return found
