"""Runs the controller: informers feed a work queue; workers reconcile one key at a time while
this replica holds the Lease; after each pass the GatewaySync is queued again at its own
`spec.polling.interval` (sooner when the pass asks: a rollout moving, a GitHub App token due),
or after a growing backoff when it failed (stoker_core.requeue)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from stoker_core.requeue import Failures, next_pass, record
from stoker_core.vocabulary import Annotation, Label
from stoker_k8s import pods
from stoker_k8s.controller import GROUP, PLURAL, VERSION, Controller, Pass
from stoker_k8s.leader import LeaderElector
from stoker_k8s.runtime import Informer, WorkQueue

log = logging.getLogger("stoker.controller")


def _meta(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return dict(obj.get("metadata") or {})
    meta = obj.metadata
    return {
        "namespace": meta.namespace,
        "name": meta.name,
        "labels": meta.labels or {},
        "annotations": meta.annotations or {},
    }


class Manager:
    """Wires informers, the queue, workers and leader election around a Controller."""

    def __init__(
        self,
        ctl: Controller,
        *,
        workers: int = 4,
        elector: LeaderElector | None = None,
        lease_seconds: int = 15,
        backoff: tuple[float, float] = (30.0, 300.0),
    ) -> None:
        self.ctl = ctl
        self.queue = WorkQueue()
        self.workers = workers
        self.elector = elector
        self.lease_seconds = lease_seconds
        self.backoff = backoff  # first delay and cap, seconds
        self.leading = threading.Event()
        # Workers take no new key after this (monotonic) time unless a renewal moves it: even
        # if a renewal hangs, this replica stops before the Lease can pass to another.
        self.lead_until = float("inf") if elector is None else 0.0
        self.known: set[str] = set()
        self.failures: dict[str, Failures] = {}
        self._gatewaysyncs: Informer | None = None  # set once the informers have listed
        self._lock = threading.Lock()

    def _on_gatewaysync(self, kind: str, obj: Any) -> None:
        meta = _meta(obj)
        key = f"{meta['namespace']}/{meta['name']}"
        if kind == "DELETED":
            self.known.discard(key)
            # Also when it went without a pass of ours (its finalizer removed by hand): B21.
            self.ctl.metrics.forget(meta["namespace"], meta["name"])
            self.ctl.forget(meta["namespace"], meta["name"])  # and its last written status
            return
        self.known.add(key)
        self.queue.add(key)

    def _on_status(self, kind: str, obj: Any) -> None:
        meta = _meta(obj)
        cr = (meta.get("labels") or {}).get(Label.CR_NAME)
        if cr:  # an agent reported: reconcile its GatewaySync now (the original missed it: B5)
            self.queue.add(f"{meta['namespace']}/{cr}")

    def _on_pod(self, kind: str, pod: pods.Pod) -> None:
        notes = pod.annotations
        if notes.get(Annotation.CR_NAME):
            self.queue.add(f"{pod.namespace}/{notes[Annotation.CR_NAME]}")
        elif notes.get(Annotation.INJECT) == "true":  # auto-discovered: its namespace's one
            prefix = f"{pod.namespace}/"
            for key in [k for k in list(self.known) if k.startswith(prefix)]:
                self.queue.add(key)

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.leading.wait(timeout=1.0):
                continue
            if time.monotonic() >= self.lead_until:
                stop.wait(0.2)
                continue
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                done = self._reconcile(key)
            except Exception:
                log.exception("reconciling %s failed", key)
                with self._lock:  # counted against the request the last pass saw
                    done = Pass(True, self.failures.get(key, Failures()).request)
            try:
                if done is not None and done.gone:
                    with self._lock:
                        self.failures.pop(key, None)
                elif done is not None:
                    self._schedule(key, done)
            finally:
                self.queue.done(key)

    def _schedule(self, key: str, done: Pass) -> None:
        """Queue `key` again at its polling interval, or after its backoff when it failed."""
        with self._lock:
            failures = record(
                self.failures.get(key, Failures()), failed=done.failed, request=done.request
            )
            self.failures[key] = failures
        base, cap = self.backoff
        delay = next_pass(failures, done.polling, random.random(), base=base, cap=cap)
        if done.within is not None and not failures.count:  # a rollout moving, a token due
            delay = done.within if delay is None else min(delay, done.within)
        if failures.count:
            log.warning(
                "%s failed %d time(s) in a row; next try in %.0fs", key, failures.count, delay
            )
        if delay is not None:
            self.queue.add_after(key, delay)

    def _reconcile(self, key: str) -> Pass | None:
        from kubernetes.client.exceptions import ApiException

        namespace, name = key.split("/", 1)
        if self._gatewaysyncs is not None:  # the watch-fed cache: no GET per pass
            cached = self._gatewaysyncs.lookup(namespace, name)
            if cached is None:
                with self._lock:
                    self.failures.pop(key, None)
                return None  # deleted meanwhile
            return self.ctl.reconcile(cached)
        try:
            item = self.ctl.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as e:
            if e.status == 404:
                with self._lock:
                    self.failures.pop(key, None)
                return None  # deleted meanwhile: nothing to do (R28)
            raise
        return self.ctl.reconcile(item)

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set."""
        custom = self.ctl.custom
        gatewaysyncs = Informer(  # every namespace: one not served is told so in its status
            custom.list_cluster_custom_object,
            self._on_gatewaysync,
            group=GROUP,
            version=VERSION,
            plural=PLURAL,
        )
        statuses, pods = self._namespaced_informers()
        informers = [gatewaysyncs, *statuses.values(), *pods.values()]
        for informer in informers:
            informer.start()
        for informer in informers:  # reconciles read pods and statuses from these caches
            while not informer.synced.wait(0.5) and not stop.is_set():
                pass
        self._gatewaysyncs = gatewaysyncs
        self.ctl.gatewaysyncs = lambda ns: [o["metadata"]["name"] for o in gatewaysyncs.cached(ns)]
        self.ctl.statuses = _cached(statuses)
        self.ctl.pods = _cached(pods)
        threads = [
            threading.Thread(target=self._work, args=(stop,), daemon=True)
            for _ in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        while not stop.is_set():
            asked = time.monotonic()
            leader = self.elector is None or self._elect()
            if leader and self.elector is not None:
                self.lead_until = asked + self.lease_seconds * 2 / 3
            if leader and not self.leading.is_set():
                # A new leader looks at everything: the previous one's schedule died with it.
                for key in list(self.known):
                    self.queue.add(key)
                self.ctl.forget("", "")  # another replica may have written statuses meanwhile
                self.leading.set()
            elif not leader:
                self.leading.clear()
            stop.wait(self.lease_seconds / 3)
        self.leading.clear()
        self.queue.close()
        for informer in informers:
            informer.stop()
        for thread in threads:  # a reconcile in progress finishes; workers then see the stop
            thread.join(timeout=30)

    def _namespaced_informers(self) -> tuple[dict[str, Informer], dict[str, Informer]]:
        """Status ConfigMap and pod informers: one pair per served namespace, or one
        cluster-wide pair (key "") when the controller serves every namespace."""
        core = self.ctl.core
        selector = f"{Label.MANAGED_BY}=stoker-agent"
        if self.ctl.namespaces is None:
            return (
                {
                    "": Informer(
                        core.list_config_map_for_all_namespaces,
                        self._on_status,
                        label_selector=selector,
                    )
                },
                {"": Informer(core.list_pod_for_all_namespaces, self._on_pod, strip=pods.strip)},
            )
        served = sorted(self.ctl.namespaces)
        return (
            {
                ns: Informer(
                    core.list_namespaced_config_map,
                    self._on_status,
                    namespace=ns,
                    label_selector=selector,
                )
                for ns in served
            },
            {
                ns: Informer(core.list_namespaced_pod, self._on_pod, strip=pods.strip, namespace=ns)
                for ns in served
            },
        )

    def _elect(self) -> bool:
        try:
            return self.elector is not None and self.elector.try_acquire_or_renew()
        except Exception:
            log.exception("leader election failed; not reconciling until it works")
            return False


def _cached(informers: dict[str, Informer]) -> Callable[[str], list[Any]]:
    """A namespace's objects from its informer (or the cluster-wide one under key "")."""

    def cached(namespace: str) -> list[Any]:
        informer = informers.get(namespace) or informers.get("")
        return informer.cached(namespace) if informer is not None else []

    return cached
