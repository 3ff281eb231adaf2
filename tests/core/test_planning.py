"""Planning: what is written, kept and deleted, and the original's bugs that must stay fixed."""

from __future__ import annotations

import pytest

from core.helpers import context, gs_with, plan_for
from stoker_core import desired, profiles
from stoker_core.desired import SkipReason
from stoker_core.errors import InvalidInput, PlanRefused
from stoker_core.manifest import Manifest, Record
from stoker_core.plans import Action, Reason, apply_to
from stoker_core.trees import EXECUTABLE, REGULAR, MemorySnapshot, MemoryTree, RepoEntry, blob_id

AUDIT = "config/resources/dev/ignition/audit-profile"


def test_nested_destination_orphan_is_deleted_and_its_directory_pruned_r1() -> None:
    gs = gs_with([{"source": "audit", "destination": AUDIT}])
    snap = MemorySnapshot(files={"audit/Features/config.json": b"f"})
    live = MemoryTree()
    live.put(f"{AUDIT}/Audit/config.json", b"a")
    live.put(f"{AUDIT}/Features/config.json", b"f")
    live.put("config/resources/core/keep.json", b"k")
    plan = plan_for(gs, snap, live)
    assert plan.deleted == [f"{AUDIT}/Audit/config.json"]
    assert plan.paths(Action.RMDIR) == [f"{AUDIT}/Audit"]
    after = apply_to(plan, live, snap.blobs())
    assert f"{AUDIT}/Features/config.json" in after.files
    assert "config/resources/core/keep.json" in after.files
    assert f"{AUDIT}/Audit" not in after.dirs


def test_planning_never_changes_the_live_tree_r2() -> None:
    gs = gs_with([{"source": "dev", "destination": "config/resources/dev"}])
    snap = MemorySnapshot(files={"dev/keep.json": b"k"})
    live = MemoryTree()
    live.put("config/resources/dev/keep.json", b"k")
    live.put("config/resources/dev/orphan.json", b"o")
    before = live.copy()
    plan = plan_for(gs, snap, live)
    assert plan.deleted == ["config/resources/dev/orphan.json"]
    assert live == before


def test_root_level_file_mapping_does_not_orphan_unmanaged_files_r11() -> None:
    gs = gs_with([{"source": ".versions.json", "destination": ".versions.json"}])
    snap = MemorySnapshot(files={".versions.json": b"{}"})
    live = MemoryTree()
    live.put("config/resources/local/manifest.json", b"m")
    live.put("db/config.idb", b"d")
    plan = plan_for(gs, snap, live)
    assert plan.added == [".versions.json"]
    assert plan.deleted == []


@pytest.mark.parametrize("destination", ["projects/", "./projects", "projects/./", "projects"])
def test_trailing_slash_or_dot_prefix_keeps_orphan_cleanup_b13(destination: str) -> None:
    gs = gs_with([{"source": "p", "destination": destination}])
    snap = MemorySnapshot(files={"p/A/project.json": b"{}"})
    live = MemoryTree()
    live.put("projects/Old/project.json", b"{}")
    plan = plan_for(gs, snap, live)
    assert plan.added == ["projects/A/project.json"]
    assert plan.deleted == ["projects/Old/project.json"]


def test_missing_optional_source_is_skipped_and_its_destination_kept_d3() -> None:
    gs = gs_with(
        [
            {"source": "nope", "destination": "projects"},
            {"source": "cfg", "destination": "config/resources/core"},
        ]
    )
    snap = MemorySnapshot(files={"cfg/a.json": b"1"})
    live = MemoryTree()
    live.put("projects/Existing/project.json", b"{}")
    plan = plan_for(gs, snap, live)
    assert plan.added == ["config/resources/core/a.json"]
    assert plan.deleted == []
    assert [(s.path, s.reason) for s in plan.skipped] == [("projects", SkipReason.SOURCE_MISSING)]


def test_missing_required_source_is_an_error_naming_the_mapping() -> None:
    gs = gs_with([{"source": "nope", "destination": "projects", "required": True}])
    with pytest.raises(InvalidInput, match='required source "nope" does not exist') as info:
        plan_for(gs, MemorySnapshot(files={"x": b""}), MemoryTree())
    assert info.value.problems[0].field == "mappings[0].source"


