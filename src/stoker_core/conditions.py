"""The GatewaySync status the controller writes: conditions with the original's types and
reasons, discovered gateways sorted by name, lastTransitionTime kept while a status holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from stoker_core.model import DiscoveredGateway
from stoker_core.parsing import unstructure
from stoker_core.standings import Report, Seen, Standing, drift, restarts, standings
from stoker_core.vocabulary import Condition, Reason

# Conditions whose True is the abnormal state: their event is a Warning when they turn True,
# and `stoker status` lists them when True.
ABNORMAL_TRUE = frozenset({Condition.RESTART_REQUIRED, Condition.DRIFTED})
SSH_UNVERIFIED = (
    "SSH host key verification disabled — set spec.git.auth.sshKey.knownHosts to enable MITM "
    "protection"
)


@attrs.frozen(slots=True, kw_only=True)
class Gateway:
    """One discovered gateway pod and what its agent last reported."""

    name: str
    pod: str
    namespace: str
    profile: str
    has_sidecar: bool
    record: dict[str, Any] | None = None  # the agent's status.json, if any
    service_account: str = "default"
    owner: str = ""  # who runs the pod ("StatefulSet plant1"): discovery.owner
    labels: Mapping[str, str] = attrs.field(factory=dict)  # the pod's (rollout step selectors)
    ordinal: int | None = None  # its StatefulSet ordinal (rollouts.pairs), None: not one
    # The commit this gateway should be at; "" means the GatewaySync's published commit (a
    # fleet rollout sets one per gateway: stoker_k8s.rolloutpass).
    target: str = ""

    def report(self) -> Report | None:
        """Its agent's report as the status rules read it."""
        return None if self.record is None else Report.of(self.record)

    def seen(self, published: str) -> Seen:
        """This gateway for the standing rules, its target defaulting to `published`."""
        return Seen(
            profile=self.profile,
            has_sidecar=self.has_sidecar,
            target=self.target or published,
            report=self.report(),
        )


def standing(gateways: Sequence[Gateway], published: str) -> list[Standing]:
    """Where each of `gateways` stands against its target (`published` unless set)."""
    return standings([g.seen(published) for g in gateways])


def in_step(gateways: Sequence[Gateway], published: str) -> int:
    """How many gateways are in step (the controller's gateways_synced metric)."""
    return sum(s.in_step for s in standing(gateways, published))


def abnormal(condition: dict[str, Any]) -> bool:
    """Whether a condition reports trouble: False for most, True for ABNORMAL_TRUE ones."""
    bad = "True" if condition.get("type") in ABNORMAL_TRUE else "False"
    return condition.get("status") == bad


def unremarkable(condition: dict[str, Any], *, first: bool) -> bool:
    """Whether a condition change needs no event: an ABNORMAL_TRUE condition shown for the
    `first` time in its normal state (nothing happened; the status gained a condition)."""
    return first and condition.get("type") in ABNORMAL_TRUE and not abnormal(condition)


def _discovered(g: Gateway, where: Standing, target: str) -> DiscoveredGateway:
    """The status entry for one gateway, every field of the CRD's schema filled: the API
    server would otherwise add the defaults, and the stored status would never equal a freshly
    computed one (a status write on every reconcile)."""
    record = g.record or {}
    changes = [record.get(kind) or {} for kind in ("added", "modified", "deleted")]
    listed = [path for change in changes for path in change.get("paths", [])]
    duration = record.get("durationSeconds")
    return DiscoveredGateway(
        name=g.name,
        namespace=g.namespace,
        pod_name=g.pod,
        service_account_name=g.service_account,
        profile=g.profile,
        sync_status=where.status,
        target_commit=g.target or target,
        last_sync_time=str(record.get("time", "")),
        last_sync_duration=f"{duration}s" if isinstance(duration, int | float) else "",
        synced_commit=str(record.get("commit", "")),
        synced_ref=str(record.get("ref", "")),
        agent_version=str(record.get("agentVersion", "")),
        last_scan_result=str(record.get("scan", "")),
        files_changed=sum(int(change.get("count", 0)) for change in changes),
        projects_synced=tuple(
            sorted(
                {p.split("/")[1] for p in listed if p.startswith("projects/") and p.count("/") > 1}
            )
        ),
    )


