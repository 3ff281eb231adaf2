"""An Ignition 8.3 gateway simulator for tests: a loopback HTTP(S) server over a data directory.

Faithful to ``reference/ignition-gateway-api.md``; see ``docs/simulator.md`` for the API and for
where the simulator had to choose. Requests are answered by :meth:`GatewaySimulator.handle`, a
function from request to :class:`Response`; the ``http.server`` shell only moves bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import html
import itertools
import json
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from support.ignition_sim_resources import (
    DEFAULT_LEVEL,
    LoadedProject,
    LoadedResource,
    ReadPolicy,
    SignatureMode,
    Skip,
    TreeRead,
    chain,
    level_paths,
    permits,
    read_config,
    read_projects,
    token_hash,
    write_caches,
    write_security_properties,
)

ScanKind = Literal["projects", "config"]
State = Literal["STARTING", "RUNNING", "NEEDS_COMMISSIONING", "FAULTED"]
Fault = int | Literal["drop", "lost", "garbage", "redirect", "foreign-json"]
API = "/data/api/v1"
KINDS: tuple[ScanKind, ScanKind] = ("projects", "config")


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, headers and body bytes. ``drop`` closes the connection instead."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    def json(self) -> Any:
        """Parse the body as JSON (for tests calling :meth:`GatewaySimulator.handle`)."""
        return json.loads(self.body)


def _json(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


def _html_error(status: int, reason: str) -> Response:
    """A Jetty-style HTML error page, as the gateway sends for 401/403/404/500 on /data (§1.1)."""
    body = (
        f"<html><head><title>Error {status} {html.escape(reason)}</title></head>"
        f"<body><h2>HTTP ERROR {status} {html.escape(reason)}</h2></body></html>"
    ).encode("iso-8859-1")
    return Response(status, body, {"Content-Type": "text/html;charset=iso-8859-1"})


@dataclass(frozen=True)
class ScanRecord:
    """What one scan saw. ``kind`` is ``projects`` or ``config``; ``trigger`` is ``api``,
    ``boot``, ``periodic`` or ``test``. Times are epoch seconds. ``resources`` lists the loaded
    resource folders (paths relative to the data directory); ``added``/``changed``/``removed``
    compare with the model before the scan; ``stamped`` lists ``resource.json`` files written back.
    """

    kind: ScanKind
    trigger: str
    started: float
    finished: float
    projects: tuple[str, ...]
    collections: tuple[str, ...]
    resources: tuple[str, ...]
    skipped: tuple[Skip, ...]
    stamped: tuple[str, ...]
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    error: str | None = None

    def skip_reason(self, path: str) -> str | None:
        """The reason ``path`` was skipped by this scan, or ``None`` if it was not."""
        return next((s.reason for s in self.skipped if s.path == path), None)


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered: method, path, status and the token name used (and
    any Authorization header: the gateway's API takes its token in its own header, never that)."""

    method: str
    path: str
    status: int
    token: str | None
    at: float
    authorization: str | None = None
    peer: int | None = None  # the client's port: one per connection


@dataclass
class _Lock:
    actor: str
    expires: float
    timestamp: int


@dataclass
class _ScanStatus:
    active: bool = False
    pending: bool = False
    timestamp: int = 0
    duration: int = 0


