"""The push receiver's decisions: event formats, authenticity, replays and rate limits."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from stoker_core.errors import InvalidInput
from stoker_core.receiving import (
    PRUNE_ABOVE,
    RateLimit,
    Secrets,
    Source,
    Verb,
    authentic,
    parse,
    replay_key,
)


def body(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("payload", "headers", "expected"),
    [
        (
            {"ref": "refs/heads/main"},
            {"X-GitHub-Event": "push"},
            (Source.GITHUB, Verb.REFRESH, "main"),
        ),
        (
            {"ref": "refs/heads/feature"},
            {"X-GitHub-Event": "push"},
            (Source.GITHUB, Verb.IGNORE, "feature"),
        ),
        (
            {"ref": "refs/tags/v2.0.0"},
            {"X-GitHub-Event": "push"},
            (Source.GITHUB, Verb.SET_REF, "v2.0.0"),
        ),
        (
            {"release": {"tag_name": "v2.0.0"}},
            {"X-GitHub-Event": "release"},
            (Source.GITHUB, Verb.SET_REF, "v2.0.0"),
        ),
        (
            {"object_kind": "push", "ref": "refs/heads/main"},
            {"X-Gitlab-Event": "Push Hook"},
            (Source.GITLAB, Verb.REFRESH, "main"),
        ),
        (
            {"object_kind": "tag_push", "ref": "refs/tags/1.2.0"},
            {"X-Gitlab-Event": "Tag Push Hook"},
            (Source.GITLAB, Verb.SET_REF, "1.2.0"),
        ),
        (
            {"app": {"metadata": {"annotations": {"git.ref": "v3"}}}},
            {},
            (Source.ARGOCD, Verb.SET_REF, "v3"),
        ),
        ({"freight": {"commits": [{"tag": "v4"}]}}, {}, (Source.KARGO, Verb.SET_REF, "v4")),
        ({"ref": "v5"}, {}, (Source.GENERIC, Verb.SET_REF, "v5")),
        ({"zen": "hi"}, {"X-GitHub-Event": "ping"}, (Source.GITHUB, Verb.IGNORE, "")),
    ],
)
def test_event_formats(
    payload: object, headers: dict[str, str], expected: tuple[Source, Verb, str]
) -> None:
    event = parse(body(payload), headers, tracked="main")
    assert (event.source, event.verb, event.ref) == expected


def test_a_push_event_is_recognised_as_a_push_not_a_generic_ref_d9() -> None:
    event = parse(
        body({"ref": "refs/heads/main"}), {"X-GitHub-Event": "push"}, tracked="refs/heads/main"
    )
    assert event.verb is Verb.REFRESH


@pytest.mark.parametrize("raw", [b"not json", b"[]", body({"nothing": 1})])
def test_bodies_without_a_ref_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse(raw, {}, tracked="main")


def test_hmac_and_tokens_are_checked_and_nothing_is_open_by_default_b18() -> None:
    raw = body({"ref": "v1"})
    signature = "sha256=" + hmac.new(b"k3y", raw, hashlib.sha256).hexdigest()
    assert authentic(raw, {"X-Hub-Signature-256": signature}, Secrets(hmac_key="k3y"))
    assert not authentic(raw + b" ", {"X-Hub-Signature-256": signature}, Secrets(hmac_key="k3y"))
    assert authentic(raw, {"Authorization": "Bearer t0ken"}, Secrets(token="t0ken"))
    assert authentic(raw, {"X-Gitlab-Token": "t0ken"}, Secrets(token="t0ken"))
    assert not authentic(raw, {"Authorization": "Bearer wrong"}, Secrets(token="t0ken"))
    assert authentic(raw, {"Authorization": "Bearer t0ken"}, Secrets(hmac_key="k3y", token="t0ken"))
    assert not authentic(raw, {}, Secrets())


def test_replays_are_identified_by_delivery_id_else_body() -> None:
    assert replay_key(b"x", {"X-GitHub-Delivery": "abc"}) == replay_key(
        b"y", {"X-GitHub-Delivery": "abc"}
    )
    assert replay_key(b"x", {}) != replay_key(b"y", {})


def test_rate_limit_allows_bursts_then_refills() -> None:
    limit = RateLimit(rate=10)
    assert all(limit.allow("ns/cr", 100.0) for _ in range(10))
    assert not limit.allow("ns/cr", 100.0)
    assert limit.allow("other/cr", 100.0)
    assert limit.allow("ns/cr", 100.2)


def test_rate_limit_memory_stays_bounded_under_made_up_names() -> None:
    limit = RateLimit(rate=10)
    flooded = 0
    for i in range(20_000):  # 1,000 requests a second, each for a new made-up name...
        now = i / 1_000
        assert limit.allow(f"ns/made-up-{i}", now)
        flooded += limit.allow("ns/site", now)  # ...while one real GatewaySync is flooded
    assert len(limit._buckets) <= 2 * PRUNE_ABOVE
    assert flooded <= 10 + 10 * 20  # its burst, then 10 a second: still limited throughout


def test_rate_limit_sweeps_stay_cheap_when_nothing_can_be_dropped() -> None:
    limit = RateLimit(rate=10)
    for i in range(50_000):  # all within a millisecond: no bucket refills, none can go
        limit.allow(f"ns/made-up-{i}", i / 50_000_000)
    assert limit._sweep_at > len(limit._buckets) // 2  # swept a handful of times, not 49,000
