"""The pod webhook's GatewaySync listing is bounded in time: an API server that accepts the
connection and never answers gets the review a 503 (the failurePolicy decides) within the
webhook's own timeout, instead of a worker thread held for as long as the server likes."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from kubernetes import client

from stoker_k8s.admission import Unavailable, review_pod
from stoker_k8s.commands.webhook import _clients
from stoker_k8s.connection import connect
from support.loopback import accepting


@attrs.frozen
class SilentServer:
    url: str
    held: list[socket.socket]


@pytest.fixture
def silent_api_server() -> Iterator[SilentServer]:
    """A loopback address that accepts connections and never answers; connections are kept."""
    held: list[socket.socket] = []
    with accepting(held.append) as url:
        yield SilentServer(url, held)
    for conn in held:
        conn.close()


def kubeconfig_text(server: str) -> str:
    """A kubeconfig naming `server`, with a token that nothing checks."""
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )


@pytest.fixture
def kubeconfig(tmp_path: Path, silent_api_server: SilentServer) -> Iterator[str]:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text(silent_api_server.url))
    saved = client.Configuration.get_default_copy()
    yield str(path)
    client.Configuration.set_default(saved)


def test_a_silent_api_server_turns_a_pod_review_into_a_503_within_the_webhook_timeout(
    kubeconfig: str, silent_api_server: SilentServer
) -> None:
    connect(kubeconfig)
    list_crs, _ = _clients()
    review = {"request": {"uid": "u", "namespace": "plant", "object": {"metadata": {}}}}
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            review_pod(review, list_crs)
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)  # a liveness bound far above the 3 s read timeout; the bug hung forever
    assert not worker.is_alive(), "the review still waits for the API server after 30 s"
    assert outcome, "the review answered without the GatewaySyncs it needs"
    assert isinstance(outcome[0], Unavailable), outcome[0]
    assert "listing GatewaySyncs in plant" in str(outcome[0])
    # One try within the read timeout (3 s), not urllib3's default four (12 s, more than the
    # webhook's 5 s timeoutSeconds): counted as connections, not seconds.
    assert len(silent_api_server.held) == 1, len(silent_api_server.held)


def test_an_api_server_asking_to_come_back_later_is_asked_once_more(tmp_path: Path) -> None:
    answers = iter([(429, b'{"kind":"Status","code":429}'), (200, b'{"items":[]}')])
    asked: list[str] = []

    class Throttling(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            code, body = next(answers)
            self.send_response(code)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    saved = client.Configuration.get_default_copy()
    try:
        path = tmp_path / "kubeconfig"
        path.write_text(kubeconfig_text(f"http://127.0.0.1:{server.server_address[1]}"))
        connect(str(path))
        list_crs, _ = _clients()
        assert list_crs("plant") == {}
        assert len(asked) == 2, asked
    finally:
        client.Configuration.set_default(saved)
        server.shutdown()
        server.server_close()
