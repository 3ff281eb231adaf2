"""The validating review guarding approval gates (stoker_k8s.admission.review_gatewaysync, issue
17): an UPDATE that removes a gate of the stored object (`spec.rollout.approval: required`, a
step's `approval: required`, a `pause: {untilApproved: true}`, the whole rollout, a gated step
renamed) is refused unless the request's user may `approve` that GatewaySync (the access check
the approval webhook uses); any other change asks nothing; the stored spec is read leniently;
an access check that cannot be made is a 503, which `failurePolicy: Fail` refuses."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest

from k8s.test_admission_reviews import call
from k8s.test_crd import MINIMAL
from stoker_k8s.admission import ApprovalSettings, Unavailable, make_app, review_gatewaysync

EDITOR = {"username": "ed", "groups": ["plant-editors"]}
APPROVER = {"username": "alice", "groups": ["plant-leads"]}
ROLLOUT: dict[str, Any] = {
    "approval": "required",
    "steps": [
        {"name": "test", "selector": {"gateways": ["test-gw"]}, "approval": "required"},
        {"selector": {"gateways": ["line-1"]}, "pause": {"untilApproved": True}},
    ],
}


class Access:
    """A may_approve that lets `users` approve and records every question."""

    def __init__(self, *users: str) -> None:
        self.users, self.asked = users, list[tuple[str, str, str]]()

    def __call__(self, user: Mapping[str, Any], namespace: str, name: str) -> bool:
        self.asked.append((str(user.get("username")), namespace, name))
        return user.get("username") in self.users


def stored(rollout: Any = ROLLOUT) -> dict[str, Any]:
    obj = copy.deepcopy(MINIMAL)
    obj["metadata"].update(namespace="plant", uid="uid-1")
    obj["spec"]["rollout"] = copy.deepcopy(rollout)
    obj["status"] = {"rollout": {"commit": "b" * 40}}
    return obj


def review(
    new_spec: dict[str, Any], user: Mapping[str, Any] = EDITOR, old: Any = None
) -> dict[str, Any]:
    before = old or stored()
    after = copy.deepcopy(before)
    after["spec"] = new_spec
    request = {
        "uid": "r1",
        "operation": "UPDATE",
        "namespace": "plant",
        "name": "minimal",
        "userInfo": user,
        "object": after,
        "oldObject": before,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def edited(change: Any) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(stored()["spec"])
    change(spec)
    return spec


def answer(spec: dict[str, Any], access: Access, **kw: Any) -> dict[str, Any]:
    response: dict[str, Any] = review_gatewaysync(review(spec, **kw), access)["response"]
    return response


def test_an_editor_removing_the_rollout_gate_is_refused_naming_it_the_right_and_the_role() -> None:
    access = Access("alice")
    response = answer(edited(lambda s: s["rollout"].pop("approval")), access)
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    assert message.startswith(
        "ed may not remove the approval gate spec.rollout.approval: required "
        "from GatewaySync plant/minimal: "
    )
    assert '"approve" on gatewaysyncs (API group stoker.io) in namespace plant' in message
    assert "gatewaysync-approver" in message
    assert "docs/rollouts.md#approvals" in message
    assert access.asked == [("ed", "plant", "minimal")]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda s: s["rollout"]["steps"][0].update(approval="none"), 'of step "test"'),
        (lambda s: s["rollout"]["steps"][0].update(name="trial"), 'of step "test"'),
        (
            lambda s: s["rollout"]["steps"][1].update(pause={"duration": "1s"}),
            'pause: {untilApproved: true} after step "step-2"',
        ),
        (lambda s: s.pop("rollout"), "spec.rollout.approval: required"),
    ],
)
def test_removing_a_step_gate_a_pause_or_the_whole_rollout_is_refused_to_an_editor(
    change: Any, named: str
) -> None:
    response = answer(edited(change), Access("alice"))
    assert response["allowed"] is False
    assert named in response["status"]["message"]


def test_every_gate_removed_is_named_once() -> None:
    message = answer(edited(lambda s: s.pop("rollout")), Access())["status"]["message"]
    assert message.startswith(
        "ed may not remove the approval gates spec.rollout.approval: required, "
        'approval: required of step "test", pause: {untilApproved: true} after step "step-2" '
        "from GatewaySync plant/minimal"
    )


def test_an_approver_may_remove_a_gate_and_is_told_what_was_removed() -> None:
    access = Access("alice")
    response = answer(edited(lambda s: s.pop("rollout")), access, user=APPROVER)
    assert response["allowed"] is True
    assert access.asked == [("alice", "plant", "minimal")]
    assert response["warnings"] == [
        "approval gates spec.rollout.approval: required, approval: required of step "
        '"test", pause: {untilApproved: true} after step "step-2" removed by alice (who may '
        "approve)"
    ]


def test_an_editor_may_change_anything_else_and_no_access_check_is_made() -> None:
    access = Access()

    def change(spec: dict[str, Any]) -> None:
        spec["paused"] = True
        spec["rollout"]["healthWindow"] = "2m"
        spec["rollout"]["steps"][0]["selector"] = {"gateways": ["test-gw", "test-gw-2"]}
        spec["rollout"]["steps"].append({"name": "rest", "selector": {"gateways": ["x"]}})

    assert answer(edited(change), access)["allowed"] is True
    adding = edited(lambda s: s["rollout"]["steps"][1].update(approval="required"))
    assert answer(adding, access)["allowed"] is True
    assert access.asked == []


def test_a_stored_object_with_fields_of_another_release_is_read_leniently() -> None:
    old = stored({**ROLLOUT, "canary": {"weight": 5}})
    old["spec"]["futureField"] = {"x": [1]}
    new = copy.deepcopy(MINIMAL["spec"])
    refused = answer(new, Access(), old=old)
    assert refused["allowed"] is False
    assert "spec.rollout.approval: required" in refused["status"]["message"]
    kept = copy.deepcopy(old["spec"])
    del kept["futureField"], kept["rollout"]["canary"]
    kept["paused"] = True
    assert answer(kept, Access(), old=old)["allowed"] is True


def test_validation_problems_are_said_first_and_a_create_asks_nothing() -> None:
    access = Access()
    broken = edited(lambda s: s.pop("rollout"))
    broken["sync"]["profiles"] = {}
    response = answer(broken, access)
    assert response["status"]["code"] == 422
    created = review(copy.deepcopy(stored()["spec"]))
    created["request"].update(operation="CREATE", oldObject=None)
    assert review_gatewaysync(created, access)["response"]["allowed"] is True
    assert access.asked == []


def test_a_request_naming_no_user_is_refused() -> None:
    response = answer(edited(lambda s: s.pop("rollout")), Access("alice"), user={})
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert "names no user" in response["status"]["message"]


def test_an_access_check_that_cannot_be_made_is_a_503_not_an_answer() -> None:
    def down(user: Mapping[str, Any], namespace: str, name: str) -> bool:
        raise Unavailable("asking the API server whether ed may approve: timed out")

    body = review(edited(lambda s: s.pop("rollout")))
    with pytest.raises(Unavailable):
        review_gatewaysync(body, down)
    settings = ApprovalSettings(key=b"", may_approve=down, now=str)
    app = make_app(lambda ns: {}, approval=settings)
    status, reply = call(app, "/validate-gatewaysync", json.dumps(body).encode())
    assert status.startswith("503")
    assert "whether ed may approve" in reply["error"]
    plain = review(edited(lambda s: s.update(paused=True)))
    status, reply = call(app, "/validate-gatewaysync", json.dumps(plain).encode())
    assert status.startswith("200")
    assert reply["response"]["allowed"] is True


def test_without_an_access_check_no_gate_may_be_removed() -> None:
    """An app built without approval settings fails closed: nobody may approve."""
    body = json.dumps(review(edited(lambda s: s.pop("rollout")), user=APPROVER)).encode()
    status, reply = call(make_app(lambda ns: {}), "/validate-gatewaysync", body)
    assert status.startswith("200")
    assert reply["response"]["allowed"] is False
    assert "alice may not remove" in reply["response"]["status"]["message"]


def test_a_status_with_fields_of_a_newer_release_does_not_block_a_spec_change() -> None:
    """The update's object carries the stored status, the controller's to write: only the
    spec is the user's and validated strictly."""
    old = stored()
    old["status"]["somethingNew"] = {"from": "a newer controller"}
    assert answer(edited(lambda s: s.update(paused=True)), Access(), old=old)["allowed"] is True
