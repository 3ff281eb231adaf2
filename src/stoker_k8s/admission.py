"""Admission webhooks as functions from AdmissionReview dict to AdmissionReview dict, plus the
thin WSGI shell gunicorn serves. Decisions come from stoker_core (injection, validation).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stoker_core import approvals, jsontext
from stoker_core.errors import InvalidInput
from stoker_core.injection import Decision, InjectionSettings, decide
from stoker_core.model import GatewaySync
from stoker_core.refs import SHA
from stoker_core.validation import load
from stoker_k8s.events import gatewaysync_event

if TYPE_CHECKING:
    from stoker_k8s.metrics import WebhookMetrics

log = logging.getLogger("stoker.webhook")
MAX_REVIEW = 3 * 1024 * 1024  # bytes; the API server's own request limit is 3 MiB
MAX_DEPTH = 100  # JSON nesting; a pod is about 12 deep, a GatewaySync's patches a few more
ListCRs = Callable[[str], Mapping[str, GatewaySync]]


class Unavailable(Exception):
    """What a decision needs could not be read: answered 503, so the webhook's failurePolicy
    decides (Ignore: the pod starts without the agent and the controller reports it)."""


RecordEvent = Callable[[str, dict[str, Any]], None]  # (namespace, Event body)
# (the request's userInfo, namespace, name) -> may that user approve that GatewaySync's
# rollouts (a SubjectAccessReview); raises Unavailable when the API server does not answer.
MayApprove = Callable[[Mapping[str, Any], str, str], bool]
APPROVAL_DOCS = "docs/rollouts.md#approvals"
_MAX_SHOWN, _SHOWN_GATE = 5, 100  # gates named in a refusal, characters of each
_RENAMED = " (a gated step renamed, or an unnamed one moved, counts as removed)"


@attrs.frozen(slots=True, kw_only=True)
class ApprovalSettings:
    """What the approval review needs from its process: the signing key ("" : none, every
    approval is refused), the access check and the clock (RFC 3339 text)."""

    key: bytes
    may_approve: MayApprove
    now: Callable[[], str]


def _response(
    review: Mapping[str, Any],
    allowed: bool,
    message: str = "",
    code: int = 200,
    patch: Iterable[dict[str, Any]] = (),
    warnings: Iterable[str] = (),
) -> dict[str, Any]:
    request = review.get("request") or {}
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": allowed}
    if message:
        response["status"] = {"message": message, "code": code if not allowed else 200}
    ops = list(patch)
    if ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    warned = list(warnings)
    if warned:
        response["warnings"] = warned
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def review_pod(
    review: Mapping[str, Any],
    list_crs: ListCRs,
    settings: InjectionSettings | None = None,
    record_event: RecordEvent | None = None,
) -> dict[str, Any]:
    """Mutating review of a pod CREATE: inject the agent, or deny with the documented message.
    A pod admitted without the agent also gets a Warning event (see `_warn`)."""
    request = review.get("request") or {}
    pod = request.get("object")
    namespace = request.get("namespace") or ""
    if not isinstance(pod, dict) or not isinstance(namespace, str):
        # Never from the API server. Allowed and untouched, as any pod Stoker cannot read:
        # under either failurePolicy a gateway pod must stay creatable (H12).
        return _response(review, True, warnings=["the review holds no pod; admitted untouched"])
    try:
        crs = list_crs(namespace)
    except Exception as e:  # never a 200: neither "allowed, no agent" nor a denial is true
        first = (str(e).splitlines() or [""])[0][:200]
        raise Unavailable(
            f"listing GatewaySyncs in {namespace}: {type(e).__name__}: {first}"
        ) from e
    decision = decide(pod, namespace, crs, settings or InjectionSettings())
    log.info("pod admission", extra={"namespace": namespace, "decision": decision.message})
    if decision.event and record_event is not None and not request.get("dryRun"):
        _warn(record_event, namespace, crs.get(decision.cr), decision)
    return _response(
        review, decision.allowed, decision.message, 403, decision.patch, decision.warnings
    )


def _warn(
    record_event: RecordEvent, namespace: str, gs: GatewaySync | None, decision: Decision
) -> None:
    """Record the decision's Warning event on its GatewaySync. Not on the pod: at admission it
    has no UID (and often no name yet), so `kubectl describe pod` would never show it. A failure
    is logged, never turned into a denial: the pod must start."""
    if gs is None:
        return
    body = gatewaysync_event(
        namespace,
        gs.metadata.name,
        gs.metadata.extra.get("uid"),
        reason=decision.event,
        message=" ".join(decision.warnings),
        warning=True,
        component="stoker-webhook",
    )
    try:
        record_event(namespace, body)
    except Exception as e:
        log.warning("could not record the %s event: %s", decision.event, e)


def review_gatewaysync(
    review: Mapping[str, Any], may_approve: MayApprove | None = None
) -> dict[str, Any]:
    """Validating review of a GatewaySync: every problem, one message; then an UPDATE that
    removes an approval gate of the stored object needs the right to approve it (`may_approve`;
    None: nobody has it)."""
    request = review.get("request") or {}
    obj = request.get("object")
    old = request.get("oldObject")
    updating = request.get("operation") == "UPDATE" and isinstance(old, dict)
    if updating and isinstance(obj, dict) and _mapping(old).get("spec") == obj.get("spec"):
        return _response(review, True)  # status, finalizer and annotation updates pass untouched
    try:
        # The status is the controller's, carried over from the stored object, and may hold
        # fields of a newer release: it must not block a spec change.
        load({k: v for k, v in obj.items() if k != "status"} if isinstance(obj, dict) else obj)
    except InvalidInput as e:
        return _response(review, False, "; ".join(str(p) for p in e.problems), 422)
    if not updating:
        return _response(review, True)
    # The stored spec is read as raw data, leniently: it may hold fields of another release.
    gone = approvals.removed(
        _mapping(_mapping(old).get("spec")), _mapping(_mapping(obj).get("spec"))
    )
    if not gone:
        return _response(review, True)
    return _guard(review, gone, may_approve or _nobody)


def _guard(review: Mapping[str, Any], gone: list[str], may_approve: MayApprove) -> dict[str, Any]:
    """Admit an update that removes the approval gates `gone` only from a user who may approve
    the GatewaySync: RBAC cannot tell a gate from the rest of the spec, this can. A check that
    cannot be made raises Unavailable (a 503: failurePolicy Fail refuses the update)."""
    request = review.get("request") or {}
    user = _mapping(request.get("userInfo"))
    username = user.get("username")
    namespace = str(request.get("namespace") or "")
    name = str(_mapping(_mapping(request.get("oldObject")).get("metadata")).get("name") or "")
    where = f"GatewaySync {namespace}/{name}"
    what = _gates_said(gone)
    if not isinstance(username, str) or not username:
        return _response(review, False, f"{where}: the request names no user to check", 403)
    if not may_approve(user, namespace, name):
        renamed = any(g != approvals.ROLLOUT_GATE for g in gone)
        message = (
            f"{username} may not remove the {what} from {where}"
            f"{_RENAMED if renamed else ''}: removing an approval gate needs the verb "
            f'"approve" on gatewaysyncs (API group stoker.io) in namespace {namespace}, which '
            f"{username} does not hold; keep the gate, or ask someone holding the approver "
            f"Role (gatewaysync-approver in {APPROVAL_DOCS})"
        )
        return _response(review, False, message, 403)
    log.info("approval gates removed", extra={"object": f"{namespace}/{name}", "by": username})
    return _response(review, True, warnings=[f"{what} removed by {username} (who may approve)"])


def _gates_said(gone: list[str]) -> str:
    """`approval gate X` or `approval gates X, Y` in the spec's words, bounded."""
    shown = ", ".join(approvals.described(g)[:_SHOWN_GATE] for g in gone[:_MAX_SHOWN])
    if len(gone) > _MAX_SHOWN:
        shown += f" and {len(gone) - _MAX_SHOWN} more"
    return f"approval gate{'s' if len(gone) > 1 else ''} {shown}"


