"""What one health-window check sees of the gateway (issue 17): gateway-info, the project list
and the gateway container's restart count. The rules (what passes, when to check next, when
the window is over) are `stoker_core.healthchecks`; the agent loop drives the window."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from stoker_agent import oserrors
from stoker_agent.gateway import GatewayClient, GatewayError, GatewaySettings
from stoker_core.errors import StokerError
from stoker_core.healthchecks import Findings

CHECK_TIMEOUT = 3.0  # seconds per request: a check must not hold up newer metadata or shutdown
Restarts = Callable[[], int | None]  # the gateway container's restart count (None: unknown)


def no_restarts() -> int | None:
    """Outside a pod there is no container to count the restarts of."""
    return None


class Checker:
    """Gathers the findings of one check (each call's failure becomes its error text)."""

    def __init__(self, restarts: Restarts = no_restarts) -> None:
        self.restarts = restarts

    def findings(self, gateway: GatewaySettings, expected: frozenset[str]) -> Findings:
        """Ask the gateway now; never raises for what the gateway answers."""
        client = GatewayClient(attrs.evolve(gateway, timeout=min(gateway.timeout, CHECK_TIMEOUT)))
        try:
            info_error = projects_error = ""
            loaded: frozenset[str] = frozenset()
            try:
                client.info()
            except GatewayError as e:
                info_error = str(e)
            except OSError as e:  # the API key file
                info_error = oserrors.sentence(e)
            try:
                loaded = frozenset(client.projects())
            except GatewayError as e:
                projects_error = str(e)
            except OSError as e:
                projects_error = oserrors.sentence(e)
        finally:
            client.close()
        return Findings(
            info_error=info_error,
            projects_error=projects_error,
            loaded=loaded,
            expected=expected,
            restarts=self.restart_count(),
        )

    def restart_count(self) -> int | None:
        """The gateway container's restart count now (None: unknown, never raises)."""
        try:
            return self.restarts()
        except StokerError:  # the API server away: this check cannot see restarts
            return None
