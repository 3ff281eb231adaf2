"""`stoker receiver` under gunicorn against the real API server, with hostile and misleading
deliveries: odd credentials, deep JSON and bad refs get the documented JSON 4xx (H10); only a
published release or a created tag requests a ref, and a replay is recognised by every replica
(H11)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client

from k8s.test_receiver import GLOBAL_TOKEN, annotations, make_cr
from support.kubeenv import ControlPlane, free_port, wait_until

pytestmark = pytest.mark.kube
HMAC_KEY = b"per-cr-hmac-key"


@contextlib.contextmanager
def serving(kube_env: ControlPlane, workdir: Path, name: str) -> Iterator[str]:
    """One `stoker receiver` process (one replica) with the global token: its URL."""
    token = workdir / f"{name}-token"
    token.write_text(GLOBAL_TOKEN)
    port = free_port()
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stoker_agent.cli",
            "receiver",
            "--bind",
            f"127.0.0.1:{port}",
            "--token-file",
            str(token),
        ],
        env=kube_env.subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=20, what=f"receiver {name} to listen")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def replica(kube_env: ControlPlane, tmp_path: Path) -> Iterator[str]:
    with serving(kube_env, tmp_path, "a") as url:
        yield url


def send(url: str, path: str, raw: bytes, headers: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{url}{path}",
        data=raw,
        timeout=10,
        headers={"Content-Type": "application/json", **headers},
    )


def signed(payload: Any, delivery: str, event: str) -> tuple[bytes, dict[str, str]]:
    """A GitHub delivery: body and headers, signed with the CR's own HMAC key."""
    raw = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(HMAC_KEY, raw, hashlib.sha256).hexdigest()
    return raw, {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
    }


def own_secret_cr(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> str:
    """A GatewaySync `site` with its own Secret (hmac and token keys): its webhook path."""
    data = {"hmac": HMAC_KEY, "token": b"own-token"}
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "hook"},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        },
    )
    make_cr(api, namespace, "site", secret="hook")
    return f"/webhook/{namespace}/site"


def test_H10_hostile_deliveries_get_the_documented_json_4xx_and_change_nothing(
    replica: str, kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    path = own_secret_cr(kube_api, kube_core, kube_namespace)
    raw = b'{"ref": "v1"}'
    for header in ("Authorization", "X-Gitlab-Token", "X-Hub-Signature-256"):
        value = ("Bearer t\u00f6k\u00e9n" if header == "Authorization" else "\u00fc" * 12).encode()
        answer = send(replica, path, raw, {header: value})
        assert (answer.status_code, answer.json()) == (401, {"error": "unauthorized"}), header
    token = {"Authorization": "Bearer own-token"}
    deep = send(replica, path, b"[" * 50_000 + b"]" * 50_000, token)
    assert (deep.status_code, deep.json()) == (400, {"error": "body is not JSON"})
    for ref in ("main\nX", "   ", "v1\u0000x", "--upload-pack=touch /tmp/pwned", "v" * 300_000):
        answer = send(replica, path, json.dumps({"ref": ref}).encode(), token)
        assert answer.status_code == 400, ref[:20]
        assert answer.json()["error"].startswith("the ref must")
    assert "stoker.io/requested-ref" not in annotations(kube_api, kube_namespace, "site")


def release(action: str, tag: str, **flags: bool) -> dict[str, Any]:
    return {"action": action, "release": {"tag_name": tag, **flags}}


def test_H11_editing_or_deleting_an_old_release_or_its_tag_does_not_redeploy_it(
    replica: str, kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    path = own_secret_cr(kube_api, kube_core, kube_namespace)
    raw, headers = signed(release("published", "v2.0.0"), "d-v2", "release")
    assert send(replica, path, raw, headers).json()["ref"] == "v2.0.0"
    zero = "0" * 40
    for n, (event, payload) in enumerate(
        [
            ("release", release("edited", "v1.0.0")),
            ("release", release("deleted", "v1.0.0")),
            ("release", release("unpublished", "v1.0.0")),
            ("release", release("created", "v1.0.0")),
            ("release", release("published", "v2.1.0-rc1", prerelease=True)),
            ("push", {"ref": "refs/tags/v1.0.0", "deleted": True, "after": zero}),
        ]
    ):
        raw, headers = signed(payload, f"d-old-{n}", event)
        answer = send(replica, path, raw, headers)
        assert (answer.status_code, answer.json()["message"]) == (202, "ignored"), payload
    assert annotations(kube_api, kube_namespace, "site")["stoker.io/requested-ref"] == "v2.0.0"
    raw, headers = signed({"ref": "refs/tags/v2.1.0", "created": True}, "d-tag", "push")
    assert send(replica, path, raw, headers).json()["ref"] == "v2.1.0"
    assert annotations(kube_api, kube_namespace, "site")["stoker.io/requested-ref"] == "v2.1.0"


def test_H11_a_delivery_replayed_to_another_replica_does_not_bring_back_an_old_ref(
    replica: str,
    kube_env: ControlPlane,
    kube_api: client.ApiClient,
    kube_core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    path = own_secret_cr(kube_api, kube_core, kube_namespace)
    old = signed(release("published", "v1.0.0"), "d-1", "release")
    new = signed(release("published", "v2.0.0"), "d-2", "release")
    with serving(kube_env, tmp_path, "b") as other:
        assert send(replica, path, *old).json()["ref"] == "v1.0.0"
        assert send(replica, path, *new).json()["ref"] == "v2.0.0"
        for url in (other, replica, other):  # the other replica, then each again
            again = send(url, path, *old)
            assert again.json() == {"accepted": True, "message": "duplicate delivery ignored"}
        # Both replicas at once, with a delivery neither has seen: exactly one acts.
        fresh = signed(release("published", "v3.0.0"), "d-3", "release")
        with ThreadPoolExecutor(max_workers=4) as pool:
            replies = list(
                pool.map(lambda url: send(url, path, *fresh).json(), [replica, other] * 2)
            )
    assert sorted(r.get("message", "acted") for r in replies) == [
        "acted",
        "duplicate delivery ignored",
        "duplicate delivery ignored",
        "duplicate delivery ignored",
    ]
    marks = annotations(kube_api, kube_namespace, "site")
    assert marks["stoker.io/requested-ref"] == "v3.0.0"
    assert len(marks["stoker.io/receiver-deliveries"].split()) == 3
