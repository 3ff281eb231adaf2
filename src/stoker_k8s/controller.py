"""Reconciling one GatewaySync: validate, resolve the ref with `git ls-remote`, publish the
metadata ConfigMap, discover gateway pods, read their agents' status ConfigMaps and write the
CR status (manager.py decides when: watches, a work queue, leader election).

Decisions are stoker_core's (validation, refs, metadata format, conditions).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from stoker_agent.gitfetch import Credentials, Mirror
from stoker_core import (
    approvals,
    conditions,
    crdfit,
    discovery,
    jsontext,
    metadata,
    rolloutstatus,
    secretrefs,
)
from stoker_core.discovery import gateway_name
from stoker_core.errors import InvalidInput, StokerError
from stoker_core.fleethistory import Asked
from stoker_core.model import GatewaySync, Polling
from stoker_core.parsing import structure
from stoker_core.refs import Advertisement, parse_ls_remote, resolve, same_ref
from stoker_core.requeue import polling_seconds
from stoker_core.validation import check
from stoker_core.vocabulary import FINALIZER, Annotation, Condition, Label, Reason
from stoker_k8s import agentaccess, approvalkey, pods, rolloutpass, secretkeys
from stoker_k8s.events import gatewaysync_event
from stoker_k8s.githubapp import GitHubAppTokens
from stoker_k8s.historypass import kept, recorded
from stoker_k8s.metrics import ControllerMetrics

log = logging.getLogger("stoker.controller")
GROUP, VERSION, PLURAL = "stoker.io", "v1alpha1", "gatewaysyncs"
# GitHub installation tokens live an hour and are replaced 15 minutes early; a pass at least
# this often keeps every agent's copy fresh, polling or not.
TOKEN_REFRESH_SECONDS = 600.0
# An object the controller wrote is read back to check it at least this often (someone may have
# edited or deleted it); in between an unchanged one costs no request.
RECHECK_SECONDS = 600.0
# The approval key (stoker_k8s.approvalkey) is read again after this long: the webhook may
# have created it since, or someone rotated it.
APPROVAL_KEY_SECONDS = 60.0
# Progressing reasons the rollout's own events already say (rolloutstatus.events); the others
# (AwaitingApproval, RolloutPaused) get the one event per condition change.
_ROLLOUT_SAID = frozenset(
    {Reason.ROLLOUT_PROGRESSING, Reason.ROLLOUT_HALTED, Reason.ROLLOUT_COMPLETE}
)


def _upsert(
    api: Any, kind: str, namespace: str, body: dict[str, Any], differs: Callable[[Any], bool]
) -> None:
    """Create `body` (a `kind` like "config_map"), or replace it when `differs(current)`."""
    from kubernetes.client.exceptions import ApiException

    name = body["metadata"]["name"]
    try:
        current = getattr(api, f"read_namespaced_{kind}")(name, namespace)
    except ApiException as e:
        if e.status != 404:
            raise
        getattr(api, f"create_namespaced_{kind}")(namespace, body)
        return
    if differs(current):
        getattr(api, f"replace_namespaced_{kind}")(name, namespace, body)


def _managed(
    object_name: str, cr: str, *, owned_by: str | None = None, controlling: bool = False
) -> dict[str, Any]:
    """Metadata of an object the controller manages for GatewaySync `cr` (owned when a uid is
    given; `controlling`: the owner is its controller and blocks its deletion)."""
    meta: dict[str, Any] = {
        "name": object_name,
        "labels": {Label.CR_NAME: cr, Label.MANAGED_BY: "stoker-controller"},
    }
    if owned_by is not None:
        owner: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GatewaySync",
            "name": cr,
            "uid": owned_by,
        }
        if controlling:
            owner.update(controller=True, blockOwnerDeletion=True)
        meta["ownerReferences"] = [owner]
    return meta


def _ssh_verification(gs: GatewaySync | None) -> bool | None:
    """None without SSH auth; else whether host keys are checked (known_hosts given)."""
    auth = gs.spec.git.auth if gs is not None else None
    if auth is None or auth.ssh_key is None:
        return None
    return auth.ssh_key.known_hosts is not None


@attrs.frozen(slots=True)
class Pass:
    """What one reconcile tells the manager: whether it failed (a ref that did not resolve),
    for which requested ref, and the GatewaySync's polling settings."""

    failed: bool
    request: str | None = None
    polling: Polling = attrs.field(factory=Polling)
    within: float | None = None  # look again within this many seconds whatever the polling
    gone: bool = False  # the GatewaySync vanished during the pass: nothing more to do


