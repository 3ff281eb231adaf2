"""A loopback HTTPS admission webhook server for tests (standard library only)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from support.kubecerts import CertificateAuthority
from support.kubeenv import free_port

# Takes the AdmissionReview ``request`` and returns a JSONPatch list (allowed with that patch),
# ``None`` (allowed, no patch), a full ``response`` dict (``uid`` is filled in) or an ``int``:
# answer with that HTTP status and a JSON error body instead of an AdmissionReview.
AdmissionHandler = Callable[[dict[str, Any]], list[dict[str, Any]] | dict[str, Any] | int | None]


@dataclass
class WebhookServer:
    """A running loopback webhook server: its URL, CA bundle and the reviews it received."""

    url: str
    ca_bundle: str
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def client_config(self, path: str = "/mutate") -> dict[str, str]:
        """A webhook ``clientConfig`` pointing at ``path`` on this server."""
        return {"url": self.url + path, "caBundle": self.ca_bundle}


def admission_response(request: dict[str, Any], result: Any) -> dict[str, Any]:
    """Wrap a handler result into an ``admission.k8s.io/v1`` AdmissionReview."""
    if isinstance(result, dict):
        response = {"allowed": True, **result}
    else:
        response = {"allowed": True}
        if result:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(result).encode()).decode()
    response["uid"] = request["uid"]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


@contextmanager
def serve_webhook(
    handler: AdmissionHandler, ca: CertificateAuthority, workdir: Path
) -> Iterator[WebhookServer]:
    """Serve ``handler`` over HTTPS on 127.0.0.1 (certificate from ``ca``) in a thread."""
    reviews: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            review = json.loads(self.rfile.read(length))
            reviews.append(review)
            result = handler(review["request"])
            if isinstance(result, int):
                status, body = result, json.dumps({"error": "refused by the test"})
            else:
                status, body = 200, json.dumps(admission_response(review["request"], result))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ctx = ca.server_context(ca.issue_server("127.0.0.1", "localhost"), workdir)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield WebhookServer(f"https://127.0.0.1:{port}", ca.ca_bundle, reviews)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def pointed_at_nobody(
    configuration: dict[str, Any], namespace: str, path: str, name: str
) -> dict[str, Any]:
    """`configuration` (a webhook configuration, as the chart renders it) renamed `name`, its
    first webhook called for `namespace` only at `path` on a loopback port nobody listens on."""
    webhook = configuration["webhooks"][0]
    webhook["clientConfig"] = {
        "url": f"https://127.0.0.1:{free_port()}{path}",
        "caBundle": CertificateAuthority("nobody").ca_bundle,
    }
    webhook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    configuration["metadata"] = {"name": name}
    return configuration
