"""Forged requests against `stoker receiver` (H9): a flood is limited per client address before
any authentication work, and signed deliveries keep a budget of their own that the flood never
spends; behind a trusted proxy the client is read from X-Forwarded-For, from anyone else never."""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client

from k8s.test_crd import MINIMAL
from k8s.test_slow_clients import receiving, signed_push
from stoker_core.receiving import STRANGER_BURST, STRANGER_RATE
from support.kubeenv import ControlPlane

pytestmark = pytest.mark.kube

FLOODERS = 8  # client threads sending forgeries
SIGNED = 13  # GitHub deliveries sent during the flood, ~7 a second (under 10 per GatewaySync)


class From(requests.adapters.HTTPAdapter):
    """Connections from one local address (127.0.0.0/8 is all loopback on Linux)."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(source: str) -> requests.Session:
    session = requests.Session()
    session.mount("https://", From(source))
    return session


def make_site(api: client.ApiClient, namespace: str) -> str:
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["name"] = "site"
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "stoker.io", "v1alpha1", namespace, "gatewaysyncs", body
    )
    return f"/webhook/{namespace}/site"


def flood_while(
    forge: Callable[[requests.Session, int], requests.Response],
    source: str,
    signed: Callable[[int], requests.Response],
) -> tuple[Counter[int], list[int], float]:
    """Forge from FLOODERS threads while SIGNED deliveries go out; (forged answers, signed
    answers, seconds the flood lasted)."""
    answers: Counter[int] = Counter()
    lock, stop = threading.Lock(), threading.Event()

    def flood(worker: int) -> None:
        session, n = session_from(source), 0
        while not stop.is_set():
            code = forge(session, worker * 100_000 + n).status_code
            n += 1
            with lock:
                answers[code] += 1

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(FLOODERS)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the flood has spent whatever budget it can
    codes = []
    for i in range(SIGNED):
        codes.append(signed(i).status_code)
        time.sleep(0.15)
    stop.set()
    for thread in threads:
        thread.join()
    return answers, codes, time.monotonic() - start


def assert_limited(forged: Counter[int], seconds: float, addresses: int = 1) -> None:
    """The flood was answered 401 (authentication tried) only within its per-address budget,
    429 otherwise, and never anything else."""
    assert set(forged) <= {401, 429}, forged
    assert forged[429] > forged[401]
    assert forged[401] <= addresses * (STRANGER_BURST + STRANGER_RATE * seconds) + FLOODERS


def test_H9_a_forged_flood_does_not_spend_the_budget_of_signed_deliveries(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    path = make_site(kube_api, kube_namespace)
    with receiving(kube_env.subprocess_env(), tmp_path) as (url, ca):
        forged, signed, seconds = flood_while(
            lambda s, n: signed_push(url, ca, path, f"forged-{n}", key=b"guess", session=s),
            "127.0.0.2",
            lambda i: signed_push(url, ca, path, f"github-{i}"),
        )
    assert signed == [202] * SIGNED
    assert_limited(forged, seconds)


def test_H9_behind_a_trusted_proxy_the_forwarded_client_is_limited(
    kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str, tmp_path: Path
) -> None:
    path = make_site(kube_api, kube_namespace)
    github = {"X-Forwarded-For": "140.82.112.1"}
    # The attacker writes GitHub's address first; the proxy appends the one it saw.
    spoofed = {"X-Forwarded-For": "140.82.112.1, 198.51.100.7"}
    with receiving(
        kube_env.subprocess_env(), tmp_path, "--trusted-proxies", "127.0.0.1/32, ::1"
    ) as (url, ca):
        forged, signed, seconds = flood_while(
            lambda s, n: signed_push(url, ca, path, f"f-{n}", b"guess", s, spoofed),
            "127.0.0.1",
            lambda i: signed_push(url, ca, path, f"github-{i}", extra=github),
        )
        assert signed == [202] * SIGNED
        assert_limited(forged, seconds)
        # From a peer that is no proxy of ours, X-Forwarded-For is not believed at all: a new
        # made-up address per request still counts as that one peer.
        untrusted, _, seconds = flood_while(
            lambda s, n: signed_push(
                url, ca, path, f"u-{n}", b"guess", s, {"X-Forwarded-For": f"10.9.{n % 250}.1"}
            ),
            "127.0.0.3",
            lambda i: signed_push(url, ca, path, f"github-again-{i}", extra=github),
        )
        assert_limited(untrusted, seconds)