def test_type_is_inferred_and_a_mismatch_is_an_error_r20() -> None:
    snap = MemorySnapshot(files={"one.json": b"1"})
    plan = plan_for(gs_with([{"source": "one.json", "destination": "x.json"}]), snap, MemoryTree())
    assert plan.added == ["x.json"]
    with pytest.raises(InvalidInput, match="type mismatch"):
        plan_for(
            gs_with([{"source": "one.json", "destination": "x", "type": "dir"}]), snap, MemoryTree()
        )


def test_later_mapping_wins_on_the_same_destination() -> None:
    gs = gs_with(
        [
            {"source": "shared", "destination": "projects"},
            {"source": "site", "destination": "projects"},
        ]
    )
    snap = MemorySnapshot(files={"shared/A/x.json": b"shared", "site/A/x.json": b"site"})
    plan = plan_for(gs, snap, MemoryTree())
    after = apply_to(plan, MemoryTree(), snap.blobs())
    assert after.files["projects/A/x.json"][0] == b"site"


def test_protected_paths_are_never_written_or_deleted() -> None:
    gs = gs_with([{"source": "data", "destination": "config"}], excludePatterns=[])
    snap = MemorySnapshot(
        files={
            "data/local/ignition/gateway-network/uuid.txt": b"clone-uuid",
            "data/resources/core/.resources/cache": b"x",
            "data/resources/core/ok.json": b"1",
        }
    )
    live = MemoryTree()
    live.put("config/local/ignition/gateway-network/uuid.txt", b"real-uuid")
    live.put("config/resources/.resources/abc", b"cache")
    plan = plan_for(gs, snap, live)
    assert plan.added == ["config/resources/core/ok.json"]
    assert plan.deleted == []
    reasons = {s.path: s.reason for s in plan.skipped}
    assert reasons["config/local/ignition/gateway-network/uuid.txt"] is SkipReason.PROTECTED


def test_gateway_owned_paths_need_an_explicit_destination() -> None:
    snap = MemorySnapshot(files={"data/resources/local/sp/config.json": b"1", "data/x.json": b"2"})
    plan = plan_for(gs_with([{"source": "data", "destination": "config"}]), snap, MemoryTree())
    assert plan.added == ["config/x.json"]
    assert {s.reason for s in plan.skipped} == {SkipReason.GATEWAY_OWNED}
    explicit = gs_with(
        [{"source": "data/resources/local", "destination": "config/resources/local"}]
    )
    plan = plan_for(explicit, snap, MemoryTree())
    assert plan.added == ["config/resources/local/sp/config.json"]


def test_gateway_owned_files_are_pruned_only_if_stoker_wrote_them() -> None:
    gs = gs_with([{"source": "local", "destination": "config/resources/local"}])
    snap = MemorySnapshot(files={"local/a.json": b"a"})
    live = MemoryTree()
    live.put("config/resources/local/a.json", b"a")
    live.put("config/resources/local/keystore.jks", b"k")
    live.put("config/resources/local/ours.json", b"o")
    manifest = Manifest(
        records={"config/resources/local/ours.json": Record(blob_id(b"o"), 1, 0, 0, 0o644, "c")}
    )
    plan = plan_for(gs, snap, live, manifest)
    assert plan.deleted == ["config/resources/local/ours.json"]


def test_excluded_live_files_are_never_deleted_b27() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}], excludePatterns=["**/*.bak"])
    snap = MemorySnapshot(files={"p/a.json": b"1", "p/old.bak": b"from git"})
    live = MemoryTree()
    live.put("projects/local.bak", b"mine")
    plan = plan_for(gs, snap, live)
    assert plan.added == ["projects/a.json"]
    assert plan.deleted == []


def test_stoker_state_directory_is_reserved() -> None:
    gs = gs_with([{"source": "all", "destination": "."}])
    snap = MemorySnapshot(files={"all/.stoker/manifest.json": b"evil", "all/ok.txt": b"1"})
    live = MemoryTree()
    live.put(".stoker/manifest.json", b"{}")
    plan = plan_for(gs, snap, live)
    assert plan.added == ["ok.txt"]
    assert plan.deleted == []
    assert [s.reason for s in plan.skipped] == [SkipReason.RESERVED]


