"""Lease-based leader election: one controller replica reconciles; the others wait and take
over when the holder stops renewing. The webhook and receiver are separate processes and serve
on every replica (the original ran its receiver on the leader only: B17)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("stoker.leader")


def _now(clock: Callable[[], float]) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock(), tz=dt.UTC)


class LeaderElector:
    """Acquire or renew a coordination.k8s.io/v1 Lease; optimistic concurrency settles races."""

    def __init__(
        self,
        api: Any,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_seconds: int = 15,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self._clock = clock or time.time
        # A hung call must fail well before the lease runs out: the caller then stops
        # reconciling instead of leading on while another replica takes over.
        self._timeout = (5.0, max(1.0, lease_seconds / 3))

    def try_acquire_or_renew(self) -> bool:
        """True when this process holds the lease after the call."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        now = _now(self._clock)
        try:
            lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as e:
            if e.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    acquire_time=now,
                    renew_time=now,
                    lease_duration_seconds=self.lease_seconds,
                    lease_transitions=0,
                ),
            )
            try:
                self.api.create_namespaced_lease(
                    self.namespace, body, _request_timeout=self._timeout
                )
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
            log.info("became leader", extra={"identity": self.identity})
            return True
        spec = lease.spec
        holder = spec.holder_identity
        expired = spec.renew_time is None or (
            spec.renew_time + dt.timedelta(seconds=spec.lease_duration_seconds or 0) < now
        )
        if holder not in (None, "", self.identity) and not expired:
            return False
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            log.info("taking over leadership", extra={"from": holder, "identity": self.identity})
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_seconds
        try:
            self.api.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=self._timeout
            )
        except ApiException as e:
            if e.status == 409:  # someone else renewed or took it between our read and write
                return False
            raise
        return True