def review_approval(review: Mapping[str, Any], settings: ApprovalSettings) -> dict[str, Any]:
    """Mutating review of a GatewaySync whose `approval.stoker.io/` annotations changed: each
    new value must be the pending commit, written by someone who may `approve`; each is then
    replaced by the stamp `approvals.verified` checks. Removals pass (they approve nothing)."""
    request = review.get("request") or {}
    obj, old = request.get("object"), request.get("oldObject")
    if not isinstance(obj, dict):
        return _response(review, False, "the review holds no GatewaySync", 400)
    meta = _mapping(obj.get("metadata"))
    before = _mapping(_mapping(old).get("metadata")) if request.get("operation") == "UPDATE" else {}
    changes = approvals.changed(
        _mapping(before.get("annotations")), _mapping(meta.get("annotations"))
    )
    if not changes:
        return _response(review, True)
    if not before:  # a new object has no pending commit (and no uid yet to sign)
        return _response(review, True, warnings=[_UNSTAMPED_ON_CREATE])
    namespace, name = str(request.get("namespace", "")), str(before.get("name", ""))
    refusal = _refusal(request, settings, _mapping(old), changes, namespace, name)
    if refusal:
        message, code = refusal
        return _response(review, False, message, code)
    user = str(_mapping(request.get("userInfo")).get("username"))
    at = settings.now()
    patch = [
        {
            "op": "replace",
            "path": "/metadata/annotations/" + k.replace("~", "~0").replace("/", "~1"),
            "value": approvals.stamp(
                settings.key,
                namespace=namespace,
                name=name,
                uid=str(before.get("uid", "")),
                gate=approvals.gate_of(k),
                commit=str(v),
                by=user,
                at=at,
            ),
        }
        for k, v in changes
    ]
    log.info("approval stamped", extra={"object": f"{namespace}/{name}", "by": user})
    return _response(review, True, patch=patch)