def test_data_directory_root_only_prunes_files_stoker_wrote() -> None:
    gs = gs_with([{"source": "all", "destination": "."}])
    snap = MemorySnapshot(files={"all/projects/a.json": b"1"})
    live = MemoryTree()
    live.put("logs/wrapper.log", b"log")
    live.put("old-synced.json", b"x")
    manifest = Manifest(records={"old-synced.json": Record(blob_id(b"x"), 1, 0, 0, 0o644, "c")})
    plan = plan_for(gs, snap, live, manifest)
    assert plan.deleted == ["old-synced.json"]


def test_plan_that_would_empty_a_root_is_refused_unless_allowed() -> None:
    snap = MemorySnapshot(files={"projects-typo/.gitkeep": b""})
    live = MemoryTree()
    live.put("projects/Plant/project.json", b"{}")
    gs = gs_with([{"source": "projects-typo", "destination": "projects"}])
    with pytest.raises(PlanRefused, match="allowEmpty") as info:
        plan_for(gs, snap, live)
    assert info.value.problems[0].path == "projects"
    allowed = gs_with([{"source": "projects-typo", "destination": "projects", "allowEmpty": True}])
    assert plan_for(allowed, snap, live).deleted == ["projects/Plant/project.json"]


def test_unchanged_files_with_a_matching_manifest_are_not_read() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={"p/a.json": b"1"})
    live = MemoryTree()
    live.put("projects/a.json", b"1")
    entry = live.lstat("projects/a.json")
    assert entry is not None
    record = Record(blob_id(b"1"), entry.size, entry.mtime_ns, entry.inode, 0o644, "c")

    class NoReads(MemoryTree):
        def blob_id(self, path: str) -> str:
            raise AssertionError(f"read {path}")

    quiet = NoReads(live.files, live.links, live.dirs, live._inodes, live._clock)
    plan = plan_for(gs, snap, quiet, Manifest(records={"projects/a.json": record}))
    assert plan.unchanged == 1
    assert [op.reason for op in plan.operations] == [Reason.UNCHANGED]


def test_stale_manifest_entry_is_not_trusted() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={"p/a.json": b"1"})
    live = MemoryTree()
    live.put("projects/a.json", b"2")  # changed behind our back, same size
    stale = Record(blob_id(b"1"), 1, 0, 0, 0o644, "c")
    plan = plan_for(gs, snap, live, Manifest(records={"projects/a.json": stale}))
    assert plan.modified == ["projects/a.json"]


def test_existing_equal_files_are_adopted_without_rewriting() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={"p/a.json": b"1"})
    live = MemoryTree()
    live.put("projects/a.json", b"1")
    plan = plan_for(gs, snap, live)
    assert [(op.action, op.reason) for op in plan.operations] == [(Action.KEEP, Reason.ADOPTED)]
    assert not plan.has_changes


def test_a_file_mapped_into_an_excluded_folder_is_written_once_not_at_every_sync() -> None:
    # The directory mapping's walk prunes the excluded folder; the explicit file mapping into
    # it must still see the file it wrote there, or every sync rewrites it and rescans.
    gs = gs_with(
        [
            {"source": "p", "destination": "projects"},
            {"source": "one.json", "destination": "projects/ex/one.json"},
        ],
        excludePatterns=["projects/ex"],
    )
    snap = MemorySnapshot(files={"p/a.json": b"1", "p/ex/b.json": b"2", "one.json": b"x"})
    live = MemoryTree()
    live.put("projects/ex/mine.json", b"left alone")
    first = plan_for(gs, snap, live)
    assert first.added == ["projects/a.json", "projects/ex/one.json"]
    after = apply_to(first, live, snap.blobs())
    again = plan_for(gs, snap, after)
    assert not again.has_changes, again.operations
    assert after.files["projects/ex/mine.json"][0] == b"left alone"
    after.put("projects/ex/one.json", b"edited by hand")
    assert plan_for(gs, snap, after).modified == ["projects/ex/one.json"]