class GatewaySimulator:
    """A fake Ignition 8.3 gateway serving HTTP(S) on loopback over ``data_dir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Every option can also be
    changed later through the attribute of the same name (e.g. ``sim.scan_delay = 2``).

    - ``tls``: ``(certfile, keyfile)`` or an ``ssl.SSLContext`` to serve HTTPS.
    - ``starting_for``: seconds of STARTING phase after :meth:`start` (``None``: until
      :meth:`finish_starting`). ``restart_seconds``: STARTING time after a restart request.
    - ``commissioned``: ``False`` answers 302 to ``/welcome`` until :meth:`commission`, unless the
      data directory holds ``commissioning.json``.
    - ``signature_mode``: ``accept_and_restamp`` or ``skip_silently`` for mismatched signatures;
      ``stamp_resources``: write ``resource.json`` back with actor ``external``.
    - ``sync_scans``: answer a scan POST only after the scan; default runs it in the background.
    - ``scan_frequency``: seconds between periodic project scans (``None`` = off, the default).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[Path | str, Path | str] | ssl.SSLContext | None = None,
        name: str = "Ignition-sim",
        version: str = "8.3.6 (b2026042713)",
        edition: str = "standard",
        deployment_mode: str = "",
        redundancy_role: str = "Independent",
        starting_for: float | None = 0.0,
        restart_seconds: float = 0.5,
        commissioned: bool = True,
        signature_mode: SignatureMode = "accept_and_restamp",
        stamp_resources: bool = True,
        write_caches: bool = True,
        scan_delay: float = 0.0,
        sync_scans: bool = False,
        scan_frequency: float | None = None,
        accept_bearer: bool = False,
        listen_anywhere: bool = False,
        on_scan: Callable[[ScanRecord], None] | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost") and not listen_anywhere:
            raise ValueError(
                f"the simulator binds loopback only, not {host!r} (listen_anywhere=True: only "
                "in a network namespace of its own, as in its e2e image's pod)"
            )
        self.data_dir = Path(data_dir)
        self.host, self.port, self.tls = host, port, tls
        self.name, self.version, self.edition = name, version, edition
        self.deployment_mode = deployment_mode
        self.redundancy_role = redundancy_role
        # `GET restart-tasks/pending` lists these; a restart (a boot) clears them. `booted_at`:
        # wall-clock time of the last boot, for `GET overview`'s uptime.
        self.restart_tasks: list[str] = []
        self.booted_at = time.time()
        self.starting_for, self.restart_seconds = starting_for, restart_seconds
        self.commissioned = commissioned
        self.signature_mode: SignatureMode = signature_mode
        self.stamp_resources, self.write_caches = stamp_resources, write_caches
        self.scan_delay, self.sync_scans = scan_delay, sync_scans
        self.scan_frequency, self.accept_bearer = scan_frequency, accept_bearer
        self.on_scan = on_scan
        self.refused_projects: set[str] = set()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._scan_mutex = threading.Lock()
        self._stopping = threading.Event()
        self._state: State = "STARTING"
        self._starting_until: float | None = None
        self._booting = False
        self._scans: list[ScanRecord] = []
        self._requests: list[RequestRecord] = []
        self._status = {k: _ScanStatus() for k in KINDS}
        self._scan_locks: dict[ScanKind, _Lock] = {}
        self._projects: dict[str, LoadedProject] = {}
        self._config: dict[str, LoadedResource] = {}
        self._collections: dict[str, dict[str, Any]] = {}
        self._designers: dict[str, dict[str, Any]] = {}
        self._designer_ids = itertools.count(1)
        self._faults: list[tuple[str, Fault, int]] = []
        self._last_periodic = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> GatewaySimulator:
        """Start the simulator (see :meth:`start`)."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the simulator (see :meth:`stop`)."""
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (``https`` when ``tls`` is set)."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self._server.server_address[1]}"

    def start(self) -> GatewaySimulator:
        """Bind a free loopback port, boot (or begin STARTING) and serve in a background thread."""
        server = _Server((self.host, self.port), _Handler, self)
        self._server = server
        self._stopping.clear()
        self._begin_boot(self.starting_for)
        self._spawn(lambda: server.serve_forever(poll_interval=0.05), "ignition-sim-http")
        self._spawn(self._worker, "ignition-sim-worker")
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and socket, and join all threads."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self._server = None

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def state(self) -> State:
        """``STARTING``, ``RUNNING``, ``NEEDS_COMMISSIONING`` or ``FAULTED``."""
        return self._state

    def _begin_boot(self, seconds: float | None) -> None:
        """Enter STARTING for ``seconds`` (``None``: until told); boot now when ``seconds`` is 0."""
        with self._wake:
            self._state = "STARTING"
            self._starting_until = None if seconds is None else time.monotonic() + seconds
            self._wake.notify_all()
        if seconds == 0:
            self._finish_boot()

    def _finish_boot(self, *, commissioning: bool = False) -> None:
        """End STARTING: commission if marked, read the trees (a boot scan), then RUNNING."""
        with self._lock:
            expected = "NEEDS_COMMISSIONING" if commissioning else "STARTING"
            if self._state != expected or self._booting:
                return
            self._booting = True
        try:
            marker = (self.data_dir / "commissioning.json").exists()
            if not self.commissioned and not marker and not commissioning:
                with self._lock:
                    self._state = "NEEDS_COMMISSIONING"
                return
            if not self.commissioned:
                self._write_commissioning_defaults()
                self.commissioned = True
            errors = [self.scan(kind, trigger="boot").error for kind in KINDS]
            with self._lock:
                self._state = "FAULTED" if any(errors) else "RUNNING"
                self.booted_at, self.restart_tasks = time.time(), []
        finally:
            with self._wake:
                self._booting = False
                self._wake.notify_all()

    def set_starting(self, seconds: float | None = None) -> None:
        """Go (back) to STARTING: 503 on /data for ``seconds``, or until :meth:`finish_starting`.

        When the phase ends the gateway re-reads its trees (boot scans), then is RUNNING.
        """
        self._begin_boot(seconds)

    def finish_starting(self) -> None:
        """End a STARTING phase now: boot scans run, then the gateway is RUNNING."""
        self._finish_boot()

    def restart(self, seconds: float | None = None) -> None:
        """Simulate a restart: STARTING for ``seconds`` (default ``restart_seconds``), then boot."""
        self.set_starting(self.restart_seconds if seconds is None else seconds)

    def commission(self) -> None:
        """Commission the gateway as a first boot does, writing default security-properties
        to ``core`` (they lack any API-key level, §1.2), then boot."""
        self._finish_boot(commissioning=True)

    def _write_commissioning_defaults(self) -> None:
        folder = self.data_dir / "config/resources/core/ignition/security-properties"
        if not (folder / "config.json").exists():
            write_security_properties(self.data_dir, read=[DEFAULT_LEVEL], write=[DEFAULT_LEVEL])

    def _worker(self) -> None:
        """Background loop: end STARTING on time, run queued and periodic scans, expire locks."""
        while not self._stopping.is_set():
            with self._wake:
                self._wake.wait(0.02)
                boot_due = (
                    self._state == "STARTING"
                    and not self._booting
                    and self._starting_until is not None
                    and time.monotonic() >= self._starting_until
                )
                queued = [k for k in KINDS if self._status[k].pending]
            if boot_due:
                self._finish_boot()
            for kind in queued:
                self.scan(kind, trigger="api")
            self._periodic()

    def _periodic(self) -> None:
        freq = self.scan_frequency
        if freq is None or self._state != "RUNNING":
            return
        if time.monotonic() - self._last_periodic >= freq:
            self._last_periodic = time.monotonic()
            if self._held("projects") is None:
                self.scan("projects", trigger="periodic")

    # ------------------------------------------------------------------ scanning

    def scan(self, kind: ScanKind, *, trigger: str = "test") -> ScanRecord:
        """Scan ``projects`` or ``config`` now, in this thread, and return its record."""
        with self._scan_mutex:
            with self._lock:
                self._status[kind].active = True
                self._status[kind].pending = False
            started = time.time()
            policy = ReadPolicy(signature_mode=self.signature_mode, stamp=self.stamp_resources)
            if kind == "projects":
                read = read_projects(self.data_dir, policy=policy, refused=self.refused_projects)
            else:
                read = read_config(self.data_dir, policy=policy)
            error = self._write_caches(read, kind)
            if self.scan_delay:
                self._stopping.wait(self.scan_delay)
            return self._commit(kind, trigger, started, read, error)

    def _write_caches(self, read: TreeRead, kind: ScanKind) -> str | None:
        if not self.write_caches:
            return None
        try:
            write_caches(self.data_dir, read, "project" if kind == "projects" else "config")
        except OSError as e:
            return f"could not write .resources cache: {e}"
        return None

    def _commit(
        self, kind: ScanKind, trigger: str, started: float, read: TreeRead, error: str | None
    ) -> ScanRecord:
        """Swap the loaded model for what the scan read and append its record."""
        with self._lock:
            before = self._loaded_resources(kind)
            if error is None:
                if kind == "projects":
                    self._projects = dict(read.projects)
                else:
                    self._config = dict(read.resources)
                    self._collections = dict(read.collections)
            after = read.resources
            finished = time.time()
            record = ScanRecord(
                kind=kind,
                trigger=trigger,
                started=started,
                finished=finished,
                projects=tuple(sorted(read.projects)),
                collections=tuple(sorted(read.collections)),
                resources=tuple(sorted(after)),
                skipped=tuple(read.skipped),
                stamped=tuple(read.stamped),
                added=tuple(sorted(set(after) - set(before))),
                changed=tuple(
                    sorted(p for p in after if p in before and _differs(before[p], after[p]))
                ),
                removed=tuple(sorted(set(before) - set(after))),
                error=error,
            )
            self._scans.append(record)
            if self.on_scan is not None:
                self.on_scan(record)
            status = self._status[kind]
            status.active = status.pending
            status.timestamp = int(finished * 1000)
            status.duration = int((finished - started) * 1000)
            self._wake.notify_all()
            return record

    def _loaded_resources(self, kind: ScanKind) -> dict[str, LoadedResource]:
        if kind == "config":
            return dict(self._config)
        return {p: r for proj in self._projects.values() for p, r in proj.resources.items()}

    def request_scan(self, kind: ScanKind) -> dict[str, Any]:
        """What ``POST /scan/<kind>`` does: release the scan lock, queue (or run) a scan."""
        with self._wake:
            self._scan_locks.pop(kind, None)
            self._status[kind].active = True
            self._status[kind].pending = not self.sync_scans
            self._wake.notify_all()
        if self.sync_scans:
            self.scan(kind, trigger="api")
        return self.scan_status(kind)

    def scan_status(self, kind: ScanKind) -> dict[str, Any]:
        """``{scanActive, lastScanTimestamp, lastScanDuration}`` for ``kind`` (§1.3)."""
        with self._lock:
            s = self._status[kind]
            return {
                "scanActive": s.active,
                "lastScanTimestamp": s.timestamp,
                "lastScanDuration": s.duration,
            }

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no scan is queued or running; raise ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while any(s.active or s.pending for s in self._status.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("simulator scans still active")
                self._wake.wait(left)

    # ------------------------------------------------------------------ what the gateway holds

    @property
    def scans(self) -> list[ScanRecord]:
        """Every scan so far, oldest first (a copy; boot scans included, trigger ``boot``)."""
        with self._lock:
            return list(self._scans)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every HTTP request answered so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def loaded_projects(self) -> dict[str, LoadedProject]:
        """Projects as loaded by the last project scan, by name."""
        with self._lock:
            return dict(self._projects)

    def resource(self, path: str) -> LoadedResource | None:
        """The loaded resource whose folder is ``path`` (relative to the data dir), if any."""
        with self._lock:
            if path in self._config:
                return self._config[path]
            parts = path.split("/")
            project = self._projects.get(parts[1]) if parts[0] == "projects" else None
            return project.resources.get(path) if project and len(parts) > 1 else None

    def config_resource(
        self, module: str, type_: str, name: str = "", *, collection: str | None = None
    ) -> LoadedResource | None:
        """The resolved config resource through the active chain (or from one ``collection``)."""
        if collection is not None:
            with self._lock:
                return next(
                    (
                        r
                        for r in self._config.values()
                        if (r.collection, r.module, r.type, r.name)
                        == (collection, module, type_, name)
                    ),
                    None,
                )
        copies = self._copies(module, type_, name)
        return copies[-1] if copies else None

    def _copies(self, module: str, type_: str, name: str) -> list[LoadedResource]:
        """Copies of a config resource in the active chain, lowest precedence first."""
        with self._lock:
            order = chain(self._collections, self.deployment_mode)
            found = [
                r
                for r in self._config.values()
                if (r.module, r.type, r.name) == (module, type_, name) and r.collection in order
            ]
        return sorted(found, key=lambda r: order.index(str(r.collection)))

    # ------------------------------------------------------------------ test controls

    def add_designer(
        self, user: str = "admin", project: str = "", address: str = "127.0.0.1"
    ) -> str:
        """Open a Designer session (as ``GET /designers`` will show it) and return its id."""
        with self._lock:
            sid = f"designer-{next(self._designer_ids)}"
            self._designers[sid] = {
                "id": sid,
                "user": user,
                "uptime": 1000,
                "lastcomm": int(time.time() * 1000),
                "timeout": 60000,
                "memory": {"used": 268435456, "max": 2147483648},
                "project": project,
                "address": address,
                "timezone": "UTC",
            }
            return sid

    def set_designers(self, sessions: list[Mapping[str, Any]]) -> None:
        """Replace all Designer sessions; each mapping may give any item field (§1.3)."""
        with self._lock:
            self._designers.clear()
        for session in sessions:
            sid = self.add_designer()
            with self._lock:
                item = {**self._designers.pop(sid), **session}
                self._designers[str(item["id"])] = item

    def fail(self, path_prefix: str, status: Fault = 500, times: int = 1) -> None:
        """Answer the next ``times`` requests under ``path_prefix`` with ``status`` (an HTML error
        page, e.g. 503), ``"drop"`` (close the connection without answering or acting),
        ``"lost"`` (act on the request, then close the connection: the answer is lost),
        ``"garbage"`` (200 with an HTML login page), ``"redirect"`` (302 to a login page) or
        ``"foreign-json"`` (200 with JSON that is not the API's), the last three as a proxy in
        front of the gateway would. ``times=-1`` means until :meth:`clear_faults`."""
        with self._lock:
            self._faults.append((path_prefix, status, times))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, (prefix, status, times) in enumerate(self._faults):
                if path.startswith(prefix):
                    if times == 1:
                        del self._faults[i]
                    elif times > 1:
                        self._faults[i] = (prefix, status, times - 1)
                    return status
        return None

    def _held(self, kind: ScanKind) -> _Lock | None:
        with self._lock:
            lock = self._scan_locks.get(kind)
            if lock is not None and time.monotonic() >= lock.expires:
                del self._scan_locks[kind]
                return None
            return lock

    # ------------------------------------------------------------------ HTTP: request → response

    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        secure: bool = False,
        peer: int | None = None,
    ) -> Response:
        """Answer one request. ``headers`` keys are matched case-insensitively."""
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        fault = self._take_fault(path)
        token_name: str | None = None
        if fault == "drop":
            response = Response(0, drop=True)
        elif fault == "garbage":
            response = Response(
                200, b"<html><body>Please log in</body></html>", {"Content-Type": "text/html"}
            )
        elif fault == "redirect":
            response = Response(302, headers={"Location": "/sso/login?next=" + quote(path)})
        elif fault == "foreign-json":
            response = _json(200, {"status": "UP"})
        elif fault is not None and fault != "lost":
            response = _html_error(fault, "Server Error")
        elif path == "/StatusPing":
            response = self._status_ping()
        elif path == "/system/gwinfo":
            response = self._gwinfo()
        elif path == "/data" or path.startswith("/data/"):
            response, token_name = self._data(method, path, query, hdrs, body, secure)
        else:
            response = _html_error(404, "Not Found")
        with self._lock:
            self._requests.append(
                RequestRecord(
                    method,
                    path,
                    response.status,
                    token_name,
                    time.time(),
                    hdrs.get("authorization"),
                    peer,
                )
            )
        if fault == "lost":  # the gateway acted on it (recorded above); the answer is lost
            return Response(0, drop=True)
        return response

    def _status_ping(self) -> Response:
        if self._state == "NEEDS_COMMISSIONING":
            return _json(200, {"state": "RUNNING", "details": "COMMISSIONING"})
        return _json(200, {"state": "RUNNING" if self._state == "RUNNING" else "STARTING"})

    def _gwinfo(self) -> Response:
        fields = {
            "ContextStatus": self._state,
            "PlatformName": self.gateway_name(),
            "Version": self.version.split(" ")[0],
            "PlatformEdition": self.edition,
            "RedundancyStatus": self.redundancy_role,
            "DeploymentMode": self.deployment_mode,
        }
        text = "".join(f"{k}={v};" for k, v in fields.items())
        return Response(200, text.encode(), {"Content-Type": "text/plain;charset=utf-8"})

    def gateway_name(self) -> str:
        """``systemName`` from the resolved system-properties, else the ``name`` option (§2.5)."""
        props = self.config_resource("ignition", "system-properties")
        try:
            name = props.json().get("systemName") if props else None
        except (KeyError, ValueError, AttributeError):
            name = None
        return str(name or self.name)

    def _data(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
        secure: bool,
    ) -> tuple[Response, str | None]:
        if self._state == "NEEDS_COMMISSIONING":
            return Response(302, headers={"Location": "/welcome"}), None
        if self._state in ("STARTING", "FAULTED"):
            return _html_error(503, "Service Unavailable"), None
        token, denial = self._authorize(method, headers, secure)
        if denial is not None:
            return denial, token
        route = path.removeprefix(API).strip("/").split("/") if path.startswith(API) else None
        try:
            response = self._route(method, route, query, body, token or "")
        except _BadRequest as e:
            response = _html_error(400, str(e))
        if response is None:
            response = _json(404, {"message": f"No route match for path: {path}"})
        return response, token

    # ------------------------------------------------------------------ auth (§1.1, §1.2)

    def _authorize(
        self, method: str, headers: Mapping[str, str], secure: bool
    ) -> tuple[str | None, Response | None]:
        """Return the token name and, when refused, the 401 or 403 answer."""
        presented = headers.get("x-ignition-api-token")
        auth = headers.get("authorization", "")
        if presented is None and self.accept_bearer and auth.lower().startswith("bearer "):
            presented = auth[7:].strip()
        if not presented or ":" not in presented:
            return None, _html_error(401, "Unauthorized")
        name, secret = presented.split(":", 1)
        token = self.config_resource("ignition", "api-token", name)
        try:
            config = token.json() if token else None
            expected = config["settings"]["tokenHash"] if config else None
            matches = expected is not None and token_hash(secret) == expected
        except (KeyError, TypeError, ValueError):
            matches = False
        enabled = token is not None and (token.manifest.get("attributes") or {}).get(
            "enabled", True
        )
        if not matches or not enabled or config is None:
            return None, _html_error(401, "Unauthorized")
        profile = config.get("profile") or {}
        if profile.get("secureChannelRequired", True) and not secure:
            return name, _html_error(403, "Forbidden")
        key = "readPermissions" if method in ("GET", "HEAD") else "writePermissions"
        if not permits(level_paths(profile.get("securityLevels")), self._required(key)):
            return name, _html_error(403, "Forbidden")
        return name, None

    def _required(self, key: str) -> list[str]:
        props = self.config_resource("ignition", "security-properties")
        try:
            nodes = props.json()[key]["securityLevels"] if props else None
        except (KeyError, TypeError, ValueError):
            nodes = None
        return [DEFAULT_LEVEL] if nodes is None else level_paths(nodes)

    # ------------------------------------------------------------------ routes (§1.3)

    def _route(
        self,
        method: str,
        route: list[str] | None,
        query: dict[str, list[str]],
        body: bytes,
        actor: str,
    ) -> Response | None:
        if not route:
            return None
        head, rest = route[0], route[1:]
        if head == "gateway-info" and not rest and method == "GET":
            return _json(200, self.gateway_info())
        if head == "scan" and len(rest) == 1 and rest[0] in KINDS:
            kind: ScanKind = rest[0]  # type: ignore[assignment]
            if method == "POST":
                return _json(200, self.request_scan(kind))
            return _json(200, self.scan_status(kind)) if method == "GET" else None
        if head == "scan-lock" and len(rest) == 1 and rest[0] in KINDS:
            return self._scan_lock(method, rest[0], body, actor)  # type: ignore[arg-type]
        if head in ("designers", "designer"):
            return self._designer_route(method, head, rest)
        if head == "projects" and method == "GET":
            return self._projects_route(rest)
        if head == "resources" and method == "GET":
            return self._resources_route(rest, query)
        if head == "mode" and not rest and method == "GET":
            return _json(200, _envelope(self.modes()))
        if head == "restart-tasks" and rest == ["pending"] and method == "GET":
            return _json(200, {"pending": list(self.restart_tasks)})
        if head == "overview" and not rest and method == "GET":
            uptime = int((time.time() - self.booted_at) * 1000)
            return _json(200, {"gatewayName": self.gateway_name(), "uptime": uptime})
        if head == "restart-tasks" and rest == ["restart"] and method == "POST":
            if query.get("confirm") != ["true"]:
                raise _BadRequest("confirm=true is required")
            self.restart()
            return _json(200, True)
        return None

    def gateway_info(self) -> dict[str, Any]:
        """The gateway-info body (§1.3): ``ignitionVersion``, not ``version``."""
        port = self._server.server_address[1] if self._server else self.port
        return {
            "name": self.gateway_name(),
            "redundancyRole": self.redundancy_role,
            "edition": self.edition,
            "hostname": socket.gethostname(),
            "port": str(port),
            "ignitionVersion": self.version,
            "deploymentMode": self.deployment_mode,
            "timeZone": "Coordinated Universal Time",
            "timeZoneId": "UTC",
            "jvmVersion": "17.0.13+11",
            "allowUnsignedModules": False,
            "license": {
                "mode": "Trial",
                "validForVersion": True,
                "expirationDate": "Jul 29, 2035, 11:46:15 AM",
                "licenseRestrictions": [],
            },
        }

    def _scan_lock(self, method: str, kind: ScanKind, body: bytes, actor: str) -> Response | None:
        if method == "GET":
            lock = self._held(kind)
            return Response(204) if lock is None else _json(200, _lock_body(lock))
        if method != "POST":
            return None
        try:
            opts = json.loads(body or b"{}")
            acquire = float(opts.get("acquireTimeout", 10))
            hold = float(opts.get("holdTimeout", 60))
            if acquire < 0 or hold <= 0:
                raise ValueError("timeouts must be positive")
        except (ValueError, TypeError, AttributeError) as e:
            raise _BadRequest(f"invalid scan-lock body: {e}") from e
        deadline = time.monotonic() + acquire
        with self._wake:
            while True:
                lock = self._held(kind)
                if lock is not None and lock.actor == actor:
                    return _html_error(409, "Conflict")
                busy = lock is not None or self._status[kind].active
                if not busy:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return _html_error(408, "Request Timeout")
                self._wake.wait(min(left, 0.05))
            new = _Lock(actor, time.monotonic() + hold, int(time.time() * 1000))
            self._scan_locks[kind] = new
            return _json(200, _lock_body(new))

    def _designer_route(self, method: str, head: str, rest: list[str]) -> Response | None:
        with self._lock:
            if head == "designers" and not rest and method == "GET":
                return _json(200, _envelope(list(self._designers.values())))
            if head == "designer" and len(rest) == 1:
                session = self._designers.get(rest[0])
                if session is None:
                    return _html_error(404, "Not Found")
                if method == "DELETE":
                    del self._designers[rest[0]]
                    return _json(200, {"message": f"Designer session {rest[0]} removed"})
                return _json(200, session) if method == "GET" else None
        return None

    def _projects_route(self, rest: list[str]) -> Response | None:
        projects = self.loaded_projects()
        if rest == ["list"]:
            return _json(200, _envelope([p.item() for _, p in sorted(projects.items())]))
        if rest == ["names"]:
            return _json(200, _envelope(sorted(projects)))
        if len(rest) == 2 and rest[0] == "find":
            found = projects.get(rest[1])
            return _json(200, found.item()) if found else _html_error(404, "Not Found")
        return None

    def _resources_route(self, rest: list[str], query: dict[str, list[str]]) -> Response | None:
        if len(rest) < 3:
            return None
        op, module, type_, name = rest[0], rest[1], rest[2], "/".join(rest[3:])
        collection = (query.get("collection") or [None])[0]
        if op in ("find", "singleton") and (op == "find") == bool(name):
            copies = self._copies(module, type_, name)
            if collection is not None:
                copies = [c for c in copies if c.collection == collection]
            if not copies:
                return _html_error(404, "Not Found")
            return _json(200, _resource_body(copies))
        if op in ("list", "names") and not name:
            with self._lock:
                names = sorted(
                    {
                        r.name
                        for r in self._config.values()
                        if (r.module, r.type) == (module, type_) and r.name
                    }
                )
            if op == "names":
                return _json(200, _envelope(names))
            return _json(
                200, _envelope([_resource_body(self._copies(module, type_, n)) for n in names])
            )
        return None

    def modes(self) -> list[dict[str, Any]]:
        """Deployment modes (collections other than system/external/core/local) with counts."""
        with self._lock:
            out = []
            for name, mode in sorted(self._collections.items()):
                if name in ("system", "external", "core", "local"):
                    continue
                count = sum(1 for r in self._config.values() if r.collection == name)
                out.append(
                    {
                        "name": name,
                        "title": mode.get("title", name),
                        "description": mode.get("description", ""),
                        "resourceCount": count,
                    }
                )
            return out


