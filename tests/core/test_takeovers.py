"""Warnings for directory mappings that own the gateway's own `core` collection: judged from the
manifest alone (validate) and from a plan, naming the gateway-made files the plan deletes."""

from __future__ import annotations

import pytest

from core.helpers import context, gs_with
from stoker_core import desired, planning, profiles, takeovers
from stoker_core.manifest import Manifest, Record
from stoker_core.trees import MemorySnapshot, MemoryTree, blob_id

SECURITY = "config/resources/core/ignition/security-properties/config.json"
USERS = "config/resources/core/ignition/user-source/default/config.json"
TOKEN = "config/resources/core/ignition/api-token/stoker/config.json"


@pytest.mark.parametrize(
    "destination", ["config/resources/core", "config/resources/core/", "config", "config/", "."]
)
def test_a_directory_mapping_onto_core_or_above_it_is_a_takeover(destination: str) -> None:
    gs = gs_with([{"source": "cfg", "destination": destination}])
    found = list(takeovers.in_profiles(gs.spec.sync))
    assert [(t.mapping, t.collection) for t in found] == [
        ("spec.sync.profiles.default.mappings[0]", "config/resources/core")
    ]
    assert "config/resources/external" in found[0].message()


@pytest.mark.parametrize(
    "destination",
    [
        "config/resources/external",
        "config/resources/dev",
        "projects",
        "config/resources/core/ignition/system-properties",  # one resource, not the collection
        "config/resources/core-backup",
        "services/{{.GatewayName}}",  # judged once rendered, by plan
    ],
)
def test_mappings_beside_or_inside_core_are_not_takeovers(destination: str) -> None:
    gs = gs_with([{"source": "cfg", "destination": destination}])
    assert list(takeovers.in_profiles(gs.spec.sync)) == []


def test_a_file_mapping_is_never_a_takeover() -> None:
    gs = gs_with([{"source": "a.json", "destination": "config", "type": "file"}])
    assert list(takeovers.in_profiles(gs.spec.sync)) == []


def test_the_plan_warning_names_the_gateway_made_files_it_would_delete() -> None:
    gs = gs_with(
        [
            {"source": "ext", "destination": "config/resources/external"},
            {"source": "cfg", "destination": "config"},
        ]
    )
    snap = MemorySnapshot(
        files={
            "ext/ignition/database-connection/db/config.json": b"{}",
            "cfg/resources/core/ignition/system-properties/config.json": b"{}",
            "cfg/resources/core/ignition/old/config.json": b"{}",
        }
    )
    live = MemoryTree()
    for path in (SECURITY, USERS, TOKEN):
        live.put(path, b"{}")
    written_before = "config/resources/core/ignition/gone/config.json"
    live.put(written_before, b"{}")  # Stoker wrote it from an earlier commit: not gateway-made
    manifest = Manifest(records={written_before: Record(blob_id(b"{}"), 2, 0, 0, 0o644, "c")})
    effective = profiles.resolve(gs.spec.sync, None)
    tree = desired.build(effective, snap, context())
    plan = planning.plan(tree, live, manifest)
    assert {SECURITY, USERS, written_before} <= set(plan.deleted)  # behaviour unchanged
    assert TOKEN not in plan.deleted
    [warning] = takeovers.in_plan(tree, plan, manifest, effective.name)
    assert warning.mapping == "spec.sync.profiles.default.mappings[1]"
    assert warning.deletes == (SECURITY, USERS)
    assert SECURITY in warning.message()
    assert USERS in warning.message()
    assert written_before not in warning.message()


def test_the_plan_warning_counts_what_it_does_not_list() -> None:
    gs = gs_with([{"source": "core", "destination": "config/resources/core"}])
    snap = MemorySnapshot(files={"core/ignition/system-properties/config.json": b"{}"})
    live = MemoryTree()
    made = [f"config/resources/core/ignition/user-source/u{i:02}/config.json" for i in range(13)]
    for path in made:
        live.put(path, b"{}")
    effective = profiles.resolve(gs.spec.sync, None)
    tree = desired.build(effective, snap, context())
    plan = planning.plan(tree, live, None)
    [warning] = takeovers.in_plan(tree, plan, None, effective.name)
    assert warning.deletes == tuple(made)
    assert "13 gateway-made file(s)" in warning.message()
    assert "and 3 more" in warning.message()
    assert made[-1] not in warning.message()


def test_a_plan_without_takeover_has_no_warning() -> None:
    gs = gs_with([{"source": "ext", "destination": "config/resources/external"}])
    snap = MemorySnapshot(files={"ext/a/config.json": b"{}"})
    live = MemoryTree()
    live.put(SECURITY, b"{}")
    effective = profiles.resolve(gs.spec.sync, None)
    tree = desired.build(effective, snap, context())
    plan = planning.plan(tree, live, None)
    assert takeovers.in_plan(tree, plan, None, effective.name) == []
    assert plan.deleted == []