_UNSTAMPED_ON_CREATE = (
    "approval.stoker.io/ annotations on a new GatewaySync are not stamped and count for "
    "nothing: approve the pending commit once it shows (stoker approve)"
)


def _refusal(
    request: Mapping[str, Any],
    settings: ApprovalSettings,
    old: Mapping[str, Any],
    changes: list[tuple[str, Any]],
    namespace: str,
    name: str,
) -> tuple[str, int] | None:
    """Why the approvals in `changes` are refused (message, HTTP code), None if they are not.
    The pending commit is read from the stored object (`oldObject`): a client's own update
    could carry any status."""
    user = _mapping(request.get("userInfo"))
    username = user.get("username")
    where = f"GatewaySync {namespace}/{name}"
    if not settings.key:
        return f"{where}: this webhook has no approval key (--approval-key-secret)", 503
    for k, v in changes:
        gate = approvals.gate_of(k)
        if not gate:
            return (
                f"{k[:80]} names no approval gate: use approval.stoker.io/rollout, "
                f"approval.stoker.io/resume, approval.stoker.io/step.NAME or "
                f"approval.stoker.io/pause.NAME",
                422,
            )
        if not isinstance(v, str) or not SHA.match(v):
            return (
                f"{k}: write the full commit SHA (40 lowercase hex characters); the webhook "
                f"replaces it with the stamp of who approved",
                422,
            )
    if not isinstance(username, str) or not username:
        return f"{where}: the request names no user to record", 403
    if not settings.may_approve(user, namespace, name):
        return (
            f"{username} may not approve rollouts of {where}: approving needs the verb "
            f'"approve" on gatewaysyncs (API group stoker.io) in namespace '
            f"{namespace}, which {username} does not hold; see the example "
            f"Role in {APPROVAL_DOCS}",
            403,
        )
    spec, status = _mapping(old.get("spec")), _mapping(old.get("status"))
    for k, v in changes:
        gate = approvals.gate_of(k)
        unknown = approvals.unknown_step(gate, approvals.step_names(spec))
        if unknown:
            return f"{k}: {unknown}", 422
        pending = approvals.pending(status, gate)
        if v != pending:
            return f"{k}: {_not_pending(gate, v, pending)}", 409
    return None


