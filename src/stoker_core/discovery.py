"""Which pods are a GatewaySync's gateways, and what each gateway is called: one rule for the
webhook (the agent's GATEWAY_NAME), the agent and the controller (the original's D2).

Pure functions of a pod's annotations, labels, node, phase and owner, so every side applies
them to the same facts and agrees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from stoker_core.vocabulary import Annotation, Label

# The official Ignition Helm chart labels every release `app.kubernetes.io/name: ignition`; its
# release name is in `app.kubernetes.io/instance`.
CHART_NAME = "ignition"
# Phases after which a pod never runs again (an evicted pod is Failed, reason Evicted).
TERMINAL_PHASES = frozenset({"Failed", "Succeeded"})
_ORDINAL = re.compile(r"\d{1,9}")
_TRAILING_ORDINAL = re.compile(r"-(\d{1,9})\Z")


def ordinal(labels: Mapping[str, str]) -> int | None:
    """A StatefulSet pod's ordinal from the labels its StatefulSet gives it, else None."""
    index = labels.get(Label.POD_INDEX, "").strip()
    if _ORDINAL.fullmatch(index):
        return int(index)
    match = _TRAILING_ORDINAL.search(labels.get(Label.STATEFULSET_POD, ""))
    return int(match.group(1)) if match else None


def gateway_name(annotations: Mapping[str, str], labels: Mapping[str, str], pod: str) -> str:
    """The gateway-name rule: the `stoker.io/gateway-name` annotation; else, for a pod of the
    Ignition chart (`app.kubernetes.io/name: ignition`), its `app.kubernetes.io/instance`
    followed by `-N` for StatefulSet ordinal N > 0 (the pair's backup); else the
    `app.kubernetes.io/name` label; else the pod name (`pod`, may be empty: "the pod name")."""
    explicit = annotations.get(Annotation.GATEWAY_NAME)
    if explicit:
        return explicit
    app, instance = labels.get(Label.APP_NAME, ""), labels.get(Label.APP_INSTANCE, "")
    if app == CHART_NAME and instance:
        number = ordinal(labels)
        return f"{instance}-{number}" if number else instance
    return app or pod


def claims(annotations: Mapping[str, str], cr: str, *, sole: bool) -> bool:
    """Whether GatewaySync `cr` claims a pod: it names `cr` in `stoker.io/cr-name`, or it names
    none, asks for injection, and `cr` is the only GatewaySync of its namespace (`sole`)."""
    named = annotations.get(Annotation.CR_NAME)
    if named:
        return named == cr
    return sole and annotations.get(Annotation.INJECT) == "true"


def alive(phase: str, deleting: bool) -> bool:
    """Whether a pod may still run: not in a terminal phase and not being deleted."""
    return phase not in TERMINAL_PHASES and not deleting


def counts(node: str, phase: str, deleting: bool) -> bool:
    """Whether a claimed pod counts as a gateway: scheduled on a node and alive. A pod still
    Pending there (its agent doing the first sync before the gateway starts) is syncing."""
    return bool(node) and alive(phase, deleting)


def owner(references: Sequence[tuple[str, str]], labels: Mapping[str, str], pod: str) -> str:
    """Who runs a pod, as `Kind name` from its controller reference (kind, name): a
    Deployment's ReplicaSets are one owner (the pod-template-hash cut off), a bare pod its own."""
    if not references:
        return f"Pod {pod}"
    kind, name = references[0]
    suffix = "-" + labels.get("pod-template-hash", "\0")
    if kind == "ReplicaSet" and name.endswith(suffix):
        return f"Deployment {name.removesuffix(suffix)}"
    return f"{kind} {name}"
