"""`stoker receiver` under gunicorn against the real API server: per-CR secrets, push events,
requested refs, replays, size and rate limits."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client

from k8s.test_crd import MINIMAL
from stoker_core.vocabulary import Metric
from support.kubeenv import ControlPlane, free_port, wait_until

pytestmark = pytest.mark.kube
GLOBAL_TOKEN = "global-token-123"


@pytest.fixture
def receiver_url(kube_env: ControlPlane, tmp_path: Path) -> Iterator[str]:
    token = tmp_path / "token"
    token.write_text(GLOBAL_TOKEN)
    port = free_port()
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
            # As the chart passes it when the global Secret holds no `hmac` key: that method is
            # off, the receiver still starts.
            "--hmac-secret-file",
            str(tmp_path / "absent-hmac"),
            "--threads",
            "4",
        ],
        env=kube_env.subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=20, what="stoker receiver to listen")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def make_cr(api: client.ApiClient, namespace: str, name: str, secret: str | None = None) -> None:
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = name
    if secret:
        body["spec"]["receiver"] = {"secretName": secret}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body
    )


def annotations(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    cr = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", name
    )
    return cr["metadata"].get("annotations") or {}


def post(url: str, path: str, payload: Any, **headers: str) -> requests.Response:
    return requests.post(
        f"{url}{path}",
        data=json.dumps(payload),
        timeout=10,
        headers={"Content-Type": "application/json", **headers},
    )


def test_a_release_sets_the_requested_ref_once(
    receiver_url: str, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    make_cr(kube_api, kube_namespace, "site")
    path = f"/webhook/{kube_namespace}/site"
    auth = {"Authorization": f"Bearer {GLOBAL_TOKEN}"}
    release = {"action": "published", "release": {"tag_name": "v2.0.0"}}
    first = post(receiver_url, path, release, **auth, **{"X-GitHub-Event": "release"})
    assert (first.status_code, first.json()["ref"]) == (202, "v2.0.0")
    marks = annotations(kube_api, kube_namespace, "site")
    assert marks["stoker.io/requested-ref"] == "v2.0.0"
    assert marks["stoker.io/requested-by"] == "github"
    again = post(receiver_url, path, {"ref": "v2.0.0"}, **auth)
    assert again.json()["message"] == "ref already set"  # R8
    assert (
        annotations(kube_api, kube_namespace, "site")["stoker.io/requested-at"]
        == marks["stoker.io/requested-at"]
    )


def test_the_receiver_marks_who_sent_a_push_and_its_delivery_id_for_the_history(
    receiver_url: str, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    make_cr(kube_api, kube_namespace, "marked")
    path = f"/webhook/{kube_namespace}/marked"
    auth = {"Authorization": f"Bearer {GLOBAL_TOKEN}"}
    push = {"ref": "refs/heads/main", "after": "b" * 40}
    uuid = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    sent = post(receiver_url, path, push, **auth, **{"X-GitHub-Event": "push",
                "X-GitHub-Delivery": uuid})  # fmt: skip
    assert (sent.status_code, sent.json()["message"]) == (202, "refresh requested")
    marks = annotations(kube_api, kube_namespace, "marked")
    assert marks["stoker.io/refresh-requested-by"] == "github"
    assert marks["stoker.io/refresh-delivery"] == uuid
    body = {"ref": "v7.0.0"}  # no delivery header: the body's digest names it
    assert post(receiver_url, path, body, **auth).status_code == 202
    marks = annotations(kube_api, kube_namespace, "marked")
    digest = hashlib.sha256(json.dumps(body).encode()).hexdigest()[:16]
    assert marks["stoker.io/requested-delivery"] == f"sha256:{digest}"


def test_e2e_receiver_01_to_05_each_tool_s_payload_requests_its_ref_and_junk_is_a_400(
    receiver_url: str, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    """The original's receiver cases, one GatewaySync each (ours needs a secret: the token)."""
    auth = {"Authorization": f"Bearer {GLOBAL_TOKEN}"}
    cases = [
        ("github", {"action": "published", "release": {"tag_name": "v2.0.0"}},
         {"X-GitHub-Event": "release"}, "v2.0.0"),  # 01-github-release
        ("argocd", {"app": {"metadata": {"annotations": {"git.ref": "v3.0.0"}}}}, {},
         "v3.0.0"),  # 02-argocd-notification
        ("kargo", {"freight": {"commits": [{"tag": "v4.0.0"}]}}, {}, "v4.0.0"),  # 03
        ("generic", {"ref": "v5.0.0"}, {}, "v5.0.0"),  # 04-generic-payload
    ]  # fmt: skip
    for source, payload, headers, ref in cases:
        make_cr(kube_api, kube_namespace, f"wr-{source}")
        sent = post(receiver_url, f"/webhook/{kube_namespace}/wr-{source}", payload, **auth,
                    **headers)  # fmt: skip
        assert sent.status_code == 202, (source, sent.text)
        marks = annotations(kube_api, kube_namespace, f"wr-{source}")
        assert (marks["stoker.io/requested-ref"], marks["stoker.io/requested-by"]) == (ref, source)
    make_cr(kube_api, kube_namespace, "wr-invalid")
    junk = post(receiver_url, f"/webhook/{kube_namespace}/wr-invalid", {"foo": "bar"}, **auth)
    assert junk.status_code == 400  # 05-invalid-payload
    assert "stoker.io/requested-ref" not in annotations(kube_api, kube_namespace, "wr-invalid")


