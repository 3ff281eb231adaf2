"""Small builders for core tests: a GatewaySync from a profile dict, and planning in memory."""

from __future__ import annotations

from typing import Any

from stoker_core import desired, planning, profiles
from stoker_core.manifest import Manifest
from stoker_core.model import GatewaySync
from stoker_core.plans import SyncPlan
from stoker_core.templates import TemplateContext
from stoker_core.trees import MemorySnapshot, MemoryTree
from stoker_core.validation import load


def manifest_with(
    profiles_: dict[str, Any], defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A GatewaySync document with the given profiles."""
    sync: dict[str, Any] = {"profiles": profiles_}
    if defaults is not None:
        sync["defaults"] = defaults
    return {
        "apiVersion": "stoker.io/v1alpha1",
        "kind": "GatewaySync",
        "metadata": {"name": "site", "namespace": "plant"},
        "spec": {
            "git": {"repo": "https://git.example/plant.git", "ref": "main"},
            "gateway": {"api": {"secretName": "ignition-api-key"}},
            "sync": sync,
        },
    }


def gs_with(mappings: list[dict[str, Any]], **profile: Any) -> GatewaySync:
    """A validated GatewaySync with one `default` profile holding `mappings`."""
    return load(manifest_with({"default": {"mappings": mappings, **profile}}))


def context(**values: Any) -> TemplateContext:
    """A template context for gateway `gw1` unless told otherwise."""
    values.setdefault("gateway_name", "gw1")
    return TemplateContext(**values)


def plan_for(
    gs: GatewaySync,
    snapshot: MemorySnapshot,
    live: MemoryTree,
    manifest: Manifest | None = None,
    ctx: TemplateContext | None = None,
    profile: str | None = None,
) -> SyncPlan:
    """Build the desired tree and plan it against `live`."""
    effective = profiles.resolve(gs.spec.sync, profile)
    ctx = ctx or context(vars=effective.vars)
    tree = desired.build(effective, snapshot, ctx)
    return planning.plan(tree, live, manifest)