class Controller:
    """Reconciles GatewaySyncs through the official client (CoreV1Api, CustomObjectsApi)."""

    # What the installed CRD lacks, and its status schema (use_crd; nothing by default).
    _crd_gaps: crdfit.Gaps = crdfit.Gaps()
    _status_schema: dict[str, Any] | None = None

    def __init__(
        self,
        core: Any,
        custom: Any,
        metrics: ControllerMetrics | None = None,
        tokens: GitHubAppTokens | None = None,
        namespaces: Iterable[str] | None = None,
    ) -> None:
        # Where pods and agent status ConfigMaps of a namespace are read from: the API by
        # default; the manager points these at its informers' caches, so a reconcile neither
        # lists nor deserialises every pod of the namespace again.
        # Pods are kept stripped (stoker_k8s.pods): only what discovery and status read.
        self.pods: Callable[[str], list[pods.Pod]] = lambda ns: pods.listed(core, ns)
        self.statuses: Callable[[str], list[Any]] = lambda ns: (
            core.list_namespaced_config_map(
                ns, label_selector=f"{Label.MANAGED_BY}=stoker-agent"
            ).items
        )
        # The GatewaySync names of a namespace (auto-discovery needs exactly one); the manager
        # points this at its informer's cache too.
        self.gatewaysyncs: Callable[[str], list[str]] = lambda ns: [
            i["metadata"]["name"]
            for i in custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        ]
        self.core = core
        self.custom = custom
        self.metrics = metrics or ControllerMetrics()
        self.tokens = tokens or GitHubAppTokens()
        from kubernetes import client

        self.rbac = client.RbacAuthorizationV1Api(core.api_client)
        self._advertised: dict[tuple[str, str, str], tuple[float, Advertisement]] = {}
        self._refreshed: dict[str, str] = {}
        self._flights: dict[tuple[str, str, str], threading.Lock] = {}
        # What this controller last wrote (or found equal), and when: an unchanged object is
        # not read again before RECHECK_SECONDS, so a steady fleet costs the API server nothing.
        self._written: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        # The namespaces this installation serves (None: every one). Elsewhere it holds no
        # rights (no Secrets, ConfigMaps or pods: H16), and a GatewaySync there is told so.
        self.namespaces = None if namespaces is None else frozenset(namespaces)
        self._agent_tokens: dict[tuple[str, str], float] = {}  # (namespace, cr) → expiry
        # The status this controller last wrote per GatewaySync (uid, status, when): events and
        # transition times are computed from it, not from a cached copy that may predate it.
        self._statuses: dict[tuple[str, str], tuple[str, dict[str, Any], float]] = {}
        self._secrets = secretkeys.Verdicts(core)  # the Secrets each GatewaySync names
        # Stoker's own namespace, where the approval key Secret lives (the chart sets it).
        self.home = os.environ.get("POD_NAMESPACE") or "stoker-system"
        self._approval_key: tuple[bytes, float] | None = None  # (key, when read)

    def serves(self, namespace: str) -> bool:
        """Whether this installation serves GatewaySyncs of `namespace`."""
        return self.namespaces is None or namespace in self.namespaces

    def reconcile_all(self) -> int:
        """One pass over every GatewaySync; returns how many were reconciled."""
        items = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        for item in items:
            try:
                self.reconcile(item)
            except Exception:  # one broken CR must not stop the others
                log.exception(
                    "reconciling %s/%s", item["metadata"].get("namespace"), item["metadata"]["name"]
                )
        return len(items)

    def reconcile(self, item: dict[str, Any]) -> Pass:
        """Reconcile one GatewaySync, counted and timed in the metrics."""
        labels = (item["metadata"].get("namespace", ""), item["metadata"]["name"])
        started = time.monotonic()
        try:
            done = self._reconcile_one(item)
        except Exception:
            self.metrics.reconcile_total.labels(*labels, "error").inc()
            self.metrics.reconcile_duration.labels(*labels).observe(time.monotonic() - started)
            raise
        if item["metadata"].get("deletionTimestamp") or done.gone:
            self.metrics.forget(*labels)  # let go: none of its series outlives it (B21)
            return done
        result = "requeue" if done.failed else "success"
        self.metrics.reconcile_total.labels(*labels, result).inc()
        self.metrics.reconcile_duration.labels(*labels).observe(time.monotonic() - started)
        return done

    def _reconcile_one(self, item: dict[str, Any]) -> Pass:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._pass(item)
        except ApiException as e:
            if e.status != 404 or not self._vanished(item):
                raise
        meta = item["metadata"]
        log.info("%s/%s was deleted during its reconcile", meta["namespace"], meta["name"])
        self.forget(meta["namespace"], meta["name"])
        return Pass(False, polling=Polling(enabled=False), gone=True)

    def _vanished(self, item: dict[str, Any]) -> bool:
        """Whether the GatewaySync of `item` is gone (or replaced by a new one of its name)."""
        from kubernetes.client.exceptions import ApiException

        meta = item["metadata"]
        try:
            now = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"]
            )
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return bool(now["metadata"].get("uid") != meta.get("uid"))

    def forget(self, namespace: str, name: str) -> None:
        """Drop what was remembered of a GatewaySync's last status write (it is gone, or
        another replica may have written since: a new leader starts from the API's copy)."""
        with self._lock:
            if name:
                self._statuses.pop((namespace, name), None)
            else:
                self._statuses.clear()

    def _previous(self, item: dict[str, Any]) -> dict[str, Any]:
        """The GatewaySync's current status: the one this controller last wrote, unless `item`
        already shows it, is another object of that name, or the write is RECHECK_SECONDS old
        (then `item` is trusted: no cache lags that long, and a hand edit is seen)."""
        meta = item["metadata"]
        key, given = (meta["namespace"], meta["name"]), item.get("status") or {}
        with self._lock:
            mine = self._statuses.get(key)
            if mine is None:
                return given
            uid, written, at = mine
            if (
                uid == meta.get("uid")
                and given != written
                and time.monotonic() - at < RECHECK_SECONDS
            ):
                return written
            del self._statuses[key]
        return given

    def use_crd(self, gaps: crdfit.Gaps, status_schema: dict[str, Any]) -> None:
        """Write only what the installed CRD (`status_schema`) keeps, and tell each GatewaySync
        once what that CRD lacks (`gaps`, found at start: stoker_k8s.crdcheck)."""
        self._crd_gaps, self._status_schema = gaps, status_schema
        self._crd_told: set[str] = set()  # uids of the GatewaySyncs told

    def _tell_crd(self, item: dict[str, Any]) -> None:
        """One Warning event per GatewaySync (and process) naming what the CRD lacks."""
        meta = item["metadata"]
        with self._lock:
            if meta.get("uid", "") in self._crd_told:
                return
            self._crd_told.add(meta.get("uid", ""))
        self._say(meta, Reason.CRD_OUTDATED, self._crd_gaps.message(), warning=True)

    def _say(
        self,
        meta: dict[str, Any],
        reason: str,
        message: str,
        *,
        warning: bool,
        at: str | None = None,
    ) -> None:
        """One event about the GatewaySync whose metadata is `meta`."""
        event = gatewaysync_event(
            meta["namespace"],
            meta["name"],
            meta.get("uid"),
            reason=reason,
            message=message,
            warning=warning,
            component="stoker-controller",
            at=at,
        )
        self.core.create_namespaced_event(meta["namespace"], event)

    def _write_status(
        self,
        item: dict[str, Any],
        previous: dict[str, Any],
        new_status: dict[str, Any],
        *,
        events: bool = True,
        news: Iterable[rolloutstatus.Event] = (),
    ) -> None:
        """Record one event per condition change (unless not `events`) and each of `news` (the
        rollout's, computed from the status last written), and write the status, when it
        changed."""
        if self._crd_gaps:  # an old CRD: write only what it keeps (no patch loop)
            if events:
                self._tell_crd(item)
            if not self._crd_gaps.status_subresource:
                return
            new_status = crdfit.prune(new_status, self._status_schema or {})
        if new_status == previous:
            return
        if events:
            self._events(item, previous, new_status)
            self._news(item, news)
        meta = item["metadata"]
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            meta["namespace"],
            PLURAL,
            meta["name"],
            {"status": _merge_patch(previous, new_status)},
        )
        self.metrics.status_writes.labels(meta["namespace"], meta["name"]).inc()
        with self._lock:
            self._statuses[(meta["namespace"], meta["name"])] = (
                meta.get("uid", ""),
                new_status,
                time.monotonic(),
            )

    def _pass(self, item: dict[str, Any]) -> Pass:
        meta = item["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if not self.serves(namespace):
            return self._unserved(item)
        if meta.get("deletionTimestamp"):
            self._clean_up(namespace, name, meta)
            return Pass(False, polling=Polling(enabled=False))
        if FINALIZER not in (meta.get("finalizers") or []):
            self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"metadata": {"finalizers": [*(meta.get("finalizers") or []), FINALIZER]}},
            )
        return self._reconcile(item)

    def _unserved(self, item: dict[str, Any]) -> Pass:
        """A GatewaySync in a namespace this installation does not serve: nothing is read or
        written there; its status says why and how to fix it; a deletion is let go at once."""
        meta = item["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if FINALIZER in (meta.get("finalizers") or []) and meta.get("deletionTimestamp"):
            remaining = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": remaining}}
            )
            return Pass(False, polling=Polling(enabled=False))
        why = (
            f"namespace {namespace} is not served by this Stoker installation: add it to the "
            "chart value `namespaces` (or the controller's STOKER_NAMESPACES) and upgrade; "
            "Stoker reads Secrets, ConfigMaps and pods only in the namespaces listed there"
        )
        previous = self._previous(item)
        new_status = conditions.status(
            generation=meta.get("generation", 0),
            problems=[],
            commit=None,
            ref=item["spec"]["git"]["ref"],
            resolve_error=why,
            gateways=[],
            profile_count=len(item["spec"].get("sync", {}).get("profiles", {})),
            paused=bool(item["spec"].get("paused")),
            now=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            previous=previous,
            unserved=why,
        )
        new_status = kept(_secrets_unknown(item, new_status, previous, namespace), previous)
        # No event: this installation may not write anything in that namespace (H16).
        self._write_status(item, previous, new_status, events=False)
        return Pass(False, polling=Polling(enabled=False))

    def _clean_up(self, namespace: str, name: str, meta: dict[str, Any]) -> None:
        """Remove what this GatewaySync created, then let it go (owner references would do it
        in a cluster with a garbage collector; the finalizer makes it explicit and immediate)."""
        from kubernetes.client.exceptions import ApiException

        selector = f"{Label.CR_NAME}={name}"
        doomed = [
            ("config_map", metadata.name_for(name)),
            ("secret", f"stoker-github-token-{name}"),
            ("secret", metadata.agent_token_for(name)),
            ("service_account", metadata.agent_identity_for(name)),
        ]
        doomed += [
            ("config_map", cm.metadata.name)
            for cm in self.core.list_namespaced_config_map(namespace, label_selector=selector).items
        ]
        self.forget(namespace, name)
        self._forget_written(
            namespace,
            {object_name for _, object_name in doomed} | {metadata.agent_identity_for(name)},
        )
        self._agent_tokens.pop((namespace, name), None)
        identity = metadata.agent_identity_for(name)
        calls = [
            (getattr(self.core, f"delete_namespaced_{kind}"), object_name)
            for kind, object_name in dict.fromkeys(doomed)
        ]
        calls += [
            (self.rbac.delete_namespaced_role_binding, identity),
            (self.rbac.delete_namespaced_role, identity),
        ]
        for delete, object_name in calls:
            try:
                delete(object_name, namespace)
            except ApiException as e:
                if e.status != 404:
                    raise
        remaining = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": remaining}}
        )

    def _reconcile(self, item: dict[str, Any]) -> Pass:
        meta = item["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            gs = structure({k: v for k, v in item.items() if k != "status"}, GatewaySync)
            problems = [str(p) for p in check(gs)]
        except InvalidInput as e:
            gs, problems = None, [str(p) for p in e.problems]
        annotations = meta.get("annotations") or {}
        ref = annotations.get(Annotation.REQUESTED_REF) or item["spec"]["git"]["ref"]
        commit, error = None, None
        # A push asked for a fresh look when its request changed since the last pass: its time
        # (to the second) or its delivery, as two pushes within one second differ only by that;
        # a GatewaySync seen for the first time shares the cached answer like any other.
        stamp = str(annotations.get(Annotation.REFRESH_REQUESTED_AT) or "")
        refresh = f"{stamp}@{annotations.get(Annotation.REFRESH_DELIVERY) or ''}" if stamp else ""
        seen = self._refreshed.get(f"{namespace}/{name}")
        fresh = seen is not None and seen != refresh
        self._refreshed[f"{namespace}/{name}"] = refresh
        app = gs.spec.git.auth.github_app if gs is not None and gs.spec.git.auth else None
        if gs is not None:
            try:
                if app is not None:  # every pass: each GatewaySync's agents mount their own
                    self._installation_token(gs, namespace)
                commit = self._resolve(gs, namespace, ref, fresh=fresh)
            except StokerError as e:
                error = str(e)
                self.metrics.ref_resolve_errors.labels(namespace, name).inc()
        if app is None:
            self.metrics.forget_token(namespace, name)
        if gs is not None and gs.spec.rollout is None:
            self.metrics.forget_rollout(namespace, name)
        gateways, agents = self._gateways(namespace, name)
        previous = self._previous(item)
        rollout = None
        if gs is not None and not problems and commit is not None:
            data = metadata.encode(gs, commit=commit, ref=ref)
            if gs.spec.rollout is not None:  # per-gateway targets (issue 17)
                rollout = self._rollout(gs, gateways, commit, previous)
                gateways = rollout.gateways
                data = metadata.encode(
                    gs,
                    commit=rollout.commit,
                    ref=ref,
                    targets=rollout.targets,
                    health_window=rollout.health_window,
                )
            # Invalid profiles are never published (the original's B8).
            self._publish(namespace, name, data, item)
        requested = annotations.get(Annotation.REQUESTED_REF)
        if commit and requested and same_ref(requested, item["spec"]["git"]["ref"]):
            self._clear_request(namespace, name, requested)
        self._agent_identity(namespace, name, item["metadata"]["uid"], agents)
        self.metrics.gateways_discovered.labels(namespace, name).set(len(gateways))
        # What the agents were given: this pass's commit (a rollout's: each gateway's target,
        # this for messages), unless it could not be published.
        published = (
            rollout.state.commit
            if rollout is not None
            else commit
            if gs is not None and not problems and commit is not None
            else previous.get("lastSyncCommit", "")
        )
        self.metrics.gateways_synced.labels(namespace, name).set(
            conditions.in_step(gateways, published)
        )
        new_status = conditions.status(
            generation=meta.get("generation", 0),
            problems=problems,
            commit=commit,
            ref=ref,
            resolve_error=error,
            gateways=gateways,
            profile_count=len(item["spec"].get("sync", {}).get("profiles", {})),
            paused=bool(item["spec"].get("paused")),
            ssh_host_keys=_ssh_verification(gs),
            now=now,
            previous=previous,
            published=published,
        )
        if gs is not None:  # named Secrets are reported before any pod needs them
            verdict = self._secrets.verdict(namespace, gs)
            new_status = secretrefs.apply(
                new_status,
                verdict,
                generation=meta.get("generation", 0),
                now=now,
                previous=previous,
            )
        news: list[rolloutstatus.Event] = []
        if rollout is not None and gs is not None:
            new_status, news = self._rollout_status(gs, rollout, new_status, previous)
        elif previous.get("rollout") and (gs is None or gs.spec.rollout is not None):
            new_status = _rollout_kept(new_status, previous)
        new_status = recorded(  # status.history (a push the receiver refreshed: `fresh`)
            new_status,
            previous,
            gs,
            ref=ref,
            published=published,
            gateways=gateways,
            asked=Asked(annotations=annotations, refreshed=bool(refresh) and seen != refresh),
            now=time.time(),
        )
        self._write_status(item, previous, new_status, news=news)
        within = [TOKEN_REFRESH_SECONDS] * (app is not None)
        within += [rollout.within] if rollout is not None and rollout.within else []
        return Pass(
            error is not None,
            annotations.get(Annotation.REQUESTED_REF),
            gs.spec.polling if gs is not None else Polling(),
            within=min(within, default=None),
        )

    def _rollout(
        self,
        gs: GatewaySync,
        gateways: list[conditions.Gateway],
        commit: str,
        previous: dict[str, Any],
    ) -> rolloutpass.Outcome:
        """This pass of `gs`'s rollout of `commit` (stoker_k8s.rolloutpass)."""
        asked = any(k.startswith(approvals.PREFIX) for k in gs.metadata.annotations)
        return rolloutpass.run(
            gs,
            gateways,
            resolved=commit,
            previous=previous,
            key=self._approval_secret() if asked else b"",
            now=time.time(),
        )

    def _rollout_status(
        self,
        gs: GatewaySync,
        rollout: rolloutpass.Outcome,
        new_status: dict[str, Any],
        previous: dict[str, Any],
    ) -> tuple[dict[str, Any], list[rolloutstatus.Event]]:
        """`new_status` with status.rollout and the Progressing condition, the rollout's
        events since the status last written, and its metrics."""
        meta = gs.metadata
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        shown = rolloutpass.condition(
            rollout, meta.generation, now, previous.get("conditions") or []
        )
        kept = [c for c in new_status["conditions"] if c["type"] != Condition.PROGRESSING]
        new_status = {
            **new_status,
            "rollout": rollout.record,
            "conditions": kept + ([shown] if shown is not None else []),
        }
        old = previous.get("rollout")
        news = rolloutpass.events(gs, old if isinstance(old, dict) else None, rollout.record)
        self.metrics.rollout(meta.namespace, meta.name, rollout, news)
        return new_status, news

    def _approval_secret(self) -> bytes:
        """The approval key, read at most every APPROVAL_KEY_SECONDS (b"" unreadable: then
        nothing verifies, and each approval says so)."""
        now = time.monotonic()
        with self._lock:
            known = self._approval_key
        if known is not None and known[0] and now - known[1] < APPROVAL_KEY_SECONDS:
            return known[0]
        key = approvalkey.read(self.core, self.home)
        with self._lock:
            self._approval_key = (key, now)
        return key

    def _news(self, item: dict[str, Any], news: Iterable[rolloutstatus.Event]) -> None:
        """One event per rollout change."""
        meta = item["metadata"]
        for said in news:
            self._say(meta, said.reason, said.message, warning=said.warning)

    def _agent_identity(
        self, namespace: str, name: str, uid: str, agents: list[agentaccess.AgentPod]
    ) -> None:
        """The agents' own ServiceAccount, token, Role and RoleBinding, and an empty status
        ConfigMap for each discovered pod (see agentaccess: H15)."""
        identity = metadata.agent_identity_for(name)
        rbac: Any = self.rbac  # the typed stubs want model objects; plain dicts serialise the same
        self._upsert(
            self.core,
            "service_account",
            namespace,
            {
                "metadata": _managed(identity, name, owned_by=uid),
                "automountServiceAccountToken": False,
            },
            lambda current: False,
        )
        self._agent_token(namespace, name, uid)
        for pod in agents:
            if pod.status is None or not agentaccess.owned_by_pod(pod.status, pod.uid):
                self._status_configmap(namespace, name, pod)
        rules = agentaccess.rules(name, agents)
        self._upsert(
            rbac,
            "role",
            namespace,
            {"metadata": _managed(identity, name, owned_by=uid), "rules": rules},
            lambda current: rbac.api_client.sanitize_for_serialization(current.rules) != rules,
        )
        binding = {
            "metadata": _managed(identity, name, owned_by=uid),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": identity},
            "subjects": [{"kind": "ServiceAccount", "name": identity, "namespace": namespace}],
        }
        self._upsert(
            rbac,
            "role_binding",
            namespace,
            binding,
            lambda current: _rebind(rbac, namespace, binding, current),
        )

    def _agent_token(self, namespace: str, name: str, uid: str) -> None:
        """Mint the agents' token into its Secret when it is missing or past half its life."""
        from kubernetes.client.exceptions import ApiException

        key, now = (namespace, name), time.time()
        with self._lock:
            known = self._agent_tokens.get(key)
        if known is not None and not agentaccess.due(known, now):
            return
        secret_name = metadata.agent_token_for(name)
        try:
            secret = self.core.read_namespaced_secret(secret_name, namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            body = {"metadata": _managed(secret_name, name, owned_by=uid), "type": "Opaque"}
            secret = self.core.create_namespaced_secret(namespace, body)
        expires = agentaccess.expiry(secret)
        if agentaccess.due(expires, now):
            minted = self.core.create_namespaced_service_account_token(
                metadata.agent_identity_for(name),
                namespace,
                agentaccess.token_request(secret_name, secret.metadata.uid),
            )
            data, stamp = agentaccess.token_data(
                minted.status.token, minted.status.expiration_timestamp
            )
            secret.data = data
            secret.metadata.annotations = {
                **(secret.metadata.annotations or {}),
                agentaccess.EXPIRES: stamp,
            }
            self.core.replace_namespaced_secret(secret_name, namespace, secret)
            expires = float(stamp)
        with self._lock:
            self._agent_tokens[key] = expires

    def _status_configmap(self, namespace: str, name: str, pod: agentaccess.AgentPod) -> None:
        """Create (or, when it names another pod, replace) a pod's empty status ConfigMap."""
        from kubernetes.client.exceptions import ApiException

        body = agentaccess.status_body(name, pod)
        try:
            if pod.status is None:
                self.core.create_namespaced_config_map(namespace, body)
            else:  # left by an earlier pod of the same name, or forged: not this pod's word
                self.core.replace_namespaced_config_map(body["metadata"]["name"], namespace, body)
        except ApiException as e:
            if e.status != 409:  # created meanwhile (the cache had not seen it yet)
                raise

    def _clear_request(self, namespace: str, name: str, requested: str) -> None:
        """Remove `stoker.io/requested-ref` if it still holds `requested`, the value this pass
        applied: the API server tests the value and removes it in one step, so a ref the
        receiver wrote since is kept (the test fails with 422) and gets its own pass."""
        from kubernetes.client.exceptions import ApiException

        path = "/metadata/annotations/" + _escape_pointer(Annotation.REQUESTED_REF)
        try:
            self.custom.patch_namespaced_custom_object(  # self-clearing, v-normalised (B3)
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                [{"op": "test", "path": path, "value": requested}, {"op": "remove", "path": path}],
                _content_type="application/json-patch+json",
            )
        except ApiException as e:
            if e.status != 422:  # 422: the value changed (or went) meanwhile; nothing to clear
                raise
            log.info("%s/%s: requested-ref changed since it was read; kept", namespace, name)

    def _events(
        self, item: dict[str, Any], previous: dict[str, Any], new_status: dict[str, Any]
    ) -> None:
        """One event per condition change against the status last written, never one per
        reconcile (the original's B7) nor one per stale cached copy."""
        before = {c["type"]: (c["status"], c["reason"]) for c in previous.get("conditions") or []}
        meta = item["metadata"]
        said: set[tuple[str, str]] = set()  # Ready repeating another condition: one event
        for cond in new_status["conditions"]:
            if before.get(cond["type"]) == (cond["status"], cond["reason"]):
                continue
            if cond["type"] == Condition.PROGRESSING and cond["reason"] in _ROLLOUT_SAID:
                continue
            if conditions.unremarkable(cond, first=cond["type"] not in before):
                continue
            if (cond["reason"], cond["message"]) in said:
                continue
            said.add((cond["reason"], cond["message"]))
            self._say(
                meta,
                cond["reason"],
                cond["message"],
                warning=conditions.abnormal(cond) and cond["type"] != "AllGatewaysSynced",
                at=cond["lastTransitionTime"],
            )

    def _resolve(self, gs: GatewaySync, namespace: str, ref: str, *, fresh: bool) -> str:
        """Resolve `ref`; one ls-remote per repository and credentials per polling interval,
        shared by every GatewaySync using them, unless a push asked for a fresh look. A ref
        missing from a shared answer is asked for once more: a branch made after another
        GatewaySync of the repository was resolved (a new line's) must not wait an interval."""
        advertised, asked = self._advertised_for(gs, namespace, fresh=fresh)
        try:
            return resolve(ref, advertised, where=gs.spec.git.repo)
        except InvalidInput:
            if asked:
                raise
        advertised, _ = self._advertised_for(gs, namespace, fresh=True)
        return resolve(ref, advertised, where=gs.spec.git.repo)

    def _advertised_for(
        self, gs: GatewaySync, namespace: str, *, fresh: bool
    ) -> tuple[Advertisement, bool]:
        """What the repository advertises, from the shared answer unless it is due or `fresh`;
        and whether this call asked the repository."""
        auth = gs.spec.git.auth
        key = (gs.spec.git.repo, namespace if auth else "", repr(auth))
        ttl = polling_seconds(gs.spec.polling) or float("inf")
        # Due a little early: a pass scheduled one interval after the last one must not find
        # the answer a few milliseconds short of expiry and skip a whole interval.
        due = ttl - min(1.0, ttl * 0.02)
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        # One ls-remote at a time per key: workers passing over GatewaySyncs of the same
        # repository together wait for the first one's answer instead of each asking.
        with flight:
            with self._lock:
                cached = self._advertised.get(key)
            started = time.monotonic()
            if not (fresh or cached is None or started - cached[0] >= due):
                return cached[1], False
            with tempfile.TemporaryDirectory(prefix="stoker-ls-remote-") as private:
                credentials = self._credentials(gs, namespace, private)
                mirror = Mirror(os.path.join(private, "repo"), gs.spec.git.repo, credentials)
                asked = time.monotonic()
                try:
                    advertised = parse_ls_remote(mirror.ls_remote())
                finally:
                    mirror.close()
                    self.metrics.ref_resolve_duration.labels(namespace, gs.metadata.name).observe(
                        time.monotonic() - asked
                    )
            with self._lock:
                self._advertised[key] = (started, advertised)  # as of when it was asked
        return advertised, True

    def _credentials(self, gs: GatewaySync, namespace: str, private: str) -> Credentials:
        """Credential files for one ls-remote, written under a private temporary directory."""
        auth = gs.spec.git.auth
        if auth is None:
            return Credentials()
        if auth.ssh_key is not None:
            key = self._secret_file(namespace, auth.ssh_key.secret_ref, private, "ssh-key")
            known = (
                self._secret_file(
                    namespace, auth.ssh_key.known_hosts.secret_ref, private, "known_hosts"
                )
                if auth.ssh_key.known_hosts
                else None
            )
            return Credentials(ssh_key_file=key, known_hosts_file=known)
        if auth.token is not None:
            return Credentials(
                token_file=self._secret_file(namespace, auth.token.secret_ref, private, "token")
            )
        if auth.github_app is not None:
            path = os.path.join(private, "token")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as f:
                f.write(self._installation_token(gs, namespace))
            return Credentials(token_file=path)
        return Credentials()

    def _installation_token(self, gs: GatewaySync, namespace: str) -> str:
        """Mint (or reuse: cached per namespace, Secret, app and installation, B1) the
        installation token and publish it in this GatewaySync's managed Secret (owned by the
        GatewaySync, so it goes with it even when no controller runs its finalizer)."""
        auth = gs.spec.git.auth
        app = auth.github_app if auth is not None else None
        if app is None:
            raise InvalidInput.one("no githubApp auth", field="spec.git.auth")
        with tempfile.TemporaryDirectory(prefix="stoker-app-key-") as private:
            key_file = self._secret_file(namespace, app.private_key_secret_ref, private, "app.pem")
            with open(key_file, encoding="utf-8") as handle:
                pem = handle.read()
        token = self.tokens.token(
            namespace=namespace,
            secret=app.private_key_secret_ref.name,
            app_id=app.app_id,
            installation_id=app.installation_id,
            private_key=pem,
            api_base_url=app.api_base_url,
        )
        self.metrics.github_token_expiry.labels(namespace, gs.metadata.name).set(token.expires_at)
        uid = gs.metadata.extra.get("uid")
        self._publish_token(namespace, gs.metadata.name, uid, token.value)
        return token.value

    def _publish_token(self, namespace: str, cr: str, uid: str | None, token: str) -> None:
        """The managed Secret the agents mount (the PEM itself is never mounted)."""

        name = f"stoker-github-token-{cr}"
        data = {"token": base64.b64encode(token.encode()).decode()}
        body = {
            "metadata": {
                **_managed(name, cr, owned_by=uid),
                "annotations": {"stoker.io/secret-type": "github-app-token"},
            },
            "type": "Opaque",
            "data": data,
        }
        owners = [uid] if uid else []
        # An older controller's Secret has no owner: replaced once, so it goes with its GatewaySync.
        self._upsert(
            self.core,
            "secret",
            namespace,
            body,
            lambda current: (
                (current.data or {}) != data
                or [o.uid for o in current.metadata.owner_references or []] != owners
            ),
        )

    def _secret_file(self, namespace: str, ref: Any, private: str, name: str) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.core.read_namespaced_secret(ref.name, namespace)
        except ApiException as e:
            raise InvalidInput.one(
                f"Secret {namespace}/{ref.name} cannot be read ({e.reason})", field="spec.git.auth"
            ) from None
        data = (secret.data or {}).get(ref.key)
        if data is None:
            raise InvalidInput.one(
                f'key "{ref.key}" not found in Secret {namespace}/{ref.name}', field="spec.git.auth"
            )
        path = os.path.join(private, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as f:
            f.write(base64.b64decode(data).decode().strip() + "\n")
        return path

    def _publish(
        self, namespace: str, name: str, data: dict[str, str], owner: dict[str, Any]
    ) -> None:

        body = {
            "metadata": _managed(
                metadata.name_for(name), name, owned_by=owner["metadata"]["uid"], controlling=True
            ),
            "data": data,
        }
        self._upsert(
            self.core, "config_map", namespace, body, lambda current: (current.data or {}) != data
        )

    def _upsert(
        self,
        api: Any,
        kind: str,
        namespace: str,
        body: dict[str, Any],
        differs: Callable[[Any], bool],
    ) -> None:
        """_upsert, skipped when the same body was written or verified recently."""
        key = (kind, namespace, body["metadata"]["name"])
        fingerprint = json.dumps(body, sort_keys=True)
        now = time.monotonic()
        with self._lock:
            last = self._written.get(key)
        if last is not None and last[0] == fingerprint and now - last[1] < RECHECK_SECONDS:
            return
        _upsert(api, kind, namespace, body, differs)
        with self._lock:
            self._written[key] = (fingerprint, now)

    def _forget_written(self, namespace: str, names: set[str]) -> None:
        with self._lock:
            for key in [k for k in self._written if k[1] == namespace and k[2] in names]:
                del self._written[key]

    def _gateways(
        self, namespace: str, cr: str
    ) -> tuple[list[conditions.Gateway], list[agentaccess.AgentPod]]:
        """The gateways discovered for GatewaySync `cr`, and those with a sidecar as AgentPods.
        A status ConfigMap counts only when it names its pod (uid) as owner."""
        found = self.pods(namespace)
        statuses = {
            cm.metadata.name: cm
            for cm in self.statuses(namespace)
            if (cm.metadata.labels or {}).get(Label.CR_NAME) == cr
        }
        sole = self.gatewaysyncs(namespace) == [cr]
        out, agents = [], []
        for pod in found:
            notes, labels = pod.annotations, pod.labels
            if not discovery.claims(notes, cr, sole=sole) or not discovery.alive(
                pod.phase, pod.deleting
            ):
                continue
            cm = statuses.get(metadata.status_name_for(cr, pod.name))
            if pod.agent:  # rights before it is scheduled: its agent starts first
                agents.append(agentaccess.AgentPod(pod.name, pod.uid, cm))
            if not discovery.counts(pod.node, pod.phase, pod.deleting):
                continue
            record = None
            if cm is not None and agentaccess.owned_by_pod(cm, pod.uid):
                record = _record((cm.data or {}).get("status.json"))
            out.append(
                conditions.Gateway(
                    service_account=pod.service_account,
                    # As its agent was told when admitted (an earlier release's rule included).
                    name=pod.told_name or gateway_name(notes, labels, pod.name),
                    pod=pod.name,
                    namespace=namespace,
                    profile=notes.get(Annotation.PROFILE, ""),
                    has_sidecar=pod.agent,
                    record=record,
                    owner=discovery.owner(pod.owners, labels, pod.name),
                    labels=labels,
                    ordinal=discovery.ordinal(labels),
                )
            )
        return out, agents


def _merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` as a JSON merge patch over `old` (RFC 7386): a key `old` has and `new` lacks is
    sent as null, at any depth of objects, or the API server would keep it (a rollout's halt
    after a resume, status.rollout after spec.rollout goes)."""
    patch: dict[str, Any] = dict(new)
    for key, was in old.items():
        if key not in new:
            patch[key] = None
        elif isinstance(was, dict) and isinstance(new[key], dict):
            patch[key] = _merge_patch(was, new[key])
    return patch


def _rollout_kept(status: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """`status` for a pass of a rollout that published nothing (the ref did not resolve, the
    spec is invalid): the record and the Progressing condition are kept as they were, so the
    next pass resumes where the rollout was. (Without spec.rollout both simply go.)"""
    shown = [c for c in previous.get("conditions") or [] if c.get("type") == Condition.PROGRESSING]
    return {
        **status,
        "rollout": previous["rollout"],
        "conditions": [*status["conditions"], *shown],
    }


def _secrets_unknown(
    item: dict[str, Any], status: dict[str, Any], previous: dict[str, Any], namespace: str
) -> dict[str, Any]:
    """`status` saying the named Secrets were not checked: Secrets of a namespace not served
    may not be read, so whether they exist is not known (and not guessed)."""
    try:
        gs = structure({k: v for k, v in item.items() if k != "status"}, GatewaySync)
    except InvalidInput:
        return status
    verdict = secretrefs.check(namespace, secretrefs.uses(gs), {}, "namespace not served")
    return secretrefs.apply(
        status,
        verdict,
        generation=item["metadata"].get("generation", 0),
        now=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        previous=previous,
    )


def _escape_pointer(key: str) -> str:
    """A JSON-pointer segment for `key` (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _record(text: str | None) -> dict[str, Any] | None:
    """An agent's status record, or None when absent or not a JSON object."""
    try:
        record = jsontext.loads(text or "null")
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _rebind(rbac: Any, namespace: str, binding: dict[str, Any], current: Any) -> bool:
    """Whether a RoleBinding differs from `binding`. Its roleRef cannot change in place (an
    earlier release bound the ClusterRole stoker-agent to the pods' own ServiceAccounts here),
    so one with another roleRef is deleted first and then replaced by a create."""
    wanted = binding["roleRef"]
    if (current.role_ref.kind, current.role_ref.name) != (wanted["kind"], wanted["name"]):
        rbac.delete_namespaced_role_binding(current.metadata.name, namespace)
        rbac.create_namespaced_role_binding(namespace, binding)
        return False
    subjects = [(s.kind, s.name, s.namespace) for s in current.subjects or []]
    return subjects != [(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]]
