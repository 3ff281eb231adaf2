"""`/healthz`, `/readyz`, `/startupz` and `/metrics` for the agent, on one small HTTP server.

`/startupz` passes once the journal is recovered and the data directory is consistent and the
first sync has settled, or the start-up timeout has passed (in a pod the gateway container
starts only then: it boots on synced files, and an unreachable Git server delays it by the
timeout at most); `/readyz` fails as soon as shutdown begins; `/healthz` answers while the
process lives.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from stoker_agent.loop import Health
from stoker_core.vocabulary import Metric


class AgentMetrics:
    """The agent's Prometheus metrics, in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._observed: object = None  # the last sync recorded
        r = self.registry
        self.sync_total = Counter(
            Metric.AGENT_SYNC_TOTAL.removesuffix("_total"),
            "Syncs by result.",
            ["profile", "result"],
            registry=r,
        )
        self.sync_duration = Histogram(
            Metric.AGENT_SYNC_DURATION,
            "Sync duration.",
            ["profile"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.files_changed = Gauge(
            Metric.AGENT_FILES_CHANGED, "Files changed by the last sync.", ["profile"], registry=r
        )
        self.last_success = Gauge(
            Metric.AGENT_LAST_SYNC_SUCCESS, "1 if the last sync succeeded.", registry=r
        )
        self.last_timestamp = Gauge(
            Metric.AGENT_LAST_SYNC_TIMESTAMP, "Time of the last sync.", registry=r
        )
        self.drift_files = Gauge(
            Metric.AGENT_DRIFT_FILES, "Managed files drifted from Git.", registry=r
        )
        self.git_fetch_duration = Histogram(
            Metric.AGENT_GIT_FETCH_DURATION,
            "Duration of each git fetch from the remote, by result (success, error).",
            ["result"],
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.scan_total = Counter(
            Metric.AGENT_SCAN_TOTAL.removesuffix("_total"),
            "Gateway scans after an apply, by the gateway's reply (loaded: success).",
            ["result"],
            registry=r,
        )
        self.scan_duration = Histogram(
            Metric.AGENT_SCAN_DURATION,
            "Duration of the gateway's scans and the check after them.",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.designer_blocked = Gauge(
            Metric.AGENT_DESIGNER_SESSIONS_BLOCKED,
            "1 while open Designer sessions hold the sync back (policy wait or fail).",
            registry=r,
        )

    # -- stoker_agent.observers.Observer: told while a sync runs ------------------------------

    def fetched(self, seconds: float, *, ok: bool) -> None:
        """Record one git fetch."""
        self.git_fetch_duration.labels("success" if ok else "error").observe(seconds)

    def scanned(self, seconds: float, result: str) -> None:
        """Record one scan and its result."""
        self.scan_total.labels(result).inc()
        self.scan_duration.observe(seconds)

    def designers(self, *, blocking: bool) -> None:
        """Record whether Designer sessions hold the sync back."""
        self.designer_blocked.set(1 if blocking else 0)

    def observe(self, record: object) -> None:
        """Record one sync (a stoker_core.status.SyncRecord). The same sync written again (a
        health-window check adds to its record; a write the API server refused is offered
        again) is not another sync."""
        from stoker_core.status import SyncRecord

        assert isinstance(record, SyncRecord)
        sync = attrs.evolve(record, health=None)
        if sync == self._observed:
            return
        self._observed = sync
        self.sync_total.labels(record.profile, record.result).inc()
        self.sync_duration.labels(record.profile).observe(record.duration_seconds)
        changed = len(record.added) + len(record.modified) + len(record.deleted)
        self.files_changed.labels(record.profile).set(changed)
        self.last_success.set(0 if record.result == "Error" else 1)
        self.last_timestamp.set_to_current_time()
        self.drift_files.set(len(record.drift))


def _handler(health: Health, metrics: AgentMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), "text/plain; version=0.0.4")
                return
            started = health.startup_passed()
            checks = {
                "/healthz": (True, "ok"),
                "/startupz": (started, "ok" if started else "starting"),
                "/readyz": (
                    health.started and not health.shutting_down,
                    "shutting down"
                    if health.shutting_down
                    else ("ok" if health.started else "not ready"),
                ),
            }
            if self.path not in checks:
                self._send(404, b"not found\n", "text/plain")
                return
            ok, text = checks[self.path]
            self._send(200 if ok else 503, f"{text}\n".encode(), "text/plain")

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds would drown the log

    return Handler


class HealthServer:
    """Serves the probes and metrics in a background thread."""

    def __init__(
        self, health: Health, metrics: AgentMetrics, host: str = "0.0.0.0", port: int = 8082
    ) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(health, metrics))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