def test_r8_posting_the_ref_already_requested_answers_202_and_keeps_requested_at(
    receiver_url: str, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    make_cr(kube_api, kube_namespace, "site")
    path = f"/webhook/{kube_namespace}/site"
    auth = {"Authorization": f"Bearer {GLOBAL_TOKEN}"}
    assert post(receiver_url, path, {"ref": "v2.0.0"}, **auth).status_code == 202
    first = annotations(kube_api, kube_namespace, "site")
    # requested-at has whole seconds: the repeat comes in a later second, so a new stamp shows.
    stamp = time.mktime(time.strptime(first["stoker.io/requested-at"], "%Y-%m-%dT%H:%M:%SZ"))
    wait_until(lambda: time.mktime(time.gmtime()) >= stamp + 1, timeout=5, what="the next second")
    release = {"action": "published", "release": {"tag_name": "v2.0.0"}}  # another delivery
    again = post(receiver_url, path, release, **auth, **{"X-GitHub-Event": "release"})
    assert (again.status_code, again.json()["message"]) == (202, "ref already set")
    now = annotations(kube_api, kube_namespace, "site")
    for key in ("stoker.io/requested-ref", "stoker.io/requested-at", "stoker.io/requested-by"):
        assert now[key] == first[key]


def test_metrics_count_requests_by_source_and_code(
    receiver_url: str, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    make_cr(kube_api, kube_namespace, "counted")
    path = f"/webhook/{kube_namespace}/counted"
    good = {"Authorization": f"Bearer {GLOBAL_TOKEN}"}
    assert post(receiver_url, path, {"ref": "v1.0.0"}, **good).status_code == 202
    assert post(receiver_url, path, {"ref": "v1.0.1"}, Authorization="Bearer no").status_code == 401
    scraped = requests.get(f"{receiver_url}/metrics", timeout=5)
    assert scraped.status_code == 200
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in scraped.text.splitlines()
        if line.startswith(Metric.RECEIVER_REQUESTS_TOTAL + "{")
    }
    by_status: dict[str, float] = {}
    for labels, value in samples.items():
        status = labels.split('code="')[1].split('"')[0]
        by_status[status] = by_status.get(status, 0) + value
    assert by_status.get("202", 0) >= 1
    assert by_status.get("401", 0) >= 1
    assert GLOBAL_TOKEN not in scraped.text


def test_pushes_refresh_the_tracked_branch_and_ignore_others(
    receiver_url: str, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    make_cr(kube_api, kube_namespace, "site")
    path = f"/webhook/{kube_namespace}/site"
    auth = {"Authorization": f"Bearer {GLOBAL_TOKEN}", "X-GitHub-Event": "push"}
    other = post(receiver_url, path, {"ref": "refs/heads/feature", "after": "1"}, **auth)
    assert other.json()["message"] == "ignored"
    assert "stoker.io/refresh-requested-at" not in annotations(kube_api, kube_namespace, "site")
    tracked = post(receiver_url, path, {"ref": "refs/heads/main", "after": "2"}, **auth)
    assert tracked.json()["message"] == "refresh requested"
    assert "stoker.io/refresh-requested-at" in annotations(kube_api, kube_namespace, "site")


def test_a_cr_with_its_own_secret_is_not_opened_by_the_global_one(
    receiver_url: str, kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str
) -> None:
    kube_core.create_namespaced_secret(
        kube_namespace,
        {"metadata": {"name": "hook"}, "data": {"hmac": base64.b64encode(b"s3cret").decode()}},
    )
    make_cr(kube_api, kube_namespace, "site", secret="hook")
    path = f"/webhook/{kube_namespace}/site"
    payload = {"ref": "v3"}
    assert (
        post(receiver_url, path, payload, Authorization=f"Bearer {GLOBAL_TOKEN}").status_code == 401
    )
    raw = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    ok = requests.post(
        f"{receiver_url}{path}",
        data=raw,
        timeout=10,
        headers={"X-Hub-Signature-256": signature, "X-GitHub-Delivery": "d-1"},
    )
    assert ok.status_code == 202
    replay = requests.post(
        f"{receiver_url}{path}",
        data=raw,
        timeout=10,
        headers={"X-Hub-Signature-256": signature, "X-GitHub-Delivery": "d-1"},
    )
    assert replay.json()["message"] == "duplicate delivery ignored"
    forged = requests.post(  # another body under the same signature
        f"{receiver_url}{path}",
        data=json.dumps({"ref": "v4"}).encode(),
        timeout=10,
        headers={"X-Hub-Signature-256": signature, "X-GitHub-Delivery": "d-2"},
    )
    assert forged.status_code == 401
    stored = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        "stoker.io", "v1alpha1", kube_namespace, "gatewaysyncs", "site"
    )
    assert stored["metadata"]["annotations"]["stoker.io/requested-ref"] == "v3"


def test_hostile_requests_are_refused(
    receiver_url: str, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    make_cr(kube_api, kube_namespace, "site")
    path = f"/webhook/{kube_namespace}/site"
    auth = {"Authorization": f"Bearer {GLOBAL_TOKEN}"}
    assert (
        post(receiver_url, f"/webhook/{kube_namespace}/nope", {"ref": "x"}, **auth).status_code
        == 404
    )
    assert post(receiver_url, f"/webhook/{kube_namespace}/nope", {"ref": "x"}).status_code == 401
    assert post(receiver_url, path, {"nothing": 1}, **auth).status_code == 400
    big = requests.post(
        f"{receiver_url}{path}", data=b"x" * (1024 * 1024 + 1), headers=auth, timeout=10
    )
    assert big.status_code == 413
    with ThreadPoolExecutor(max_workers=8) as pool:  # a burst, whatever the machine's speed
        codes = list(
            pool.map(
                lambda i: post(receiver_url, path, {"ref": f"v{i}"}, **auth).status_code, range(60)
            )
        )
    assert 429 in codes