class _BadRequest(Exception):
    """A request the gateway answers with 400."""


def _envelope(items: list[Any]) -> dict[str, Any]:
    """The list envelope shared by list endpoints (§1.3)."""
    n = len(items)
    return {"items": items, "metadata": {"total": n, "matching": n, "limit": -1, "offset": 0}}


def _lock_body(lock: _Lock) -> dict[str, Any]:
    remaining = max(0, round(lock.expires - time.monotonic()))
    return {"actor": lock.actor, "remaining": remaining, "timestamp": lock.timestamp}


def _resource_body(copies: list[LoadedResource]) -> dict[str, Any]:
    """``find``/``singleton`` body: defining collection, every collection, resolved value (§2.2)."""
    top = copies[-1]
    try:
        config = top.json()
    except (KeyError, ValueError):
        config = {}
    return {
        "name": top.name,
        "collection": copies[0].collection,
        "collections": [c.collection for c in copies],
        "signature": top.signature,
        "enabled": (top.manifest.get("attributes") or {}).get("enabled", True),
        "config": config,
    }


def _differs(a: LoadedResource, b: LoadedResource) -> bool:
    return a.digests != b.digests or _strip(a.manifest) != _strip(b.manifest)


def _strip(manifest: Mapping[str, Any]) -> dict[str, Any]:
    attributes = {
        k: v
        for k, v in (manifest.get("attributes") or {}).items()
        if k not in ("lastModification", "lastModificationSignature")
    }
    return {**manifest, "attributes": attributes}


