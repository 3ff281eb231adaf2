"""The push receiver's decisions: event formats, authenticity, replays and rate limits."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from stoker_core import receiving
from stoker_core.errors import InvalidInput
from stoker_core.receiving import (
    DELIVERIES_KEPT,
    PRUNE_ABOVE,
    REPLAY_WINDOW,
    RateLimit,
    Secrets,
    Source,
    Verb,
    authentic,
    client_address,
    delivery_mark,
    parse,
    record,
    replay_key,
    seen,
    trusted_networks,
)
from stoker_core.validation import load


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
            {"ref": "refs/tags/v2.0.0", "created": True, "deleted": False},
            {"X-GitHub-Event": "push"},
            (Source.GITHUB, Verb.SET_REF, "v2.0.0"),
        ),
        (
            {"action": "published", "release": {"tag_name": "v2.0.0"}},
            {"X-GitHub-Event": "release"},
            (Source.GITHUB, Verb.SET_REF, "v2.0.0"),
        ),
        (
            {"object_kind": "push", "ref": "refs/heads/main"},
            {"X-Gitlab-Event": "Push Hook"},
            (Source.GITLAB, Verb.REFRESH, "main"),
        ),
        (
            {"object_kind": "tag_push", "ref": "refs/tags/1.2.0", "before": "0" * 40},
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


def test_the_delivery_id_recorded_is_the_senders_when_plain_else_a_digest_of_the_body() -> None:
    uuid = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert receiving.delivery_id(b"x", {"X-GitHub-Delivery": uuid}) == uuid
    assert receiving.delivery_id(b"x", {"X-Gitlab-Event-UUID": uuid}) == uuid
    digest = receiving.delivery_id(b"x", {})
    assert digest == "sha256:" + hashlib.sha256(b"x").hexdigest()[:16]
    # a hostile header (too long, spaces, control or bidi characters) is never copied
    for hostile in ("x" * 65, "a b", "id\n", "id\u202e", "-leading"):
        assert receiving.delivery_id(b"x", {"X-GitHub-Delivery": hostile}) == digest
    assert receiving.valid_delivery(digest) == digest
    assert receiving.valid_delivery(7) == ""


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


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer t\u00f6ken"},
        {"X-Gitlab-Token": "\u00fc\u00fc\u00fc"},
        {"X-Hub-Signature-256": "sha256=\u00e9" * 8},
        {"Authorization": "Bearer \ud800"},  # a lone surrogate: not even valid UTF-8
    ],
)
def test_H10_non_ascii_credentials_are_refused_not_a_crash(headers: dict[str, str]) -> None:
    raw = body({"ref": "v1"})
    assert not authentic(raw, headers, Secrets(hmac_key="k3y", token="t0ken"))
    assert authentic(raw, {"Authorization": "Bearer t\u00f6ken"}, Secrets(token="t\u00f6ken"))


@pytest.mark.parametrize("raw", [b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 50_000 + b"1"])
def test_H10_json_nested_too_deep_is_refused_as_not_json(raw: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(raw, {}, tracked="main")
    assert caught.value.problems[0].message == "body is not JSON"


HOSTILE_REFS = ["main\nX", "   ", "v1\u0000x", "--upload-pack=touch /tmp/pwned", "v" * 300_000]


@pytest.mark.parametrize("ref", HOSTILE_REFS, ids=["newline", "blank", "nul", "option", "300k"])
@pytest.mark.parametrize(
    ("headers", "shape"),
    [
        ({}, lambda ref: {"ref": ref}),
        ({"X-GitHub-Event": "push"}, lambda ref: {"ref": f"refs/tags/{ref}", "created": True}),
        ({"X-GitHub-Event": "push"}, lambda ref: {"ref": f"refs/heads/{ref}"}),
        (
            {"X-GitHub-Event": "release"},
            lambda ref: {"action": "published", "release": {"tag_name": ref}},
        ),
        ({}, lambda ref: {"app": {"metadata": {"annotations": {"git.ref": ref}}}}),
        ({}, lambda ref: {"freight": {"commits": [{"tag": ref}]}}),
    ],
    ids=["generic", "tag", "branch", "release", "argocd", "kargo"],
)
def test_H10_a_requested_ref_passes_the_rule_spec_git_ref_passes(
    ref: str, headers: dict[str, str], shape: object
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(body(shape(ref)), headers, tracked="main")  # type: ignore[operator]
    [problem] = caught.value.problems
    assert problem.field == "ref"
    assert ref not in problem.message or ref.strip() == ""  # never echoed back
    spec = {"git": {"repo": "https://example.com/r.git", "ref": ref}}
    with pytest.raises(InvalidInput) as invalid:
        load({"apiVersion": "stoker.io/v1alpha1", "kind": "GatewaySync", "spec": spec})
    same = [f"the ref {p.message}" for p in invalid.value.problems if p.field == "spec.git.ref"]
    assert problem.message in same  # one rule, one message (a schema bound may add another)


@pytest.mark.parametrize(
    ("action", "flags", "verb"),
    [
        ("published", {}, Verb.SET_REF),
        ("released", {}, Verb.SET_REF),
        ("published", {"prerelease": True}, Verb.IGNORE),
        ("prereleased", {"prerelease": True}, Verb.IGNORE),
        ("created", {}, Verb.IGNORE),
        ("edited", {}, Verb.IGNORE),
        ("deleted", {}, Verb.IGNORE),
        ("unpublished", {}, Verb.IGNORE),
        ("", {}, Verb.IGNORE),
    ],
)
def test_H11_only_a_published_full_release_requests_its_tag(
    action: str, flags: dict[str, bool], verb: Verb
) -> None:
    payload = {"action": action, "release": {"tag_name": "v1.0.0", **flags}}
    for headers in ({"X-GitHub-Event": "release"}, {}):
        event = parse(body(payload), headers, tracked="main")
        assert (event.source, event.verb) == (Source.GITHUB, verb)


@pytest.mark.parametrize(
    ("headers", "payload", "verb"),
    [
        ({"X-GitHub-Event": "push"}, {"created": True, "deleted": False}, Verb.SET_REF),
        ({"X-GitHub-Event": "push"}, {"created": False, "deleted": True}, Verb.IGNORE),
        ({"X-GitHub-Event": "push"}, {"created": False, "deleted": False}, Verb.IGNORE),
        (
            {"X-Gitlab-Event": "Tag Push Hook"},
            {"before": "0" * 40, "after": "1" * 40},
            Verb.SET_REF,
        ),
        ({"X-Gitlab-Event": "Tag Push Hook"}, {"before": "1" * 40, "after": "0" * 40}, Verb.IGNORE),
    ],
    ids=["github-created", "github-deleted", "github-moved", "gitlab-created", "gitlab-deleted"],
)
def test_H11_only_a_created_tag_requests_itself(
    headers: dict[str, str], payload: dict[str, object], verb: Verb
) -> None:
    event = parse(body({"ref": "refs/tags/v1.0.0", **payload}), headers, tracked="main")
    assert (event.verb, event.ref) == (verb, "v1.0.0")


def test_H11_the_delivery_record_is_bounded_and_forgets_after_the_window() -> None:
    marks = [delivery_mark(f"id:{i}") for i in range(3 * DELIVERIES_KEPT)]
    recorded = ""
    for i, mark in enumerate(marks):
        recorded = record(recorded, mark, 1000.0 + i)
    assert len(recorded.split()) == DELIVERIES_KEPT
    assert len(recorded) < 2048
    assert seen(recorded, marks[-1], 1100.0)
    assert not seen(recorded, marks[0], 1100.0)  # pushed out by newer ones
    assert not seen(recorded, marks[-1], 1000.0 + 3 * DELIVERIES_KEPT + REPLAY_WINDOW)
    assert not seen("garbage @@ x@y " + "z" * 10_000, marks[0], 1000.0)


@pytest.mark.parametrize(
    ("headers", "payload", "verb"),
    [
        ({"X-GitHub-Event": "delete"}, {"ref": "v1.0.0", "ref_type": "tag"}, Verb.IGNORE),
        ({"X-GitHub-Event": "delete"}, {"ref": "main", "ref_type": "branch"}, Verb.IGNORE),
        ({"X-GitHub-Event": "create"}, {"ref": "v1.0.0", "ref_type": "tag"}, Verb.SET_REF),
        ({"X-GitHub-Event": "create"}, {"ref": "feature", "ref_type": "branch"}, Verb.IGNORE),
        ({"X-GitHub-Event": "workflow_run"}, {"ref": "v1.0.0"}, Verb.IGNORE),
        ({"X-Gitlab-Event": "Release Hook"}, {"action": "delete", "tag": "v1.0.0"}, Verb.IGNORE),
    ],
)
def test_H11_other_github_and_gitlab_events_never_read_as_a_generic_ref(
    headers: dict[str, str], payload: dict[str, str], verb: Verb
) -> None:
    event = parse(body(payload), headers, tracked="main")
    assert event.verb is verb


def test_H9_a_stranger_budget_is_checked_without_being_spent() -> None:
    limit = RateLimit(rate=1, burst=3)
    assert all(limit.ready("198.51.100.7", 0.0) for _ in range(10))  # looking costs nothing
    assert [limit.allow("198.51.100.7", 0.0) for _ in range(4)] == [True, True, True, False]
    assert not limit.ready("198.51.100.7", 0.5)
    assert limit.ready("198.51.100.7", 1.0)


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", "140.82.112.1", "203.0.113.9"),  # not a proxy of ours: header ignored
        ("10.0.0.5", "140.82.112.1", "140.82.112.1"),
        ("10.0.0.5", "140.82.112.1, 198.51.100.7", "198.51.100.7"),  # left of it: the client's
        ("10.0.0.5", "198.51.100.7, 10.0.0.9", "198.51.100.7"),  # two proxies of ours
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", "not-an-address", "10.0.0.5"),
        ("10.0.0.5", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "", "203.0.113.9"),
    ],
)
def test_H9_the_client_is_the_first_address_no_trusted_proxy_wrote(
    peer: str, forwarded: str, client: str
) -> None:
    assert client_address(peer, forwarded, trusted_networks("10.0.0.0/8")) == client


def test_a_bad_trusted_proxy_is_named() -> None:
    with pytest.raises(InvalidInput, match="ingress"):
        trusted_networks("10.0.0.0/8, ingress")
