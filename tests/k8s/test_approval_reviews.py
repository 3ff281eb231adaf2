"""The approval review on its own (stoker_k8s.admission.review_approval): an approval of the
pending commit by someone who may approve is replaced by a stamp that verifies; anyone else,
another commit, an unknown gate or step, a value that is not a SHA, or a stamp pasted in is
refused with a message; the pending commit comes from the stored object, never the request's."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from typing import Any

from k8s.test_crd import MINIMAL
from stoker_core import approvals
from stoker_k8s.admission import ApprovalSettings, make_app, review_approval

NEW, OLD = "b" * 40, "a" * 40
KEY = b"k" * 32
ALICE = {"username": "alice", "groups": ["plant-leads"]}


def allowed_for(*users: str) -> Any:
    asked: list[tuple[str, str, str]] = []

    def may_approve(user: Mapping[str, Any], namespace: str, name: str) -> bool:
        asked.append((user["username"], namespace, name))
        return user["username"] in users

    may_approve.asked = asked  # type: ignore[attr-defined]
    return may_approve


SETTINGS = ApprovalSettings(key=KEY, may_approve=allowed_for("alice"), now=lambda: "T")


def stored(status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(MINIMAL)
    obj["metadata"].update(namespace="plant", uid="uid-1", annotations={})
    obj["spec"]["rollout"] = {"approval": "required", "steps": [{"name": "test"}, {}]}
    obj["status"] = (
        {"rollout": {"commit": NEW, "halted": {"commit": OLD}}} if status is None else status
    )
    return obj


def review(
    annotations: dict[str, Any], user: Mapping[str, Any] = ALICE, **over: Any
) -> dict[str, Any]:
    old = over.pop("old", None) or stored()
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = annotations
    new.update(over)
    request = {
        "uid": "r1",
        "operation": "UPDATE",
        "namespace": "plant",
        "userInfo": user,
        "object": new,
        "oldObject": old,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def answer(annotations: dict[str, Any], **kw: Any) -> dict[str, Any]:
    response: dict[str, Any] = review_approval(review(annotations, **kw), SETTINGS)["response"]
    return response


def test_an_approval_of_the_pending_commit_is_stamped_with_who_approved() -> None:
    response = answer({approvals.key("rollout"): NEW})
    assert response["allowed"] is True
    [op] = json.loads(base64.b64decode(response["patch"]))
    assert op["op"] == "replace"
    assert op["path"] == "/metadata/annotations/approval.stoker.io~1rollout"
    seen = approvals.verified(
        {approvals.key("rollout"): op["value"]},
        key=KEY,
        namespace="plant",
        name="minimal",
        uid="uid-1",
        commit=NEW,
    )
    assert seen.gates == {"rollout"}
    assert seen.by == {"rollout": "alice"}


def test_resume_names_the_halted_commit_and_a_step_gate_the_pending_one() -> None:
    assert answer({approvals.key("resume"): OLD})["allowed"] is True
    assert answer({approvals.key("step:test"): NEW})["allowed"] is True
    assert answer({approvals.key("pause:step-2"): NEW})["allowed"] is True


def test_someone_without_the_right_is_refused_with_who_and_what_is_missing() -> None:
    response = answer({approvals.key("rollout"): NEW}, user={"username": "bob"})
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["message"] == (
        "bob may not approve rollouts of GatewaySync plant/minimal: approving needs the verb "
        '"approve" on gatewaysyncs (API group stoker.io) in namespace plant, which bob does not '
        "hold; see the example Role in docs/rollouts.md#approvals"
    )


def test_a_commit_that_is_not_pending_is_refused_naming_the_pending_one() -> None:
    response = answer({approvals.key("rollout"): OLD})
    assert response["allowed"] is False
    assert response["status"]["code"] == 409
    assert response["status"]["message"] == (
        f"approval.stoker.io/rollout: commit {OLD} is not the one awaiting approval: the "
        f"pending commit is {NEW} (status.rollout)"
    )
    nothing = answer({approvals.key("rollout"): NEW}, old=stored(status={}))
    assert "no commit is pending" in nothing["status"]["message"]
    not_halted = answer({approvals.key("resume"): NEW}, old=stored({"rollout": {"commit": NEW}}))
    assert "no rollout is halted" in not_halted["status"]["message"]


def test_the_pending_commit_is_read_from_the_stored_object_not_the_request() -> None:
    forged = {"rollout": {"commit": OLD}}
    response = answer({approvals.key("rollout"): OLD}, status=forged)
    assert response["allowed"] is False
    assert f"the pending commit is {NEW}" in response["status"]["message"]


def test_a_value_that_is_not_a_sha_and_a_pasted_stamp_are_refused() -> None:
    pasted = approvals.stamp(
        KEY, namespace="plant", name="other", uid="u", gate="rollout", commit=NEW, by="a", at="T"
    )
    for value in ("main", NEW[:12], NEW.upper(), pasted):
        response = answer({approvals.key("rollout"): value})
        assert response["allowed"] is False, value
        assert "write the full commit SHA" in response["status"]["message"]


def test_an_unknown_gate_or_step_is_refused() -> None:
    response = answer({"approval.stoker.io/everything": NEW})
    assert "names no approval gate" in response["status"]["message"]
    response = answer({approvals.key("step:tset"): NEW})
    assert response["status"]["message"] == (
        "approval.stoker.io/step.tset: spec.rollout.steps has no step named 'tset' "
        "(steps: test, step-2)"
    )


def test_removing_an_approval_or_changing_nothing_passes_without_a_check() -> None:
    old = stored()
    old["metadata"]["annotations"] = {approvals.key("rollout"): NEW, "other": "x"}
    may = allowed_for()
    settings = ApprovalSettings(key=KEY, may_approve=may, now=lambda: "T")
    for written in ({}, {"other": "y"}, {approvals.key("rollout"): NEW, "other": "x"}):
        response = review_approval(review(written, old=copy.deepcopy(old)), settings)
        assert response["response"]["allowed"] is True
        assert "patch" not in response["response"]
    assert may.asked == []


def test_a_new_gatewaysync_with_an_approval_is_admitted_unstamped_with_a_warning() -> None:
    body = review({approvals.key("rollout"): NEW})
    body["request"]["operation"] = "CREATE"
    body["request"]["oldObject"] = None
    response = review_approval(body, SETTINGS)["response"]
    assert response["allowed"] is True
    assert "patch" not in response
    assert "not stamped" in response["warnings"][0]


def test_without_a_key_every_approval_is_refused_and_the_app_serves_the_path() -> None:
    app = make_app(lambda ns: {})
    from k8s.test_admission_reviews import call

    body = json.dumps(review({approvals.key("rollout"): NEW})).encode()
    status, reply = call(app, "/mutate-gatewaysync-approval", body)
    assert status.startswith("200")
    assert reply["response"]["allowed"] is False
    assert "no approval key" in reply["response"]["status"]["message"]