# ---------------------------------------------------------------------- the thin HTTP shell


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its simulator and can close live connections."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type, sim: GatewaySimulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        self.tls_context = _tls_context(sim.tls)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        if self.tls_context is not None:
            conn = self.tls_context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            )
        with self.conn_lock:
            self.connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection so handler threads end promptly."""
        with self.conn_lock:
            live = list(self.connections)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _tls_context(
    tls: tuple[Path | str, Path | str] | ssl.SSLContext | None,
) -> ssl.SSLContext | None:
    if tls is None or isinstance(tls, ssl.SSLContext):
        return tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls[0]), str(tls[1]))
    return context


class _Handler(BaseHTTPRequestHandler):
    """Moves bytes between the socket and :meth:`GatewaySimulator.handle`."""

    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10
    server_version = "Jetty(10.0.x)"
    # Headers and body leave in two writes: with Nagle's algorithm the body waited for the
    # client's delayed ACK, ~40 ms a call on a kept-alive connection, which no real gateway adds.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        """Finish the TLS handshake (if any), then serve requests until the connection closes."""
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            super().handle()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.server.sim.handle(
            self.command,
            self.path,
            dict(self.headers.items()),
            body,
            secure=isinstance(self.request, ssl.SSLSocket),
            peer=self.client_address[1],
        )
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet; the simulator records requests in ``sim.requests``."""