def _not_pending(gate: str, commit: str, pending: str) -> str:
    if gate == approvals.RESUME_GATE:
        held = f"the halted commit is {pending}" if pending else "no rollout is halted"
        return f"commit {commit} is not the halted one: {held}"
    now = f"the pending commit is {pending}" if pending else "no commit is pending"
    return f"commit {commit} is not the one awaiting approval: {now} (status.rollout)"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def make_app(
    list_crs: ListCRs,
    settings: InjectionSettings | None = None,
    record_event: RecordEvent | None = None,
    metrics: WebhookMetrics | None = None,
    approval: ApprovalSettings | None = None,
) -> Any:
    """The WSGI application: /mutate-v1-pod, /validate-gatewaysync,
    /mutate-gatewaysync-approval, /healthz, /metrics."""
    approving = approval or ApprovalSettings(key=b"", may_approve=_nobody, now=str)

    def mutate(review: Mapping[str, Any]) -> dict[str, Any]:
        namespace = str((review.get("request") or {}).get("namespace") or "")
        try:
            answer = review_pod(review, list_crs, settings, record_event)
        except Unavailable:
            if metrics is not None:
                metrics.admitted(namespace, "unavailable")
            raise
        if metrics is not None:
            metrics.admitted(namespace, _outcome(answer["response"]))
        return answer

    routes: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
        "/mutate-v1-pod": mutate,
        "/validate-gatewaysync": lambda review: review_gatewaysync(review, approving.may_approve),
        "/mutate-gatewaysync-approval": lambda review: review_approval(review, approving),
    }

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _send(start_response, "200 OK", {"ok": True})
        if path == "/metrics" and metrics is not None and environ.get("REQUEST_METHOD") == "GET":
            text = metrics.exposition()
            start_response(
                "200 OK",
                [("Content-Type", "text/plain; version=0.0.4"), ("Content-Length", str(len(text)))],
            )
            return [text]
        handler = routes.get(path)
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return _send(start_response, "404 Not Found", {"error": "not found"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_REVIEW:
            return _send(start_response, "413 Payload Too Large", {"error": "too large"})
        try:
            review = _review(environ["wsgi.input"].read(length))
        except ValueError as e:
            return _send(start_response, "400 Bad Request", {"error": f"bad AdmissionReview: {e}"})
        try:
            return _send(start_response, "200 OK", handler(review))
        except Unavailable as e:
            log.warning("answering 503: %s", e)
            return _send(start_response, "503 Service Unavailable", {"error": str(e)})

    return app


def _nobody(user: Mapping[str, Any], namespace: str, name: str) -> bool:
    return False


def _outcome(response: Mapping[str, Any]) -> str:
    """What a pod review did, for the injections metric."""
    if not response.get("allowed"):
        return "denied"
    return "injected" if response.get("patch") else "skipped"


def _review(body: bytes) -> dict[str, Any]:
    """Parse an AdmissionReview whose response can be addressed (a request with a string
    uid), or raise ValueError saying why not: answered 400, as no response can carry it."""
    try:
        review: Any = jsontext.loads(body)
    except jsontext.TooDeep:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    request = review.get("request") if isinstance(review, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise ValueError("not an AdmissionReview (no request with a uid)")
    if _deeper(review, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return dict(review)


def _deeper(value: Any, limit: int) -> bool:
    """Tell whether JSON data nests deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        stack.extend((child, depth + 1) for child in children)
    return False


def _send(start_response: Callable[..., Any], status: str, body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