def test_mode_change_is_a_modification() -> None:
    gs = gs_with([{"source": "p", "destination": "scripts"}])
    snap = MemorySnapshot(files={"p/run.sh": b"#!/bin/sh"}, executables={"p/run.sh"})
    live = MemoryTree()
    live.put("scripts/run.sh", b"#!/bin/sh", 0o644)
    plan = plan_for(gs, snap, live)
    assert [(op.reason, op.mode) for op in plan.operations] == [(Reason.MODE_CHANGED, EXECUTABLE)]


def test_symlinked_destination_is_refused_never_followed() -> None:
    gs = gs_with([{"source": "p", "destination": "projects/site"}])
    snap = MemorySnapshot(files={"p/a.json": b"1"})
    live = MemoryTree()
    live.link("projects", "/etc")
    with pytest.raises(PlanRefused, match="symlink") as info:
        plan_for(gs, snap, live)
    assert info.value.problems[0].path == "projects"


def test_symlink_inside_a_root_is_replaced_or_removed_not_followed() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={"p/a.json": b"1"})
    live = MemoryTree()
    live.link("projects/a.json", "/etc/passwd")
    live.link("projects/evil", "/")
    plan = plan_for(gs, snap, live)
    assert [(op.action, op.path, op.reason) for op in plan.operations] == [
        (Action.WRITE, "projects/a.json", Reason.REPLACES_NON_FILE),
        (Action.DELETE, "projects/evil", Reason.ORPHAN),
    ]


def test_repository_symlinks_submodules_and_lfs_pointers_are_skipped_with_reasons() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 9\n"
    snap = MemorySnapshot(
        files={"p/a.json": b"1", "p/big.bin": pointer},
        links={"p/link": "../../etc/passwd"},
        submodules={"p/sub"},
    )
    plan = plan_for(gs, snap, MemoryTree())
    assert plan.added == ["projects/a.json"]
    assert {s.path: s.reason for s in plan.skipped} == {
        "projects/big.bin": SkipReason.LFS_POINTER,
        "projects/link": SkipReason.SYMLINK,
        "projects/sub": SkipReason.SUBMODULE,
    }


def test_templated_destination_cannot_escape_the_data_directory() -> None:
    gs = gs_with(
        [{"source": "p", "destination": "projects/{{.Vars.site}}"}], vars={"site": "../../etc"}
    )
    with pytest.raises(InvalidInput, match="leaves its root") as info:
        plan_for(gs, MemorySnapshot(files={"p/a": b""}), MemoryTree())
    assert info.value.problems[0].field == "mappings[0].destination"


def test_templates_and_patches_render_in_order_copy_template_patch() -> None:
    gs = gs_with(
        [
            {
                "source": "sp",
                "destination": "config/resources/core/ignition/system-properties",
                "template": True,
                "patches": [{"file": "config.json", "set": {"mode": "{{.Vars.mode}}"}}],
            }
        ],
        vars={"mode": "prod"},
    )
    snap = MemorySnapshot(
        files={"sp/config.json": b'{"systemName": "{{.GatewayName}}", "mode": "dev"}'}
    )
    plan = plan_for(gs, snap, MemoryTree(), ctx=context(vars={"mode": "prod"}))
    [op] = [op for op in plan.operations if op.action is Action.WRITE]
    assert op.content == b'{"systemName": "gw1", "mode": "prod"}'
    assert op.blob == blob_id(op.content)


def test_patch_without_file_on_a_file_mapping_patches_that_file_r19() -> None:
    gs = gs_with(
        [{"source": "v.json", "destination": ".versions.json", "patches": [{"set": {"site": "n"}}]}]
    )
    plan = plan_for(gs, MemorySnapshot(files={"v.json": b"{}"}), MemoryTree())
    assert plan.operations[0].content == b'{"site":"n"}'


def test_patch_glob_matching_nothing_is_reported() -> None:
    gs = gs_with(
        [
            {
                "source": "p",
                "destination": "projects",
                "patches": [{"file": "*.jsn", "set": {"a": "1"}}],
            }
        ]
    )
    plan = plan_for(gs, MemorySnapshot(files={"p/a.json": b"{}"}), MemoryTree())
    assert [s.reason for s in plan.skipped] == [SkipReason.PATCH_UNMATCHED]


