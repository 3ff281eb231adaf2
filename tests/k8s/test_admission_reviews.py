"""The admission functions on their own: malformed reviews, spec-only validation, errors."""

from __future__ import annotations

import base64
import copy
import io
import json
from typing import Any

from k8s.test_crd import MINIMAL
from stoker_core.validation import load
from stoker_k8s.admission import make_app, review_gatewaysync, review_pod


def call(app: Any, path: str, body: bytes) -> tuple[str, Any]:
    seen: dict[str, str] = {}

    def start(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    chunks = app(
        {
            "PATH_INFO": path,
            "REQUEST_METHOD": "POST",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        },
        start,
    )
    return seen["status"], json.loads(b"".join(chunks))


def test_malformed_reviews_get_400_not_a_crash() -> None:
    app = make_app(lambda ns: {})
    for body in (b"not json", b"[]", b'{"kind": "AdmissionReview"}'):
        status, reply = call(app, "/mutate-v1-pod", body)
        assert status.startswith("400")
        assert "bad AdmissionReview" in reply["error"]
    assert call(app, "/nope", b"{}")[0].startswith("404")


def test_updates_that_keep_the_spec_are_not_validated() -> None:
    broken = copy.deepcopy(MINIMAL)
    broken["spec"]["sync"]["profiles"] = {}
    review = {
        "request": {"uid": "u1", "operation": "UPDATE", "object": broken, "oldObject": broken}
    }
    assert review_gatewaysync(review)["response"]["allowed"] is True
    review["request"]["operation"] = "CREATE"
    reply = review_gatewaysync(review)["response"]
    assert reply["allowed"] is False
    assert reply["status"]["code"] == 422
    assert "spec.sync.profiles" in reply["status"]["message"]


def test_H12_a_failing_cr_listing_is_a_503_so_the_failure_policy_decides() -> None:
    def broken(namespace: str) -> Any:
        raise RuntimeError("connection refused\nand a long trace")

    pod = {"metadata": {"annotations": {"stoker.io/inject": "true"}}, "spec": {}}
    status, reply = call(make_app(broken), "/mutate-v1-pod", review_of(pod))
    assert status.startswith("503")  # not a denial: that would refuse the pod under Ignore too
    assert reply == {"error": "listing GatewaySyncs in p: RuntimeError: connection refused"}


def test_patches_are_base64_json_patch() -> None:
    pod = {
        "metadata": {"annotations": {"stoker.io/inject": "true"}},
        "spec": {"containers": [], "volumes": [{"name": "data", "emptyDir": {}}]},
    }
    reply = review_pod(
        {"request": {"uid": "u", "namespace": "p", "object": pod}},
        lambda ns: {"minimal": load(MINIMAL)},
    )["response"]
    assert reply["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(reply["patch"]))
    assert ops[0]["path"] == "/spec/initContainers"
    assert reply["uid"] == "u"


def test_B19_the_no_data_volume_event_is_recorded_once_never_on_dry_run_never_denies() -> None:
    pod = {
        "metadata": {"name": "ignition-0", "annotations": {"stoker.io/inject": "true"}},
        "spec": {"containers": [], "volumes": [{"name": "config", "emptyDir": {}}]},
    }
    body = copy.deepcopy(MINIMAL)
    body["metadata"]["uid"] = "uid-1"
    crs = {"minimal": load(body)}
    recorded: list[tuple[str, dict[str, Any]]] = []

    def review(**extra: Any) -> dict[str, Any]:
        request = {"uid": "u", "namespace": "p", "object": pod, **extra}
        return review_pod({"request": request}, lambda ns: crs, None, record)["response"]

    def record(namespace: str, event: dict[str, Any]) -> None:
        recorded.append((namespace, event))

    assert review(dryRun=True)["allowed"] is True
    assert recorded == []
    reply = review()
    assert reply["allowed"] is True
    assert "patch" not in reply
    [(namespace, event)] = recorded
    assert namespace == "p"
    assert (event["type"], event["reason"]) == ("Warning", "NoDataVolume")
    assert event["involvedObject"]["uid"] == "uid-1"
    assert event["message"] == reply["warnings"][0]

    def broken(namespace: str, event: dict[str, Any]) -> None:
        raise RuntimeError("forbidden")

    request = {"uid": "u", "namespace": "p", "object": pod}
    assert review_pod({"request": request}, lambda ns: crs, None, broken)["response"]["allowed"]


def review_of(obj: Any, **request: Any) -> bytes:
    return json.dumps(
        {"request": {"uid": "u1", "namespace": "p", "object": obj, **request}}
    ).encode()


def deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": [value]}
    return value


def test_H12_unreadable_reviews_get_400_and_odd_pods_are_admitted_untouched() -> None:
    app = make_app(lambda ns: {"minimal": load(MINIMAL)})
    inject = {"stoker.io/inject": "true"}
    for body in (
        b"[" * 50_000 + b"]" * 50_000,
        review_of({"metadata": {"annotations": inject}, "spec": deep(200)}),
        json.dumps({"request": {"object": {}}}).encode(),  # no uid to answer
    ):
        status, reply = call(app, "/mutate-v1-pod", body)
        assert status.startswith("400"), body[:60]
        assert reply["error"].startswith("bad AdmissionReview")
    for body in (
        review_of({"metadata": "ignition-0", "spec": {}}),
        review_of({"metadata": {"annotations": ["stoker.io/inject"]}}),
        review_of({"metadata": {"annotations": inject}, "spec": {"volumes": "data"}}),
        review_of(["not", "a", "pod"]),
        review_of({"metadata": {"annotations": inject}}, namespace=["p"]),
    ):
        status, reply = call(app, "/mutate-v1-pod", body)
        assert status.startswith("200"), body[:60]
        response = reply["response"]
        assert (response["uid"], response["allowed"]) == ("u1", True)
        assert "patch" not in response
        assert "admitted untouched" in response["warnings"][0]


def test_a_malformed_gatewaysync_is_refused_with_a_reason() -> None:
    app = make_app(lambda ns: {})
    odd = [
        {**MINIMAL, "metadata": "minimal"},
        {**MINIMAL, "spec": ["git"]},
        {**MINIMAL, "spec": {**MINIMAL["spec"], "git": {"repo": ["x"], "ref": {"a": 1}}}},
        "GatewaySync",
        None,
    ]
    for obj in odd:
        status, reply = call(app, "/validate-gatewaysync", review_of(obj, operation="CREATE"))
        assert status.startswith("200"), obj
        response = reply["response"]
        assert response["allowed"] is False, obj
        assert 400 <= response["status"]["code"] < 500