def _condition(
    kind: Condition,
    ok: bool,
    reason: str,
    message: str,
    generation: int,
    now: str,
    previous: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    return condition(kind, "True" if ok else "False", reason, message, generation, now, previous)


def condition(
    kind: Condition,
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: str,
    previous: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """One condition (`status` "True", "False" or "Unknown"), its lastTransitionTime kept from
    `previous` while its status holds."""
    old = next((c for c in previous if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now
    return {
        "type": str(kind),
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def _notices(
    gateways: Sequence[Gateway],
    where: Sequence[Standing],
    generation: int,
    now: str,
    previous: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """RestartRequired and Drifted: True (the abnormal state) naming the gateways concerned.
    Neither holds Ready: the commit is applied; the rest is the operator's call."""
    restart = restarts([(g.name, w) for g, w in zip(gateways, where, strict=True)])
    drifted = drift([(g.name, w, g.report()) for g, w in zip(gateways, where, strict=True)])
    return [
        _condition(
            Condition.RESTART_REQUIRED,
            bool(restart),
            Reason.RESTART_PENDING if restart else Reason.NO_RESTART_PENDING,
            restart or "No gateway waits for a restart",
            generation,
            now,
            previous,
        ),
        _condition(
            Condition.DRIFTED,
            bool(drifted),
            Reason.DRIFT_DETECTED if drifted else Reason.NO_DRIFT,
            drifted or "Every gateway's files match its commit",
            generation,
            now,
            previous,
        ),
    ]


def conflicts(gateways: Sequence[Gateway]) -> list[str]:
    """One sentence per gateway name that pods of two or more owners resolve to."""
    owners: dict[str, dict[str, str]] = {}
    for g in sorted(gateways, key=lambda g: (g.name, g.owner, g.pod)):
        owners.setdefault(g.name, {}).setdefault(g.owner or f"Pod {g.pod}", g.pod)
    return [
        f'gateway name "{name}" is used by '
        + " and ".join(f"{who} (pod {pod})" for who, pod in found.items())
        + ": give one of them its own stoker.io/gateway-name annotation"
        for name, found in owners.items()
        if len(found) > 1
    ]


def status(
    *,
    generation: int,
    problems: Sequence[str],
    commit: str | None,
    ref: str,
    resolve_error: str | None,
    gateways: Sequence[Gateway],
    profile_count: int,
    paused: bool,
    now: str,
    previous: dict[str, Any],
    ssh_host_keys: bool | None = None,
    unserved: str | None = None,
    published: str | None = None,
) -> dict[str, Any]:
    """The whole status object for one reconcile (`unserved`: why the installation does not
    serve this GatewaySync's namespace, which then holds Ready at False with that message;
    `published`: the commit the agents were given, by default the resolved one or, failing
    that, the last one; a gateway is Synced only at its target, this commit unless set)."""
    target = published if published is not None else commit or previous.get("lastSyncCommit", "")
    old = previous.get("conditions") or []
    valid = not problems
    conditions = [
        _condition(
            Condition.PROFILES_VALID,
            valid,
            Reason.PROFILES_VALID if valid else Reason.PROFILES_INVALID,
            "All profiles valid" if valid else "; ".join(problems),
            generation,
            now,
            old,
        ),
        _condition(
            Condition.REF_RESOLVED,
            commit is not None,
            Reason.REF_RESOLVED if commit else Reason.REF_RESOLUTION_FAILED,
            commit or f"Ref resolution failed: {resolve_error}",
            generation,
            now,
            old,
        ),
    ]
    if ssh_host_keys is not None:  # only for SSH auth
        conditions.append(
            _condition(
                Condition.SSH_HOST_KEY_VERIFICATION,
                ssh_host_keys,
                Reason.HOST_KEY_VERIFICATION_ENABLED
                if ssh_host_keys
                else Reason.HOST_KEY_VERIFICATION_DISABLED,
                "SSH host key verification enabled" if ssh_host_keys else SSH_UNVERIFIED,
                generation,
                now,
                old,
            )
        )
    ordered = sorted(gateways, key=lambda g: (g.name, g.pod))
    where = standing(ordered, target)
    synced = sum(s.in_step for s in where)
    missing = sum(not g.has_sidecar for g in ordered)
    behind = sum(s.behind for s in where)
    total = len(ordered)
    notes = [f"{missing} missing sidecar"] * bool(missing)
    notes += [f"{behind} not yet at {target[:7]}"] * bool(behind)
    message = f"{synced}/{total} synced" + (f" ({', '.join(notes)})" if notes else "")
    all_synced = total > 0 and synced == total
    reason = (
        Reason.NO_GATEWAYS_DISCOVERED
        if total == 0
        else Reason.SYNC_SUCCEEDED
        if all_synced
        else Reason.SYNC_IN_PROGRESS
    )
    conditions.append(
        _condition(Condition.ALL_GATEWAYS_SYNCED, all_synced, reason, message, generation, now, old)
    )
    clashes = conflicts(ordered)
    if total:
        conditions.append(
            _condition(
                Condition.GATEWAY_NAMES_UNIQUE,
                not clashes,
                Reason.GATEWAY_NAME_CONFLICT if clashes else Reason.GATEWAY_NAMES_UNIQUE,
                "; ".join(clashes) or "Every gateway name belongs to one workload",
                generation,
                now,
                old,
            )
        )
        conditions.append(
            _condition(
                Condition.SIDECAR_INJECTED,
                missing == 0,
                Reason.SIDECAR_PRESENT if missing == 0 else Reason.SIDECAR_MISSING,
                "All gateways have stoker-agent sidecar"
                if missing == 0
                else f"{missing} gateway(s) missing stoker-agent sidecar",
                generation,
                now,
                old,
            )
        )
        conditions += _notices(ordered, where, generation, now, old)
    ready = (
        valid and commit is not None and all_synced and not paused and not unserved and not clashes
    )
    why = (
        unserved
        if unserved
        else "Reconciliation paused"
        if paused
        else "All gateways synced"
        if ready
        else "Profiles invalid"
        if not valid
        else "Ref not resolved"
        if commit is None
        else "; ".join(clashes)
        if clashes
        else "Waiting for gateways to sync"
    )
    conditions.append(
        _condition(
            Condition.READY,
            ready,
            Reason.SYNC_SUCCEEDED
            if ready
            else Reason.NAMESPACE_NOT_SERVED
            if unserved
            else Reason.PAUSED
            if paused
            else Reason.GATEWAY_NAME_CONFLICT
            if clashes and valid and commit is not None
            else Reason.RECONCILING,
            why,
            generation,
            now,
            old,
        )
    )
    changed_commit = commit is not None and commit != previous.get("lastSyncCommit")
    return {
        "observedGeneration": generation,
        "lastSyncRef": ref if commit else previous.get("lastSyncRef", ""),
        "lastSyncCommit": commit or previous.get("lastSyncCommit", ""),
        "lastSyncCommitShort": (commit or previous.get("lastSyncCommit", ""))[:7],
        "lastSyncTime": now if changed_commit else previous.get("lastSyncTime", ""),
        "refResolutionStatus": "Resolved" if commit else "Error",
        "profileCount": profile_count,
        "discoveredGateways": [
            unstructure(_discovered(g, w, target)) for g, w in zip(ordered, where, strict=True)
        ],
        "conditions": conditions,
    }