def test_missing_default_profile_is_a_clear_error_and_default_is_used_when_unnamed_d1() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={"p/a": b""})
    assert plan_for(gs, snap, MemoryTree(), profile=None).added == ["projects/a"]
    with pytest.raises(InvalidInput, match='profile "site" not found'):
        plan_for(gs, snap, MemoryTree(), profile="site")


def test_empty_directories_left_by_deletions_are_pruned_up_to_the_root_only() -> None:
    gs = (
        gs_with([{"source": "p", "destination": "projects"}], allowEmpty=None)
        if False
        else gs_with([{"source": "p", "destination": "projects", "allowEmpty": True}])
    )
    snap = MemorySnapshot(files={"p/.gitkeep": b""})
    live = MemoryTree()
    live.put("projects/A/B/c.json", b"c")
    plan = plan_for(gs, snap, live)
    assert plan.paths(Action.RMDIR) == ["projects/A", "projects/A/B"]
    after = apply_to(plan, live, snap.blobs())
    assert "projects" in after.dirs
    assert "projects/A" not in after.dirs


def test_file_where_a_directory_is_needed_is_replaced_when_managed() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={"p/A/x.json": b"1"})
    live = MemoryTree()
    live.put("projects/A", b"was a file")
    plan = plan_for(gs, snap, live)
    after = apply_to(plan, live, snap.blobs())
    assert after.content() == {"projects/A/x.json": b"1"}


def test_plans_are_deterministic() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={f"p/{i}/x.json": str(i).encode() for i in range(20)})
    live = MemoryTree()
    live.put("projects/old.json", b"o")
    assert plan_for(gs, snap, live) == plan_for(gs, snap, live.copy())


def test_sparse_sources_are_the_rendered_mapping_sources_and_never_escape() -> None:
    gs = gs_with(
        [
            {"source": "sites/{{.GatewayName}}/projects", "destination": "projects"},
            {"source": "./shared/", "destination": "config"},
            {"source": "shared", "destination": "more"},
        ]
    )
    effective = profiles.resolve(gs.spec.sync, None)
    assert desired.sources(effective, context(gateway_name="blue")) == (
        "shared",
        "sites/blue/projects",
    )
    with pytest.raises(InvalidInput) as info:
        desired.sources(effective, context(gateway_name="../../etc"))
    assert info.value.problems[0].field == "mappings[0].source"


def test_an_api_token_stoker_did_not_write_is_never_deleted() -> None:
    gs = gs_with([{"source": "core", "destination": "config/resources/core"}])
    snap = MemorySnapshot(files={"core/ignition/system-properties/config.json": b"{}"})
    live = MemoryTree()
    token = "config/resources/core/ignition/api-token/stoker/config.json"
    live.put(token, b'{"tokenHash": "x"}')
    live.put("config/resources/core/ignition/old-thing/config.json", b"{}")
    plan = plan_for(gs, snap, live)
    assert plan.deleted == ["config/resources/core/ignition/old-thing/config.json"]
    written = Record(blob_id(b'{"tokenHash": "x"}'), 18, 0, 0, 0o644, "c")
    from_git = plan_for(gs, snap, live, Manifest(records={token: written}))
    assert token in from_git.deleted  # one Stoker wrote (from Git) goes when Git drops it


@pytest.mark.parametrize(
    "name",
    ["n" * 256 + ".json", "é" * 126 + ".json"],  # 261 bytes; 257 bytes in 131 characters
)
def test_H5_a_name_longer_than_name_max_is_refused_while_planning_naming_the_file(
    name: str,
) -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={"p/a.json": b"1", f"p/deep/{name}": b"2", "p/z.json": b"3"})
    with pytest.raises(PlanRefused, match="255 bytes") as info:
        plan_for(gs, snap, MemoryTree())
    [problem] = info.value.problems
    assert problem.path is not None
    assert problem.path.startswith("projects/deep/")
    assert f"{len(name.encode())} bytes" in problem.message


