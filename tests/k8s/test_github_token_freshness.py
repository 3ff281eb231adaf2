"""GitHub App tokens stay valid between two controller passes, whatever the passes' timing.

Installation tokens live an hour. The controller passes at least every TOKEN_REFRESH_SECONDS
and publishes the token it gets for the agents; a token handed out with less than that left
would expire before the next pass could replace it, and agents' fetches would fail meanwhile.
A local stand-in for the GitHub API mints hour-long tokens on a fake clock.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from stoker_k8s.controller import TOKEN_REFRESH_SECONDS
from stoker_k8s.githubapp import GitHubAppTokens

TOKEN_LIFE = 3600.0  # what GitHub gives an installation token
AGENT_MARGIN = 60.0  # an agent re-reads the published token before each fetch


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def github_api(clock: Clock) -> Iterator[str]:
    minted = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            minted[0] += 1
            expires = datetime.fromtimestamp(clock.now + TOKEN_LIFE, UTC)
            body = json.dumps(
                {"token": f"ghs_{minted[0]}", "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
            ).encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_token_handed_out_at_a_pass_outlives_the_next_pass(clock: Clock, github_api: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    tokens = GitHubAppTokens(clock=clock)
    gaps = random.Random(7)
    for step in range(200):  # passes over many token lifetimes, at uneven intervals
        clock.now += gaps.uniform(0.3, 1.0) * TOKEN_REFRESH_SECONDS
        token = tokens.token(
            namespace="plant",
            secret="app",
            app_id=1,
            installation_id=2,
            private_key=pem,
            api_base_url=github_api,
        )
        left = token.expires_at - clock.now
        assert left > TOKEN_REFRESH_SECONDS + AGENT_MARGIN, f"pass {step}: {left:.0f} s left"
