"""Slow and idle clients against `stoker webhook` and `stoker receiver` under gunicorn with TLS
(H8): connections that send nothing, or trickle a head or a body, at five times the server's
request threads leave /healthz, pod reviews and signed deliveries answering; each slow
connection is ended by its deadline; a body declared too large is refused before it is sent."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kubernetes import client

from k8s.test_crd import MINIMAL
from k8s.test_webhook import serving
from support.kubecerts import CertificateAuthority
from support.kubeenv import ControlPlane, free_port, wait_until
from support.slowclients import KINDS, SlowClients

pytestmark = pytest.mark.kube

LIVENESS = 5.0  # seconds: answers take milliseconds; the old servers stalled 30 s and more
WEBHOOK_CAPACITY = 4  # `serving` runs 1 worker; 4 request threads is the default
RECEIVER_THREADS = 4
HMAC_KEY = b"slow-clients-key"


@contextlib.contextmanager
def receiving(env: dict[str, str], tmp_path: Path, *extra: str) -> Iterator[tuple[str, Path]]:
    """`stoker receiver` over TLS with a global HMAC key (and `extra` flags): URL and CA file."""
    ca = CertificateAuthority("stoker-receiver-ca")
    cert, key = ca.issue_server("127.0.0.1").write(tmp_path, "receiver")
    ca_file = tmp_path / "receiver-ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    (tmp_path / "hmac").write_bytes(HMAC_KEY)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "stoker_agent.cli", "receiver",
            "--bind", f"127.0.0.1:{port}", "--cert-file", str(cert), "--key-file", str(key),
            "--hmac-secret-file", str(tmp_path / "hmac"), "--threads", str(RECEIVER_THREADS),
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthz", verify=str(ca_file), timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=20, what="stoker receiver to listen")
        yield url, ca_file
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def signed_push(
    url: str,
    ca: Path,
    path: str,
    delivery: str,
    key: bytes = HMAC_KEY,
    session: requests.Session | None = None,
    extra: dict[str, str] | None = None,
) -> requests.Response:
    """A GitHub push to the tracked branch, signed with `key` (by default the global key)."""
    body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()
    signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature,
        **(extra or {}),
    }
    send = (session or requests).post
    return send(f"{url}{path}", data=body, headers=headers, verify=str(ca), timeout=10)


def pod_review(namespace: str) -> dict[str, object]:
    pod = {"metadata": {"name": "gw-0"}, "spec": {"containers": [{"name": "gateway"}]}}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "namespace": namespace, "operation": "CREATE", "object": pod},
    }


def answer_to_head(url: str, ca: Path, head: str) -> bytes:
    """Send only a request head over TLS and read the first bytes of the answer."""
    port = int(url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=LIVENESS) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(head.encode())
        return sock.recv(200)


@pytest.fixture(scope="module")
def webhook(
    kube_env: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`stoker webhook` (1 worker) over TLS, shared by this module: its URL and CA file."""
    tmp_path = tmp_path_factory.mktemp("webhook")
    with serving(kube_env.subprocess_env(), tmp_path) as (url, _):
        yield url, tmp_path / "ca.pem"


def test_H8_idle_and_trickling_connections_do_not_block_reviews(
    webhook: tuple[str, Path], kube_namespace: str
) -> None:
    url, ca = webhook
    port = int(url.rsplit(":", 1)[1])
    count = 5 * WEBHOOK_CAPACITY
    with SlowClients("127.0.0.1", port, ca=ca, path="/mutate-v1-pod", count=count) as slow:
        time.sleep(1)  # every slow connection has been accepted and has sent what it sends
        for _ in range(3):  # liveness, again and again while they keep trickling
            health = requests.get(f"{url}/healthz", verify=str(ca), timeout=LIVENESS)
            assert health.status_code == 200
            review = requests.post(
                f"{url}/mutate-v1-pod",
                json=pod_review(kube_namespace),
                verify=str(ca),
                timeout=LIVENESS,
            )
            assert review.status_code == 200, review.text
            assert review.json()["response"]["uid"] == "u-1"
            time.sleep(1)
        # Their deadlines end them (header 10 s, the body 20 s after its head).
        wait_until(lambda: slow.ended >= len(KINDS) * count, timeout=40, what="deadlines")


def test_H8_a_review_declared_too_large_is_refused_before_its_body(
    webhook: tuple[str, Path],
) -> None:
    url, ca = webhook
    head = "POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nContent-Length: 4194305\r\n\r\n"
    assert answer_to_head(url, ca, head).startswith(b"HTTP/1.1 413 ")


@pytest.fixture(scope="module")
def receiver(
    kube_env: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`stoker receiver` over TLS, shared by this module: its URL and CA file."""
    with receiving(kube_env.subprocess_env(), tmp_path_factory.mktemp("receiver")) as server:
        yield server


def test_H8_slow_clients_do_not_block_signed_deliveries(
    receiver: tuple[str, Path], kube_api: client.ApiClient, kube_namespace: str
) -> None:
    url, ca = receiver
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = "site"
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", body
    )
    path = f"/webhook/{kube_namespace}/site"
    port = int(url.rsplit(":", 1)[1])
    with SlowClients("127.0.0.1", port, ca=ca, path=path, count=5 * RECEIVER_THREADS):
        time.sleep(1)
        for attempt in range(3):
            health = requests.get(f"{url}/healthz", verify=str(ca), timeout=LIVENESS)
            assert health.status_code == 200
            delivery = signed_push(url, ca, path, f"slow-{attempt}")
            assert delivery.status_code == 202, delivery.text
            time.sleep(1)


def test_H8_a_delivery_declared_too_large_is_refused_before_its_body(
    receiver: tuple[str, Path],
) -> None:
    url, ca = receiver
    head = "POST /webhook/plant/site HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n"
    assert answer_to_head(url, ca, head).startswith(b"HTTP/1.1 413 ")
    chunked = "POST /webhook/plant/site HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    refused = answer_to_head(url, ca, chunked + "100001\r\n")  # one chunk over 1 MiB
    assert refused.startswith(b"HTTP/1.1 413 ")
