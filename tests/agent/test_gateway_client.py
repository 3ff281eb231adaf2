"""The Ignition gateway client against the simulator: each failure has its own class and a
sentence saying what to fix; TLS with a CA bundle or an explicit insecure flag."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stoker_agent.gateway import (
    GatewayClient,
    GatewayForbidden,
    GatewayNotTheApi,
    GatewaySettings,
    GatewayStarting,
    GatewayUnauthorized,
    GatewayUnavailable,
    _items,
    _scan_status,
)
from stoker_agent.scanlocking import ScanLocks
from stoker_core.errors import Blocked
from stoker_core.outcomes import GatewayReply
from support.gitservers import make_tls_files
from support.ignition_sim import GatewaySimulator, running
from support.ignition_sim_resources import write_api_token


def client_for(url: str, token: Path, **kwargs: object) -> GatewayClient:
    return GatewayClient(
        GatewaySettings(url=url, token_file=str(token), timeout=5, **kwargs), sleep=lambda _: None
    )


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[GatewaySimulator, Path]]:
    data = tmp_path / "data"
    data.mkdir()
    token = tmp_path / "token"
    token.write_text(write_api_token(data, collection="local"))
    with running(data) as sim:
        yield sim, token


def test_scans_report_their_status(gateway: tuple[GatewaySimulator, Path]) -> None:
    sim, token = gateway
    client = client_for(sim.url, token)
    try:
        since = client.scan_status("projects").last_timestamp
        client.scan("projects")
        assert client.wait_for_scan("projects", since + 1, timeout=10).active is False
        assert client.info()["redundancyRole"] == "Independent"
        assert client.held_lock("projects") is None
        held, again = client.acquire_lock("projects", 120), client.held_lock("projects")
        assert held is not None
        assert again is not None
        assert (again.actor, again.timestamp) == (held.actor, held.timestamp)
    finally:
        client.close()


def slow_scans(
    gateway: tuple[GatewaySimulator, Path],
) -> tuple[GatewaySimulator, GatewayClient, list[float]]:
    """The simulator with 2 s scans, a client of it, and the pauses that client sleeps."""
    sim, token = gateway
    sim.scan_delay = 2.0
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    return (
        sim,
        GatewayClient(GatewaySettings(url=sim.url, token_file=str(token)), sleep=sleep),
        pauses,
    )


def test_a_long_scan_is_read_less_and_less_often(
    gateway: tuple[GatewaySimulator, Path],
) -> None:
    # At 50 gateways a scan took seconds and its status was read every 0.2 s: 28 reads a
    # sync, a third of each agent's CPU. Counted in reads, not timed.
    _, client, pauses = slow_scans(gateway)
    try:
        since = client.scan_status("projects").last_timestamp
        client.scan("projects")
        assert client.wait_for_scan("projects", since + 1, timeout=30).active is False
    finally:
        client.close()
    assert pauses[:4] == [0.05, 0.1, 0.2, 0.4]  # a quick scan is seen done at once
    assert pauses == sorted(pauses)
    assert max(pauses) <= 1.0
    assert len(pauses) <= 8  # 10 or more, read every 0.2 s


def test_a_scan_as_long_as_the_last_is_first_read_when_it_is_likely_done(
    gateway: tuple[GatewaySimulator, Path],
) -> None:
    # At 50 gateways every scan took seconds, and each was read ten times a sync (0.05 s, 0.1,
    # 0.2, 0.4, 0.8, then every second). The answer to the scan request says how long the last
    # one took: the first read waits for most of that. Counted in reads, not timed.
    sim, client, pauses = slow_scans(gateway)
    try:
        since = client.scan_status("projects").last_timestamp
        client.scan("projects")
        client.wait_for_scan("projects", since + 1, timeout=30)
        since, asked = client.scan_status("projects").last_timestamp, time.monotonic()
        before = len(sim.requests)
        like = client.scan("projects")
        pauses.clear()
        done = client.wait_for_scan("projects", since + 1, timeout=30, like=like, asked_at=asked)
    finally:
        client.close()
    assert done.active is False
    assert done.last_timestamp > since
    assert like.last_duration >= 2000
    assert 1.0 < pauses[0] <= 1.5  # three quarters of the last scan's 2 s, less the time asking
    reads = [r for r in sim.requests[before:] if r.method == "GET" and "scan/" in r.path]
    assert len(reads) <= 5  # 7 when read from the first 0.05 s


def test_a_held_scan_lock_is_blocked_not_an_error(
    gateway: tuple[GatewaySimulator, Path], tmp_path: Path
) -> None:
    sim, token = gateway
    first, second = client_for(sim.url, token), client_for(sim.url, token)
    try:
        assert first.acquire_lock("config", 30) is not None
        with pytest.raises(Blocked, match="scan lock is held by 'stoker', but not by this"):
            ScanLocks(second, str(tmp_path), sleep=lambda _: None).take("config")
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    ("setup", "error", "reply", "words"),
    [
        ("wrong-token", GatewayUnauthorized, GatewayReply.UNAUTHORIZED, "not accepted (401)"),
        ("secure-channel", GatewayForbidden, GatewayReply.FORBIDDEN, "lacks permission (403)"),
        ("starting", GatewayStarting, GatewayReply.STARTING, "starting (503)"),
        ("stopped", GatewayUnavailable, GatewayReply.TRANSPORT_ERROR, "unreachable"),
    ],
)
def test_each_failure_names_its_cause(
    gateway: tuple[GatewaySimulator, Path],
    tmp_path: Path,
    setup: str,
    error: type[Exception],
    reply: GatewayReply,
    words: str,
) -> None:
    sim, token = gateway
    url = sim.url
    if setup == "wrong-token":
        token.write_text("stoker:wrong")
    elif setup == "secure-channel":
        token.write_text(
            write_api_token(
                sim.data_dir, "strict", collection="local", secure_channel_required=True
            )
        )
        sim.scan("config")
    elif setup == "starting":
        sim.set_starting()
    else:
        sim.stop()
    client = client_for(url, token)
    try:
        with pytest.raises(error, match=re.escape(words)) as info:
            client.info()
        assert info.value.reply is reply  # type: ignore[attr-defined]
    finally:
        client.close()


def test_https_needs_the_ca_bundle_or_an_explicit_insecure_flag(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    data = tmp_path / "data"
    data.mkdir()
    token = tmp_path / "token"
    token.write_text(write_api_token(data, collection="local"))
    with running(data, tls=(tls.cert_file, tls.key_file)) as sim:
        assert sim.url.startswith("https://")
        plain = client_for(sim.url, token)
        with pytest.raises(GatewayUnavailable, match="TLS failed"):
            plain.info()
        plain.close()
        trusted = client_for(sim.url, token, ca_file=str(tls.ca_file))
        assert trusted.info()["name"]
        trusted.close()
        insecure = client_for(sim.url, token, insecure=True)
        assert insecure.info()["name"]
        insecure.close()


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda c: c.ping(), "/StatusPing"),
        (lambda c: c.info(), "/data/api/v1/gateway-info"),
        (lambda c: c.designers(), "/data/api/v1/designers"),
        (lambda c: c.projects(), "/data/api/v1/projects"),
        (lambda c: c.scan("projects"), "/data/api/v1/scan/projects"),
        (lambda c: c.scan_status("config"), "/data/api/v1/scan/config"),
    ],
)
def test_a_reply_that_is_not_json_is_a_gateway_error_quoting_it(
    gateway: tuple[GatewaySimulator, Path], call: Callable[[GatewayClient], object], path: str
) -> None:
    sim, token = gateway
    sim.fail(path, "garbage", times=-1)  # a login page from a proxy in front of the gateway
    client = client_for(sim.url, token)
    try:
        with pytest.raises(GatewayNotTheApi, match="the answer is not JSON") as info:
            call(client)
        assert "Please log in" in str(info.value)
        assert sim.url in str(info.value)
        assert info.value.reply is GatewayReply.NOT_THE_API
    finally:
        client.close()


def test_replies_of_the_wrong_shape_are_not_the_apis() -> None:
    for body in (7, "text", None, {"items": 3}):
        with pytest.raises(GatewayNotTheApi, match="expected a list"):
            _items(body, "listing projects", "http://gw")
    assert _items({"items": [{"name": "a"}, "b"]}, "", "") == [{"name": "a"}]
    assert _items([{"name": "a"}], "", "") == [{"name": "a"}]
    with pytest.raises(GatewayNotTheApi, match="expected a scan status"):
        _scan_status({"scanActive": False, "lastScanTimestamp": "yesterday"}, "")
    with pytest.raises(GatewayNotTheApi, match="expected a scan status"):
        _scan_status(["not", "an", "object"], "")
