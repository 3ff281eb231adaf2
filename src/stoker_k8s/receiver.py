"""The push receiver: `POST /webhook/{namespace}/{crName}` turns Git and CD events into an
immediate refresh or a requested ref. Decisions are stoker_core.receiving's; this module moves
bytes and talks to the API server through a small port."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stoker_core.errors import InvalidInput
from stoker_core.receiving import (
    DELIVERY_BURST,
    DELIVERY_RATE,
    MAX_BODY,
    STRANGER_BURST,
    STRANGER_RATE,
    Event,
    Network,
    RateLimit,
    Secrets,
    Verb,
    authentic,
    client_address,
    delivery_id,
    delivery_mark,
    parse,
    record,
    replay_key,
    seen,
)
from stoker_core.vocabulary import Annotation
from stoker_k8s.metrics import ControllerMetrics

log = logging.getLogger("stoker.receiver")


class Conflict(Exception):
    """The GatewaySync changed since it was read: read it again (fresh) and decide again."""


ATTEMPTS = 3  # reads and conditional writes per request before answering 409


class Store(Protocol):
    """What the receiver needs from the API server."""

    def get(self, namespace: str, name: str, *, fresh: bool = False) -> dict[str, Any] | None:
        """The GatewaySync (from a cache unless `fresh`), or None when it does not exist."""
        ...

    def annotate(
        self, namespace: str, name: str, annotations: dict[str, str], resource_version: str
    ) -> None:
        """Merge annotations into the GatewaySync if it is still at `resource_version`, else
        raise Conflict."""
        ...

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's decoded data ({} when missing)."""
        ...


