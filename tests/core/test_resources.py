"""Plan changes grouped by Ignition resource, from the 8.3 data-directory layout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker_core.resources import Change, Kind, Resource, group, resource_of

PERSPECTIVE = "com.inductiveautomation.perspective"


@pytest.mark.parametrize(
    ("path", "kind", "name"),
    [
        ("projects/blue/project.json", Kind.PROJECT, "blue"),
        (
            f"projects/blue/{PERSPECTIVE}/views/Main/Overview/view.json",
            Kind.VIEW,
            "blue/Main/Overview",
        ),
        ("projects/blue/ignition/script-python/shifts/code.py", Kind.SCRIPT, "blue/shifts"),
        ("projects/blue/ignition/named-query/q/Get/query.sql", Kind.NAMED_QUERY, "blue/q/Get"),
        (
            "projects/blue/ignition/global-props/data.bin",
            Kind.PROJECT_RESOURCE,
            "blue/ignition/global-props",
        ),
        ("config/resources/external/config-mode.json", Kind.COLLECTION, "external"),
        (
            f"config/resources/external/{PERSPECTIVE}/themes/dark/index.css",
            Kind.THEME,
            "external/dark",
        ),
        (
            "config/resources/external/ignition/database-connection/db/config.json",
            Kind.CONFIG_RESOURCE,
            "external/ignition/database-connection/db",
        ),
        (
            "config/resources/dev/ignition/system-properties/config.json",
            Kind.CONFIG_RESOURCE,
            "dev/ignition/system-properties",
        ),
        ("modules.json", Kind.FILE, "modules.json"),
        ("projects/loose.txt", Kind.FILE, "projects/loose.txt"),
    ],
)
def test_a_path_names_the_resource_whose_folder_holds_it(path: str, kind: Kind, name: str) -> None:
    assert resource_of(path) == Resource(kind, name)


def test_a_project_wholly_deleted_is_one_group_with_every_file() -> None:
    files = [f"projects/Old/ignition/script-python/s{i}/code.py" for i in range(11)]
    changes = [(p, Change.DELETED) for p in ["projects/Old/project.json", *files]]
    (only,) = group(changes, kept=["projects/blue/project.json"])
    assert only.summary() == "project Old: deleted (12 files)"


def test_a_project_with_a_file_kept_is_grouped_by_its_resources() -> None:
    view = f"projects/blue/{PERSPECTIVE}/views/Main"
    changes = [
        (f"{view}/view.json", Change.MODIFIED),
        (f"{view}/thumbnail.png", Change.ADDED),
        ("projects/blue/ignition/script-python/shifts/code.py", Change.DELETED),
    ]
    groups = group(changes, kept=["projects/blue/project.json", f"{view}/resource.json"])
    assert [g.summary() for g in groups] == [
        "view blue/Main: modified (2 files)",
        "script blue/shifts: deleted (1 file)",
    ]


def test_a_resource_with_a_file_kept_is_modified_even_if_its_changes_are_all_additions() -> None:
    view = f"projects/blue/{PERSPECTIVE}/views/Main"
    (g,) = group([(f"{view}/thumbnail.png", Change.ADDED)], kept=[f"{view}/view.json"])
    assert g.change is Change.MODIFIED


def test_a_new_collection_is_one_group_and_a_lone_file_its_own() -> None:
    base = "config/resources/external"
    changes = [
        (f"{base}/config-mode.json", Change.ADDED),
        (f"{base}/ignition/database-connection/db/config.json", Change.ADDED),
        ("modules.json", Change.MODIFIED),
    ]
    assert [g.summary() for g in group(changes)] == [
        "collection external: added (2 files)",
        "file modules.json: modified (1 file)",
    ]


PARTS = st.sampled_from(
    ["projects", "config", "resources", "a", "b", "ignition", "views", PERSPECTIVE, "x.json"]
)


@given(
    st.dictionaries(
        st.lists(PARTS, min_size=1, max_size=6).map("/".join),
        st.sampled_from(list(Change)),
        max_size=30,
    ),
    st.lists(st.lists(PARTS, min_size=1, max_size=6).map("/".join), max_size=10),
)
def test_every_changed_path_is_in_exactly_one_group(
    changes: dict[str, Change], kept: list[str]
) -> None:
    kept = [p for p in kept if p not in changes]
    groups = group(changes.items(), kept)
    listed = [path for g in groups for path, _ in g.files]
    assert sorted(listed) == sorted(changes)
    for g in groups:
        assert all(changes[p] is c for p, c in g.files)
        if g.change is not Change.MODIFIED:
            assert {c for _, c in g.files} == {g.change}
