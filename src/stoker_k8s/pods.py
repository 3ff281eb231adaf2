"""Pods as the controller keeps them: a stripped copy holding only what discovery and status
read, built from the API server's JSON. Annotations cannot be selected server-side and the
original's pods carry only `stoker.io/cr-name`, so the controller watches every pod of a
namespace; holding each as a full `V1Pod` (containers, env, volumes, managed fields) cost most
of its memory (issue 16 item 9)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from stoker_core.vocabulary import AGENT_CONTAINER, Label
from stoker_k8s.runtime import pages

# The labels the gateway-name rule and the owner rule read (stoker_core.discovery).
KEPT_LABELS = frozenset(
    {
        Label.APP_NAME,
        Label.APP_INSTANCE,
        Label.STATEFULSET_POD,
        Label.POD_INDEX,
        "pod-template-hash",
    }
)
ANNOTATION_PREFIX = "stoker.io/"  # every other annotation is dropped
# A pod with a `stoker.io/` annotation may be a gateway, whose labels a rollout step selects
# on (spec.rollout.steps[].selector.matchLabels): it keeps this many of them (Kubernetes bounds
# each key and value; this bounds their number). Other pods keep KEPT_LABELS only.
GATEWAY_LABELS = 64


@attrs.frozen(slots=True, kw_only=True)
class Pod:
    """The facts about a pod that discovery and status use; nothing else of it is kept."""

    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str]  # `stoker.io/` annotations only
    labels: Mapping[str, str]  # KEPT_LABELS; a possible gateway's all (GATEWAY_LABELS)
    phase: str
    node: str
    deleting: bool
    service_account: str
    owners: tuple[tuple[str, str], ...]  # controller references: (kind, name)
    agent: bool  # carries the agent sidecar
    told_name: str | None  # the GATEWAY_NAME its agent was given (empty there: the pod name)


def strip(obj: Mapping[str, Any]) -> Pod:
    """The stripped copy of a pod given as the API server's JSON (a dict)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    agent = next(
        (c for c in spec.get("initContainers") or [] if c.get("name") == AGENT_CONTAINER), None
    )
    told = None
    for var in (agent or {}).get("env") or []:
        if var.get("name") == "GATEWAY_NAME" and var.get("valueFrom") is None:
            told = str(var.get("value") or meta.get("name") or "")
            break
    notes = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(ANNOTATION_PREFIX)
    }
    labels = meta.get("labels") or {}
    kept = (
        dict(sorted(labels.items())[:GATEWAY_LABELS])
        if notes
        else {k: v for k, v in labels.items() if k in KEPT_LABELS}
    )
    return Pod(
        namespace=meta.get("namespace") or "",
        name=meta.get("name") or "",
        uid=meta.get("uid") or "",
        annotations=notes,
        labels={**kept, **{k: v for k, v in labels.items() if k in KEPT_LABELS}},
        phase=(obj.get("status") or {}).get("phase") or "",
        node=spec.get("nodeName") or "",
        deleting=bool(meta.get("deletionTimestamp")),
        service_account=spec.get("serviceAccountName") or "default",
        owners=tuple(
            (r.get("kind", ""), r.get("name", ""))
            for r in meta.get("ownerReferences") or []
            if r.get("controller")
        ),
        agent=agent is not None,
        told_name=told,
    )


def listed(core: Any, namespace: str) -> list[Pod]:
    """Every pod of `namespace`, stripped, read page by page from the API."""
    return [
        strip(item)
        for page in pages(core.list_namespaced_pod, namespace=namespace)
        for item in page.get("items") or []
    ]