class Receiver:
    """State shared by requests: rate limits (per process). Replay memory is on the
    GatewaySync itself (an annotation), so every replica and process sees every delivery."""

    def __init__(
        self,
        store: Store,
        global_secrets: Secrets,
        *,
        clock: Callable[[], float] = time.time,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.store = store
        self.global_secrets = global_secrets
        self._clock = clock
        self._trusted = tuple(trusted_proxies)
        self._strangers = RateLimit(rate=STRANGER_RATE, burst=STRANGER_BURST)  # per address
        self._deliveries = RateLimit(rate=DELIVERY_RATE, burst=DELIVERY_BURST)  # per CR
        self._lock = threading.Lock()

    def handle(
        self, namespace: str, name: str, body: bytes, headers: Mapping[str, str], peer: str = ""
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request from `peer` (the socket's address): (HTTP status, JSON body)."""
        now = self._clock()
        client = client_address(peer, headers.get("x-forwarded-for", ""), self._trusted)
        with self._lock:  # before any work: a flood of forgeries costs a dict look-up each
            if not self._strangers.ready(client, now):
                return 429, {"error": "too many unauthenticated requests; slow down"}
        cr = self.store.get(namespace, name)
        secrets = self._secrets(namespace, cr)
        if not authentic(body, headers, secrets):
            with self._lock:
                self._strangers.allow(client, now)
            return 401, {"error": "unauthorized"}  # also for unknown CRs: no enumeration
        with self._lock:  # a budget forged requests never reach
            if not self._deliveries.allow(f"{namespace}/{name}", now):
                return 429, {"error": "too many requests for this GatewaySync; slow down"}
        if cr is None:  # authenticated: the cache may not yet hold one created a moment ago
            cr = self.store.get(namespace, name, fresh=True)
        if cr is None:
            return 404, {"error": f"GatewaySync {namespace}/{name} not found"}
        tracked = str(cr.get("spec", {}).get("git", {}).get("ref", ""))
        try:
            event = parse(body, headers, tracked)
        except InvalidInput as e:
            return 400, {"error": str(e.problems[0].message)}
        mark = delivery_mark(replay_key(body, headers))
        delivery = delivery_id(body, headers)  # status.history names it
        for _ in range(ATTEMPTS):
            try:
                return self._once(namespace, name, cr, event, (mark, delivery), now)
            except Conflict:  # another replica or writer came first: decide on what it wrote
                cr = self.store.get(namespace, name, fresh=True)
                if cr is None:
                    return 404, {"error": f"GatewaySync {namespace}/{name} not found"}
        return 409, {"error": "the GatewaySync kept changing; send the event again"}

    def _once(
        self,
        namespace: str,
        name: str,
        cr: dict[str, Any],
        event: Event,
        delivered: tuple[str, str],
        now: float,
    ) -> tuple[int, dict[str, Any]]:
        """Act on an event once, recording its delivery (`delivered`: its replay mark and its
        id) in the same conditional write."""
        mark, delivery = delivered
        meta = cr.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        recorded = str(annotations.get(Annotation.DELIVERIES, ""))
        if event.verb is not Verb.IGNORE and seen(recorded, mark, now):
            return 202, {"accepted": True, "message": "duplicate delivery ignored"}
        reply, marks = self._act(event, annotations, now, delivery)
        if event.verb is not Verb.IGNORE:  # a replay of an ignored event would change nothing
            marks[Annotation.DELIVERIES] = record(recorded, mark, now)
            self.store.annotate(namespace, name, marks, str(meta.get("resourceVersion", "")))
        if marks.get(Annotation.REQUESTED_REF):
            log.info(
                "ref requested",
                extra={"cr": f"{namespace}/{name}", "ref": event.ref, "by": event.source},
            )
        return 202, reply

    def _secrets(self, namespace: str, cr: dict[str, Any] | None) -> Secrets:
        own = (cr or {}).get("spec", {}).get("receiver") or {}
        if not own.get("secretName"):
            return self.global_secrets
        data = self.store.secret(namespace, own["secretName"])
        return Secrets(hmac_key=data.get("hmac") or None, token=data.get("token") or None)

    @staticmethod
    def _act(
        event: Event, annotations: Mapping[str, Any], now: float, delivery: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The answer and the annotations an event sets (who sent it and its delivery id go
        into status.history with the commit it brings)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        said = {"accepted": True, "ref": event.ref, "source": str(event.source)}
        if event.verb is Verb.IGNORE:
            return {**said, "message": "ignored"}, {}
        if event.verb is Verb.REFRESH:
            return {**said, "message": "refresh requested"}, {
                Annotation.REFRESH_REQUESTED_AT: stamp,
                Annotation.REFRESH_REQUESTED_BY: str(event.source),
                Annotation.REFRESH_DELIVERY: delivery,
            }
        if annotations.get(Annotation.REQUESTED_REF) == event.ref:
            return {**said, "message": "ref already set"}, {}
        return said, {
            Annotation.REQUESTED_REF: event.ref,
            Annotation.REQUESTED_AT: stamp,
            Annotation.REQUESTED_BY: str(event.source),
            Annotation.REQUESTED_DELIVERY: delivery,
        }


def make_app(receiver: Receiver, metrics: ControllerMetrics | None = None) -> Any:
    """The WSGI application for `POST /webhook/{namespace}/{crName}` (and /healthz, /metrics)."""
    counted = metrics or ControllerMetrics()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        parts = environ.get("PATH_INFO", "").strip("/").split("/")
        if parts == ["healthz"]:
            return _send(start_response, 200, {"ok": True})
        if parts == ["metrics"] and environ.get("REQUEST_METHOD") == "GET":
            data = generate_latest(counted.registry)
            start_response(
                "200 OK",
                [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data)))],
            )
            return [data]
        if len(parts) != 3 or parts[0] != "webhook" or not all(parts):
            return _send(start_response, 404, {"error": "not found"})
        if environ.get("REQUEST_METHOD") != "POST":
            return _send(start_response, 405, {"error": "use POST"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(min(length, MAX_BODY + 1)) if length else b""
        if length > MAX_BODY or len(body) > MAX_BODY:
            return _send(start_response, 413, {"error": "body over 1 MiB"})
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        try:
            status, reply = receiver.handle(
                parts[1], parts[2], body, headers, environ.get("REMOTE_ADDR", "")
            )
        except Exception:  # the API server failed us: say so in JSON, never a bare 500 page
            log.exception("answering a delivery for %s/%s", parts[1], parts[2])
            status, reply = 503, {"error": "the API server did not answer; send the event again"}
        counted.receiver_requests.labels(reply.get("source", "unknown"), str(status)).inc()
        return _send(start_response, status, reply)

    return app


_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _send(start_response: Callable[..., Any], status: int, body: Any) -> list[bytes]:
    data = (json.dumps(body, sort_keys=True) + "\n").encode()
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]