@contextlib.contextmanager
def running(data_dir: Path | str, **options: Any) -> Iterator[GatewaySimulator]:
    """Start a :class:`GatewaySimulator` for the duration of a ``with`` block."""
    sim = GatewaySimulator(data_dir, **options)
    with sim:
        yield sim


def main(argv: list[str] | None = None) -> int:
    """Serve a data directory until SIGTERM: the e2e image's gateway (adapters/images/images.toml).

    Each scan is one JSON line on stdout (the container's log), so a test reads what the gateway
    loaded at boot and at every scan from `kubectl logs`.
    """
    parser = argparse.ArgumentParser(description="The Ignition gateway simulator, as a server.")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--listen", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--name", default="Ignition-sim")
    parser.add_argument("--starting-for", type=float, default=0.0, help="seconds of STARTING")
    parser.add_argument(
        "--refuse-project", action="append", default=[], metavar="NAME",
        help="a project every scan refuses to load (a rejected commit)",
    )  # fmt: skip
    parser.add_argument(
        "--redundancy-role", default="Independent", choices=("Independent", "Master", "Backup"),
        help="the role gateway-info reports (a redundant pair's node)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    def report(record: ScanRecord) -> None:
        print(json.dumps({"scan": dataclasses.asdict(record)}, default=str), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim = GatewaySimulator(
        args.data_dir, host=args.listen, port=args.port, name=args.name,
        starting_for=args.starting_for, listen_anywhere=True, on_scan=report,
        redundancy_role=args.redundancy_role,
    )  # fmt: skip
    sim.refused_projects.update(args.refuse_project)
    with sim:
        print(json.dumps({"listening": sim.url}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


__all__ = [
    "GatewaySimulator",
    "LoadedProject",
    "LoadedResource",
    "RequestRecord",
    "Response",
    "ScanRecord",
    "Skip",
    "running",
]

if __name__ == "__main__":
    raise SystemExit(main())