def test_H5_a_path_longer_than_path_max_is_refused_while_planning() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    deep = "/".join(["d" * 200] * 21)  # every name fits; the whole path is 4,220 bytes
    snap = MemorySnapshot(files={"p/a.json": b"1", f"p/{deep}/x.json": b"2"})
    with pytest.raises(PlanRefused, match="4096 bytes") as info:
        plan_for(gs, snap, MemoryTree())
    [problem] = info.value.problems
    assert problem.path is not None
    assert problem.path.startswith("projects/dddd")
    assert len(str(problem)) < 400  # names the file without repeating all of it


def test_H5_names_up_to_the_limits_are_planned() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    name = "n" * 250 + ".json"  # 255 bytes
    snap = MemorySnapshot(files={f"p/{name}": b"1"})
    assert plan_for(gs, snap, MemoryTree()).added == [f"projects/{name}"]


def test_only_files_the_size_of_an_lfs_pointer_are_read_to_look_for_one() -> None:
    # A file shorter than the pointer's first line cannot be a pointer: reading it would cost
    # a round trip to git for each small file of the commit (a hundred in the bench tree).
    gs = gs_with([{"source": "p", "destination": "projects"}])
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 9\n"
    snap = MemorySnapshot(
        files={"p/a.json": b"{}", "p/b.json": b"x" * 150, "p/big.bin": pointer, "p/c": b"y" * 300}
    )
    read: list[str] = []

    class Counting(MemorySnapshot):
        def read(self, entry: RepoEntry) -> bytes:
            read.append(entry.path)
            return super().read(entry)

    plan = plan_for(gs, Counting(files=snap.files), MemoryTree())
    assert sorted(read) == ["p/b.json", "p/big.bin"]
    assert plan.added == ["projects/a.json", "projects/b.json", "projects/c"]
    assert [s.reason for s in plan.skipped] == [SkipReason.LFS_POINTER]


def test_a_full_check_walks_the_destinations_that_lie_in_no_other_one() -> None:
    gs = gs_with(
        [
            {"source": "p", "destination": "projects"},
            {"source": "q", "destination": "projects/q"},
            {"source": "c", "destination": "projects-old"},
            {"source": "c/x.json", "destination": "config/x.json"},
        ]
    )
    effective = profiles.resolve(gs.spec.sync, None)
    outer = desired.outer_destinations(effective, context())
    assert outer == ("config/x.json", "projects", "projects-old")
    root = gs_with(
        [{"source": "p", "destination": "projects"}, {"source": "d", "destination": "."}]
    )
    assert desired.outer_destinations(profiles.resolve(root.spec.sync, None), context()) == ("",)


def test_a_plain_mapping_delivers_every_file_in_path_order_with_its_blob_mode_and_size() -> None:
    # A mapping that neither renders nor patches is built in bulk: files the size of an LFS
    # pointer go through their own step, in their place, and the result is the same.
    gs = gs_with([{"source": "p", "destination": "projects"}, {"source": "q", "destination": "q"}])
    files = {"p/a/x.json": b"x" * 150, "p/a/y": b"#!", "p/b.json": b"b" * 300, "p/c/d/e": b"e" * 50}
    snap = MemorySnapshot(files={**files, "q/r/s": b"s" * 60, "q/t": b"t"}, executables={"p/a/y"})
    effective = profiles.resolve(gs.spec.sync, None)
    tree = desired.build(effective, snap, context(vars=effective.vars))
    expected = {
        "projects" + path[1:]: (blob_id(content), EXECUTABLE if path == "p/a/y" else REGULAR)
        for path, content in files.items()
    }
    expected |= {"q/r/s": (blob_id(b"s" * 60), REGULAR), "q/t": (blob_id(b"t"), REGULAR)}
    assert {path: (f.blob, f.mode) for path, f in tree.files.items()} == expected
    assert list(tree.files) == list(expected)  # the walk's order, as one file at a time
    assert [f.size for f in tree.files.values()] == [150, 2, 300, 50, 60, 1]
    assert [f.mapping for f in tree.files.values()] == [0, 0, 0, 0, 1, 1]
    assert tree.dirs == {"projects/a", "projects/c", "projects/c/d", "q/r"}
