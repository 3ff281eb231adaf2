"""The in-cluster agent's own client for the Kubernetes API, on `requests`.

It makes exactly the agent's calls (read and watch its metadata ConfigMap, replace its status
ConfigMap, read its own pod), so `stoker agent` never imports the `kubernetes` package, whose
model classes alone weigh about 40 MiB in every gateway's sidecar. Every answer is bounded in
size and time, and every failure becomes the TemporaryError the sync loop retries, worded as
the agent's ports have always worded it. The controller, webhook and receiver keep the
official client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict
from urllib.parse import quote

import requests

from stoker_agent.replies import ReplyRefused, read_body, read_stream
from stoker_core import jsontext
from stoker_core.errors import TemporaryError
from stoker_k8s.apiaccess import Access

if TYPE_CHECKING:
    from stoker_agent.gateway import Route

log = logging.getLogger("stoker.agent")

# (connect, read) seconds for each API call: an API server that stops answering must not hold
# the sync loop forever.
API_TIMEOUT = (5.0, 20.0)
# The largest answer read: a ConfigMap holds at most 1 MiB of data, a pod far less.
MAX_ANSWER = 4 * 1024 * 1024
WATCH_SECONDS = 60  # the server ends each watch after this; the client's read timeout is later


class ObjectMeta(TypedDict, total=False):
    """The metadata fields the agent reads."""

    name: str
    namespace: str
    uid: str
    resourceVersion: str
    labels: dict[str, str]


class ConfigMap(TypedDict, total=False):
    """A ConfigMap as the API server sends it (the fields the agent uses)."""

    metadata: ObjectMeta
    data: dict[str, str]


class Pod(TypedDict, total=False):
    """A pod as the API server sends it (the agent reads its metadata, and its status for the
    gateway container's restart count: read defensively)."""

    metadata: ObjectMeta
    status: dict[str, Any]


class Gone(TemporaryError):
    """The watch's resourceVersion is too old (410 Gone): list again, at once."""


def refusal(doing: str, status: int, reason: str) -> TemporaryError:
    """The error for an API answer of `status`: 401 and 403 say what to fix."""
    if status == 401:
        return TemporaryError(
            f"{doing}: the API server does not accept the agent's token; the controller "
            "writes and renews it in the Secret stoker-agent-token-<gatewaysync>, which the "
            "kubelet mounts at STOKER_API_TOKEN_FILE"
        )
    if status == 403:
        return TemporaryError(
            f"{doing}: forbidden; the controller grants this pod's agent access (Role "
            "stoker-agent-<gatewaysync>) once it has discovered the pod"
        )
    if status == 410:
        return Gone(f"{doing}: the API server answered 410 Gone")
    return TemporaryError(f"{doing}: the API server answered {status} {reason}".rstrip())


def _no_answer(doing: str, error: BaseException) -> NoReturn:
    raise TemporaryError(
        f"{doing}: the API server did not answer ({type(error).__name__})"
    ) from None


def _body(doing: str, reply: requests.Response, limit: int = MAX_ANSWER) -> Any:
    """The JSON answer, read up to `limit` bytes within the read timeout."""
    return _parsed(doing, read_body, reply, limit)


def _parsed(doing: str, read: Callable[..., bytes], reply: Any, limit: int = MAX_ANSWER) -> Any:
    """The JSON answer `read` reads from `reply` (read_body or read_stream), bounded."""
    try:
        body = read(reply, limit=limit, within=API_TIMEOUT[1])
    except ReplyRefused as e:
        raise TemporaryError(f"{doing}: the API server's {str(e).removeprefix('the ')}") from None
    try:
        return jsontext.loads(body)
    except ValueError:
        raise TemporaryError(f"{doing}: the API server's answer is not JSON") from None


def _lines(doing: str, reply: requests.Response, limit: int = MAX_ANSWER) -> Iterator[bytes]:
    """A watch stream's lines (one event each), as they arrive, each at most `limit` bytes."""
    pending = b""
    for chunk in reply.iter_content(None):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
        if len(pending) > limit:
            raise TemporaryError(f"{doing}: a watch event is over {limit // (1024 * 1024)} MiB")
    if pending.strip():
        yield pending


class AgentApi:
    """The agent's calls to the API server, under `access` (a token file is read each time)."""

    def __init__(self, access: Access, *, timeout: tuple[float, float] = API_TIMEOUT) -> None:
        self.access = access
        self._timeout = timeout
        self._local = threading.local()  # a Session per thread: the watch has its own

    def read_config_map(self, namespace: str, name: str, *, doing: str) -> ConfigMap | None:
        """The ConfigMap, or None if there is none."""
        found: ConfigMap | None = self._call(doing, "GET", _path(namespace, "configmaps", name))
        return found

    def replace_config_map(
        self, namespace: str, name: str, body: dict[str, Any], *, doing: str
    ) -> ConfigMap | None:
        """Replace the ConfigMap; None if it does not exist (it is not created)."""
        path = _path(namespace, "configmaps", name)
        done: ConfigMap | None = self._call(doing, "PUT", path, body=body)
        return done

    def read_pod(self, namespace: str, name: str, *, doing: str) -> Pod:
        """The pod (a TemporaryError if it is not there)."""
        pod: Pod | None = self._call(doing, "GET", _path(namespace, "pods", name))
        if pod is None:
            raise refusal(doing, 404, "Not Found")
        return pod

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxy or CA bundle from the environment
            self._local.session = session
        return session

    def _call(
        self, doing: str, method: str, path: str, *, body: Any = None, params: Any = None
    ) -> Any:
        """One request; None for a 404; any other refusal or no answer is a TemporaryError."""
        if params is None:
            return self._pooled(doing, method, path, body)
        try:  # a listing (the watch's): requests encodes its query
            with self._send(method, path, body=body, params=params) as reply:
                if reply.status_code == 404:
                    return None
                if reply.status_code >= 300:
                    raise refusal(doing, reply.status_code, reply.reason or "")
                return _body(doing, reply)
        except (requests.RequestException, OSError) as e:
            _no_answer(doing, e)

    def _pooled(self, doing: str, method: str, path: str, body: Any) -> Any:
        """`_call` without a query, sent straight to requests' own urllib3 pool for the server
        (the same TLS, client certificate and headers) without requests preparing each request:
        ~0.6 ms of CPU less a call, three calls a sync. Errors are named as requests named them."""
        import urllib3

        from stoker_agent.gateway import json_body, requests_name

        headers = {"Accept": "application/json", **self.access.headers()}
        data = None if body is None else json_body(body)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            route = self._route()
        except (requests.RequestException, OSError) as e:  # a CA or certificate not there
            _no_answer(doing, e)
        try:
            raw = route.open(method, path, data, headers, self._timeout)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise TemporaryError(
                f"{doing}: the API server did not answer ({requests_name(e)})"
            ) from None
        if raw.status == 404 or raw.status >= 300:
            raw.close()  # never read: as requests' Response left it
            raw.release_conn()
            if raw.status == 404:
                return None
            raise refusal(doing, raw.status, raw.reason or "")
        return _parsed(doing, read_stream, raw)

    def _route(self) -> Route:
        from stoker_agent.gateway import Route

        route: Route | None = getattr(self._local, "route", None)
        if route is None:
            access = self.access
            route = Route.to(access.server, access.verify, {}, access.cert)
            self._local.route = route
        return route

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Any = None,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        access = self.access
        return self._session().request(
            method,
            access.server + path,
            params=params,
            json=body,
            headers={"Accept": "application/json", **access.headers()},
            timeout=timeout or self._timeout,
            verify=access.verify,
            cert=access.cert,
            stream=True,
            allow_redirects=False,
        )

    def list_and_watch(
        self,
        namespace: str,
        name: str,
        on_change: Callable[[], None],
        stopped: threading.Event,
        *,
        doing: str,
    ) -> None:
        """List the ConfigMap `name`, call `on_change`, then watch it from the listing's
        resourceVersion (bookmarks on) calling `on_change` on every change, until `stopped`
        or a failure (raised; a 410 Gone as `Gone`)."""
        selector = {"fieldSelector": f"metadata.name={name}"}
        path = _path(namespace, "configmaps")
        listing = self._call(doing, "GET", path, params=selector)
        if not isinstance(listing, dict):
            raise TemporaryError(f"{doing}: the API server's list answer has no items")
        version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        on_change()
        while not stopped.is_set():
            params = {
                **selector,
                "watch": "true",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(WATCH_SECONDS),
            }
            # The server ends the watch at timeoutSeconds; if even that never arrives (a dead
            # peer, a NAT that dropped the flow), the read timeout ends it and we relist.
            try:
                with self._send(
                    "GET", path, params=params, timeout=(5.0, WATCH_SECONDS + 10.0)
                ) as reply:
                    if reply.status_code >= 300:
                        raise refusal(doing, reply.status_code, reply.reason or "")
                    for line in _lines(doing, reply):
                        version = _event(doing, line, version, on_change)
                        if stopped.is_set():
                            return
            except (requests.RequestException, OSError) as e:
                _no_answer(doing, e)


def _event(doing: str, line: bytes, version: str, on_change: Callable[[], None]) -> str:
    """Handle one watch event; return the resourceVersion to resume from."""
    try:
        event = jsontext.loads(line)
        kind, obj = event["type"], event["object"]
    except (ValueError, KeyError, TypeError):
        raise TemporaryError(f"{doing}: a watch event is not JSON") from None
    if kind == "ERROR":
        code = obj.get("code", 0) if isinstance(obj, dict) else 0
        raise refusal(doing, int(code or 0), str(obj.get("reason", "")))
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    version = str((meta or {}).get("resourceVersion") or version)
    if kind != "BOOKMARK":
        on_change()
    return version


def _path(namespace: str, resource: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace, safe='')}/{resource}"
    return base if name is None else f"{base}/{quote(name, safe='')}"


class ConfigMapWatch:
    """A background thread that keeps a watch on one ConfigMap and calls `on_change` for every
    listing and change; it lists again on 410 Gone at once, and after a growing pause on any
    other failure."""

    def __init__(
        self, api: AgentApi, namespace: str, name: str, on_change: Callable[[], None]
    ) -> None:
        self._api, self._namespace, self._name = api, namespace, name
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="metadata-watch")

    def start(self) -> ConfigMapWatch:
        """Begin listing and watching."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current watch call returns (at most WATCH_SECONDS)."""
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        doing = f"watching the metadata ConfigMap {self._name}"
        while not self._stop.is_set():
            try:
                self._api.list_and_watch(
                    self._namespace, self._name, self._on_change, self._stop, doing=doing
                )
                failures = 0
            except Gone:
                failures = 0  # a compaction: list again at once
            except TemporaryError as e:
                failures += 1
                log.warning("%s; listing again", e)
                self._stop.wait(min(30.0, 0.5 * 2**failures))
