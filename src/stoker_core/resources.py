"""Ignition resources named from data-directory paths, and plan changes grouped by resource.

The layout (docs/sync-rules.md, from the gateway's 8.3 data directory):

- `projects/<project>/project.json`; resources at `projects/<project>/<module>/<type>/<folders…>/`
  (views under `com.inductiveautomation.perspective/views`, scripts under
  `ignition/script-python`, named queries under `ignition/named-query`);
- `config/resources/<collection>/config-mode.json`; config resources at
  `config/resources/<collection>/<module>/<type>/[<folders…>/]`, themes under
  `com.inductiveautomation.perspective/themes`.

A resource is the folder that holds the file (a singleton's folder is its type's). A project or
a collection whose every file is added (or deleted) is one line: `project Old: deleted (12 files)`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from stoker_core.fieldwise import FIELDWISE


class Kind(enum.StrEnum):
    """What kind of Ignition thing a path belongs to."""

    PROJECT = "project"
    VIEW = "view"
    SCRIPT = "script"
    NAMED_QUERY = "named query"
    PROJECT_RESOURCE = "project resource"
    COLLECTION = "collection"
    THEME = "theme"
    CONFIG_RESOURCE = "config resource"
    FILE = "file"


class Change(enum.StrEnum):
    """What happens to a file, or to a resource as a whole."""

    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


# (module, type) inside a project or a collection → the kind; anything else is the generic one.
_PROJECT_TYPES = {
    ("com.inductiveautomation.perspective", "views"): Kind.VIEW,
    ("ignition", "script-python"): Kind.SCRIPT,
    ("ignition", "named-query"): Kind.NAMED_QUERY,
}
_CONFIG_TYPES = {("com.inductiveautomation.perspective", "themes"): Kind.THEME}


@attrs.frozen(slots=True, order=True)
class Resource:
    """An Ignition resource: its kind and a name (project-relative or collection-relative)."""

    kind: Kind
    name: str


def _folder(parts: list[str]) -> str:
    return "/".join(parts[:-1])


def resource_of(path: str) -> Resource:
    """Name the resource a data-directory path belongs to (a `file` when it is none)."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == "projects":
        project, rest = parts[1], parts[2:]
        if len(rest) >= 3:
            kind = _PROJECT_TYPES.get((rest[0], rest[1]), Kind.PROJECT_RESOURCE)
            inner = rest[2:] if kind is not Kind.PROJECT_RESOURCE else rest
            name = _folder(inner) or "/".join(rest[:2])
            return Resource(kind, f"{project}/{name}")
        return Resource(Kind.PROJECT, project)
    if len(parts) >= 4 and parts[:2] == ["config", "resources"]:
        collection, rest = parts[2], parts[3:]
        if len(rest) >= 3:
            kind = _CONFIG_TYPES.get((rest[0], rest[1]), Kind.CONFIG_RESOURCE)
            inner = rest[2:] if kind is Kind.THEME else rest
            return Resource(kind, f"{collection}/{_folder(inner)}")
        return Resource(Kind.COLLECTION, collection)
    return Resource(Kind.FILE, path)


def _box_key(path: str) -> str:
    """`projects/<p>` or `config/resources/<c>` when `path` lies inside one, else ""."""
    for prefix in ("projects/", "config/resources/"):
        if path.startswith(prefix):
            end = path.find("/", len(prefix))
            return path[:end] if end > len(prefix) else ""
    return ""


def container_of(path: str) -> Resource | None:
    """The project or collection a path lies in, if any."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == "projects":
        return Resource(Kind.PROJECT, parts[1])
    if len(parts) >= 4 and parts[:2] == ["config", "resources"]:
        return Resource(Kind.COLLECTION, parts[2])
    return None


@attrs.frozen(slots=True, kw_only=True)
class Group:
    """One resource's changed files: added, modified, deleted."""

    __eq__, __hash__, __repr__ = FIELDWISE  # a few a sync: not compiled at import (issue 18)

    resource: Resource
    change: Change
    files: tuple[tuple[str, Change], ...]  # (path, change), path order

    def summary(self) -> str:
        """One line: `view Blue/Main: modified (2 files)`."""
        count = len(self.files)
        noun = "file" if count == 1 else "files"
        return f"{self.resource.kind} {self.resource.name}: {self.change} ({count} {noun})"

    def to_json(self) -> dict[str, object]:
        """The wire form in plan reports (docs/schemas/plan.schema.json, `resources`)."""
        return {
            "kind": str(self.resource.kind),
            "name": self.resource.name,
            "change": str(self.change),
            "files": [{"path": p, "change": str(c)} for p, c in self.files],
        }


def _overall(changes: Iterable[Change]) -> Change:
    seen = set(changes)
    return seen.pop() if len(seen) == 1 else Change.MODIFIED


def group(changes: Iterable[tuple[str, Change]], kept: Iterable[str] = ()) -> list[Group]:
    """Group changed files by resource, in path order. A resource with a file kept is modified;
    a project or collection with no file kept whose files are all added (or all deleted) is one
    group of its own. Linear in the number of paths."""
    changed = sorted(changes)
    # Only kept files inside a project or collection with a change can matter; a plain prefix
    # test skips the rest (a sync keeps ~100,000 files and changes a few).
    boxes = {key for key in map(_box_key, (p for p, _ in changed)) if key}
    kept_in: set[Resource] = set()
    # A kept path lies in a changed box exactly when it starts with that box and a slash (a
    # box is `projects/<p>` or `config/resources/<c>`): one C-level test per kept path.
    in_a_box = tuple(f"{key}/" for key in boxes)
    for path in kept if in_a_box else ():
        box = container_of(path) if path.startswith(in_a_box) else None
        if box is not None:
            kept_in.update((box, resource_of(path)))
    whole: dict[Resource, list[Change]] = {}
    for path, change in changed:
        box = container_of(path)
        if box is not None:
            whole.setdefault(box, []).append(change)
    rolled = {
        box
        for box, seen in whole.items()
        if box not in kept_in and _overall(seen) is not Change.MODIFIED
    }
    files: dict[Resource, list[tuple[str, Change]]] = {}
    for path, change in changed:
        box = container_of(path)
        key = box if box is not None and box in rolled else resource_of(path)
        files.setdefault(key, []).append((path, change))
    return [
        Group(
            resource=r,
            change=Change.MODIFIED if r in kept_in else _overall(c for _, c in fs),
            files=tuple(fs),
        )
        for r, fs in files.items()  # dicts keep insertion order: the first file's path order
    ]
