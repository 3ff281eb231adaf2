"""Ignition data-directory facts for the gateway simulator: signatures, API tokens, tree reading.

Everything here follows ``reference/ignition-gateway-api.md`` §1.2 (API-token resources) and §2
(data directory, ``resource.json``). The helpers that *write* files (``write_api_token``,
``write_resource``, ``write_project``, ``write_security_properties``) exist so tests can build a
data directory the way Stoker or an operator would.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

#: Scope letters of ``resource.json`` and the int the 8.1 signature feeds for each (§2.4).
SCOPE_CODES = {"N": 0, "G": 1, "D": 2, "C": 4, "A": 7}
#: Folder names the gateway owns as caches; never part of a resource tree (§2.1, §2.3).
CACHE_DIR = ".resources"
#: Collections ordered from lowest to highest precedence, before modes are inserted (§2.2).
BASE_CHAIN = ("system", "external", "core")
#: The security level the gateway grants by default when no security-properties exist (§1.1).
DEFAULT_LEVEL = "Authenticated/Roles/Administrator"
#: Files kept in memory per loaded resource file, beyond which only the digest is kept.
MAX_KEPT_BYTES = 256 * 1024

Kind = Literal["project", "config"]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_hash(secret: str) -> str:
    """Return the ``settings.tokenHash`` for an API-key secret (§1.2, verified rule).

    base64url(SHA-256(base64url-decode(secret))), no padding. Raises ``ValueError`` when the
    secret is not base64url.
    """
    try:
        raw = _b64url_decode(secret)
    except (ValueError, TypeError) as e:
        raise ValueError(f"API-key secret is not base64url: {e}") from e
    return _b64url(hashlib.sha256(raw).digest())


def new_token_secret() -> str:
    """Return a fresh secret as the gateway makes them: 32 random bytes, base64url, 43 chars."""
    return _b64url(secrets.token_bytes(32))


def now_iso() -> str:
    """Return the current UTC time in the ``lastModification.timestamp`` format."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def project_signature(manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> str:
    """Return the 8.1 project-resource signature of a manifest and its files (§2.4, verified).

    SHA-256 over: scope int (4 bytes BE), ``documentation`` bytes if present, version int,
    one byte each for locked/restricted/overridable, each listed file's name then bytes in
    sorted order, each attribute but ``lastModificationSignature`` as key then compact JSON.
    """
    h = hashlib.sha256()
    h.update(SCOPE_CODES.get(str(manifest.get("scope", "N")), 0).to_bytes(4, "big"))
    if manifest.get("documentation") is not None:
        h.update(str(manifest["documentation"]).encode())
    h.update(int(manifest.get("version", 1)).to_bytes(4, "big", signed=True))
    for flag in ("locked", "restricted", "overridable"):
        h.update(b"\x01" if manifest.get(flag) else b"\x00")
    for name in sorted(files):
        h.update(name.encode())
        h.update(files[name])
    attributes = manifest.get("attributes") or {}
    for key in sorted(attributes):
        if key != "lastModificationSignature":
            h.update(key.encode())
            h.update(_compact(attributes[key]))
    return h.hexdigest()


def config_signature(manifest: Mapping[str, Any], files: Mapping[str, bytes], identity: str) -> str:
    """Return the simulator's stand-in signature for an 8.3 config resource (§2.4).

    The real algorithm is unknown, so this one is ours and opaque: the project algorithm plus
    ``description`` and the resource identity (collection and path), so the same resource in two
    collections signs differently, as seen on a live gateway. Tests must not depend on its value.
    """
    inner = project_signature(manifest, files)
    extra = _compact([identity, manifest.get("description")])
    return hashlib.sha256(b"stoker-sim-config\x00" + extra + inner.encode()).hexdigest()


def stamp(manifest: dict[str, Any], signature_of: Any, actor: str = "external") -> dict[str, Any]:
    """Return a copy of ``manifest`` with a fresh ``lastModification`` and its signature.

    ``signature_of`` is called with the new manifest and returns the signature to store.
    """
    out = json.loads(json.dumps(manifest))
    attributes = out.setdefault("attributes", {})
    attributes["lastModification"] = {"actor": actor, "timestamp": now_iso()}
    attributes.pop("lastModificationSignature", None)
    attributes["lastModificationSignature"] = signature_of(out)
    return out


# ---------------------------------------------------------------- safe reading (no symlinks)


class Unsafe(Exception):
    """A path the simulator refuses to read: a symlink or not a regular file."""


def read_bytes(path: Path) -> bytes:
    """Read a regular file without following a symlink at its last component."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if path.is_symlink():
            raise Unsafe("symlink") from e
        raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise Unsafe("not a regular file")
        return fh.read()


def read_json(path: Path) -> Any:
    """Read and parse a JSON file without following symlinks."""
    return json.loads(read_bytes(path).decode("utf-8"))


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a temporary file and a rename (no torn file)."""
    tmp = path.with_name(f".{path.name}.sim-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def dump_json(value: Any) -> bytes:
    """Serialise JSON the way Ignition writes it: two-space indent, trailing newline."""
    return (json.dumps(value, indent=2) + "\n").encode()


def walk_dirs(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """Walk real directories under ``root``, never entering symlinks or ``.resources`` caches.

    Yields ``(dir, subdirs, symlinks)``; ``symlinks`` names the entries that were links.
    """
    stack = [root]
    while stack:
        here = stack.pop()
        subdirs, links = [], []
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                links.append(entry.name)
            elif entry.is_dir(follow_symlinks=False) and entry.name != CACHE_DIR:
                subdirs.append(entry.name)
        yield here, subdirs, links
        stack.extend(here / name for name in reversed(subdirs))


# ---------------------------------------------------------------- loaded model


@dataclass(frozen=True)
class Skip:
    """Something a scan did not load, and why (a sentence fragment)."""

    path: str
    reason: str


@dataclass(frozen=True)
class LoadedResource:
    """One resource as the gateway loaded it during a scan.

    ``path`` is the resource folder relative to the data directory (POSIX), e.g.
    ``projects/blue/ignition/script-python/shifts`` or
    ``config/resources/core/ignition/system-properties``. ``name`` is ``""`` for singletons.
    """

    path: str
    kind: Kind
    module: str
    type: str
    name: str
    manifest: dict[str, Any]
    digests: dict[str, str]
    project: str | None = None
    collection: str | None = None
    contents: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def signature(self) -> str:
        """The ``lastModificationSignature`` the gateway holds for this resource."""
        return str((self.manifest.get("attributes") or {}).get("lastModificationSignature", ""))

    @property
    def actor(self) -> str | None:
        """``lastModification.actor`` as loaded (``"external"`` after a simulator stamp)."""
        modification = (self.manifest.get("attributes") or {}).get("lastModification") or {}
        return modification.get("actor")

    def data(self, name: str) -> bytes | None:
        """Bytes of a listed file as loaded, or ``None`` if too large to keep or not listed."""
        return self.contents.get(name)

    def json(self, name: str = "config.json") -> Any:
        """Parsed JSON of a listed file as loaded (``config.json`` by default)."""
        raw = self.data(name)
        if raw is None:
            raise KeyError(f"{self.path}: no loaded content for {name}")
        return json.loads(raw)


@dataclass(frozen=True)
class LoadedProject:
    """A project as loaded: its folder name, ``project.json`` and resources by path."""

    name: str
    meta: dict[str, Any]
    resources: dict[str, LoadedResource]

    def item(self) -> dict[str, Any]:
        """The project's item in ``GET /data/api/v1/projects/list`` (§1.3 item shape)."""
        return {
            "name": self.name,
            "title": self.meta.get("title", ""),
            "description": self.meta.get("description", ""),
            "enabled": bool(self.meta.get("enabled", True)),
            "parent": self.meta.get("parent", "") or "",
            "inheritable": bool(self.meta.get("inheritable", False)),
            "defaultDb": self.meta.get("defaultDb", ""),
            "tagProvider": self.meta.get("tagProvider", ""),
            "userSource": self.meta.get("userSource", ""),
        }


# ---------------------------------------------------------------- writers for tests


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as JSON at ``path``, creating parents; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dump_json(value))
    return path


def manifest_for(
    files: Iterable[str], *, scope: str = "A", attributes: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return a minimal unsigned ``resource.json`` listing ``files``."""
    return {
        "scope": scope,
        "version": 1,
        "restricted": False,
        "overridable": True,
        "files": sorted(files),
        "attributes": dict(attributes or {}),
    }


def write_resource(
    folder: Path,
    files: Mapping[str, bytes | str | Mapping[str, Any]],
    *,
    signed: Literal["none", "valid", "bogus"] = "none",
    kind: Kind = "project",
    identity: str = "",
    attributes: Mapping[str, Any] | None = None,
) -> Path:
    """Write a resource folder: its files plus a ``resource.json`` listing them.

    ``signed``: ``"none"`` leaves out ``lastModification`` and the signature (a hand-written
    resource); ``"valid"`` stamps it as the simulator would (actor ``admin``); ``"bogus"`` puts a
    signature that matches nothing. For ``kind="config"`` a valid signature depends on
    ``identity`` (``<collection>/<module>/<type>[/<name>]``). Returns the folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    raw: dict[str, bytes] = {}
    for name, content in files.items():
        if isinstance(content, bytes):
            raw[name] = content
        elif isinstance(content, str):
            raw[name] = content.encode()
        else:
            raw[name] = dump_json(content)
        (folder / name).write_bytes(raw[name])
    manifest = manifest_for(raw, attributes=attributes)
    if signed == "valid":
        manifest = stamp(manifest, lambda m: sign(m, raw, kind, identity), actor="admin")
    elif signed == "bogus":
        manifest["attributes"]["lastModification"] = {"actor": "admin", "timestamp": now_iso()}
        manifest["attributes"]["lastModificationSignature"] = "0" * 64
    write_json(folder / "resource.json", manifest)
    return folder


def sign(manifest: Mapping[str, Any], files: Mapping[str, bytes], kind: Kind, identity: str) -> str:
    """Return the signature the simulator expects for a resource of ``kind``."""
    if kind == "project":
        return project_signature(manifest, files)
    return config_signature(manifest, files, identity)


def write_project(
    data_dir: Path,
    name: str,
    *,
    title: str = "",
    parent: str = "",
    enabled: bool = True,
    inheritable: bool = False,
) -> Path:
    """Write ``projects/<name>/project.json`` (§2.1 shape, no name field) and return the folder."""
    folder = data_dir / "projects" / name
    write_json(
        folder / "project.json",
        {
            "title": title or name,
            "description": "",
            "enabled": enabled,
            "inheritable": inheritable,
            "parent": parent,
        },
    )
    return folder


def _level_tree(paths: Iterable[str]) -> list[dict[str, Any]]:
    """Turn ``["Authenticated/Roles/Administrator", "apiKeys"]`` into the nested node list."""
    roots: list[dict[str, Any]] = []
    for path in paths:
        nodes = roots
        for part in path.split("/"):
            node = next((n for n in nodes if n["name"] == part), None)
            if node is None:
                node = {"name": part, "children": []}
                nodes.append(node)
            nodes = node["children"]
    return roots


def level_paths(nodes: Sequence[Mapping[str, Any]] | None, prefix: str = "") -> list[str]:
    """Return the leaf paths of a ``securityLevels`` tree ("only leaf paths count", §1.2)."""
    out: list[str] = []
    for node in nodes or ():
        path = f"{prefix}{node.get('name', '')}"
        children = node.get("children") or []
        out.extend(level_paths(children, path + "/") if children else [path])
    return out


def write_api_token(
    data_dir: Path,
    name: str = "stoker",
    *,
    levels: Iterable[str] = (DEFAULT_LEVEL,),
    secure_channel_required: bool = False,
    collection: str = "external",
    secret: str | None = None,
) -> str:
    """Write an ``ignition/api-token/<name>`` resource and return the header value ``name:secret``.

    Follows §1.2: ``config.json`` with ``profile`` (type ``basic-token``, ``securityLevels`` tree,
    ``secureChannelRequired``, ``timestamp``) and ``settings.tokenHash``; ``resource.json`` holds
    only ``uuid`` and ``enabled`` (a hand-made key, which the gateway accepts and stamps). The real
    gateway defaults ``secureChannelRequired`` to true; tests mostly use http, hence ``False`` here.
    Default collection is ``external``, as IA recommends.
    """
    secret = secret or new_token_secret()
    folder = data_dir / "config" / "resources" / collection / "ignition" / "api-token" / name
    config = {
        "profile": {
            "type": "basic-token",
            "secureChannelRequired": secure_channel_required,
            "securityLevels": _level_tree(levels),
            "timestamp": 1771141515934,
        },
        "settings": {"tokenHash": token_hash(secret)},
    }
    write_resource(
        folder,
        {"config.json": config},
        kind="config",
        attributes={"uuid": hashlib.md5(name.encode()).hexdigest(), "enabled": True},
    )
    return f"{name}:{secret}"


def write_security_properties(
    data_dir: Path,
    *,
    read: Iterable[str] = (DEFAULT_LEVEL,),
    write: Iterable[str] = (DEFAULT_LEVEL,),
    collection: str = "core",
) -> Path:
    """Write the ``ignition/security-properties`` singleton with AnyOf read/write permissions."""
    folder = data_dir / "config" / "resources" / collection / "ignition" / "security-properties"
    config = {
        "readPermissions": {"type": "AnyOf", "securityLevels": _level_tree(read)},
        "writePermissions": {"type": "AnyOf", "securityLevels": _level_tree(write)},
    }
    return write_resource(folder, {"config.json": config}, kind="config")


def write_collection(data_dir: Path, name: str, *, parent: str) -> Path:
    """Write ``config/resources/<name>/config-mode.json`` (§2.1) and return the folder."""
    folder = data_dir / "config" / "resources" / name
    write_json(
        folder / "config-mode.json",
        {
            "title": name.title(),
            "description": "",
            "enabled": True,
            "inheritable": True,
            "parent": parent,
        },
    )
    return folder


def permits(held: Iterable[str], required: Iterable[str]) -> bool:
    """AnyOf check: a held leaf path satisfies a required path equal to it or an ancestor of it."""
    held = list(held)
    return any(h == r or h.startswith(r + "/") for r in required for h in held)


# ---------------------------------------------------------------- reading trees (what a scan does)

SignatureMode = Literal["accept_and_restamp", "skip_silently"]


@dataclass(frozen=True)
class ReadPolicy:
    """How a scan treats signatures and whether it may write back ``resource.json``."""

    signature_mode: SignatureMode = "accept_and_restamp"
    stamp: bool = True
    read_only_collections: frozenset[str] = frozenset({"external"})


@dataclass
class TreeRead:
    """What one pass over a tree found: loaded resources, skips, stamped paths, collections."""

    resources: dict[str, LoadedResource] = field(default_factory=dict)
    projects: dict[str, LoadedProject] = field(default_factory=dict)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[Skip] = field(default_factory=list)
    stamped: list[str] = field(default_factory=list)


def _rel(data_dir: Path, path: Path) -> str:
    return path.relative_to(data_dir).as_posix()


def read_resource(
    data_dir: Path,
    folder: Path,
    *,
    kind: Kind,
    parts: Sequence[str],
    owner: str,
    policy: ReadPolicy,
    out: TreeRead,
) -> None:
    """Load one resource folder into ``out`` (or record why not), stamping it when due (§2.4).

    ``parts`` is the path below the project or collection: ``<module>/<type>[/<name>…]``;
    ``owner`` is the project or collection name.
    """
    rel = _rel(data_dir, folder)
    if len(parts) < 2:
        out.skipped.append(Skip(rel, "resource.json is not under <module>/<type>/"))
        return
    try:
        manifest = read_json(folder / "resource.json")
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ValueError("no files array")
    except Unsafe as e:
        out.skipped.append(Skip(rel, f"resource.json is a {e}"))
        return
    except (OSError, ValueError) as e:
        out.skipped.append(Skip(rel, f"invalid resource.json: {e}"))
        return
    contents: dict[str, bytes] = {}
    for name in files:
        try:
            contents[name] = read_bytes(folder / name)
        except Unsafe as e:
            out.skipped.append(Skip(rel, f"listed file {name} is a {e}"))
            return
        except OSError:
            out.skipped.append(Skip(rel, f"listed file {name} is missing"))
            return
    identity = "/".join([owner, *parts])
    attributes = manifest.get("attributes") if isinstance(manifest.get("attributes"), dict) else {}
    present = attributes.get("lastModificationSignature")
    expected = sign(manifest, contents, kind, identity)
    writable = policy.stamp and not (kind == "config" and owner in policy.read_only_collections)
    if present and present != expected and policy.signature_mode == "skip_silently":
        out.skipped.append(Skip(rel, "signature mismatch (skipped silently)"))
        return
    if present != expected and writable:
        manifest = stamp(manifest, lambda m: sign(m, contents, kind, identity))
        try:
            atomic_write(folder / "resource.json", dump_json(manifest))
            out.stamped.append(rel)
        except OSError as e:
            out.skipped.append(Skip(rel, f"could not stamp resource.json: {e}"))
            return
    out.resources[rel] = LoadedResource(
        path=rel,
        kind=kind,
        module=parts[0],
        type=parts[1],
        name="/".join(parts[2:]),
        manifest=manifest,
        digests={n: hashlib.sha256(b).hexdigest() for n, b in contents.items()},
        project=owner if kind == "project" else None,
        collection=owner if kind == "config" else None,
        contents={n: b for n, b in contents.items() if len(b) <= MAX_KEPT_BYTES},
    )


def read_owner_tree(
    data_dir: Path, root: Path, *, kind: Kind, owner: str, policy: ReadPolicy, out: TreeRead
) -> list[str]:
    """Read every resource folder under a project or collection ``root``; return their paths."""
    found: list[str] = []
    for here, _subdirs, links in walk_dirs(root):
        for link in links:
            out.skipped.append(Skip(_rel(data_dir, here / link), "symlink not followed"))
        if here != root and (here / "resource.json").exists():
            before = set(out.resources)
            parts = here.relative_to(root).parts
            read_resource(
                data_dir, here, kind=kind, parts=parts, owner=owner, policy=policy, out=out
            )
            found.extend(set(out.resources) - before)
    return sorted(found)


def read_projects(data_dir: Path, *, policy: ReadPolicy, refused: Iterable[str] = ()) -> TreeRead:
    """Read ``projects/``: each folder with a valid ``project.json`` and its resources (§2.1)."""
    out = TreeRead()
    root = data_dir / "projects"
    if root.is_symlink() or not root.is_dir():
        if root.is_symlink():
            out.skipped.append(Skip("projects", "symlink not followed"))
        return out
    refused = set(refused)
    _here, names, links = next(walk_dirs(root))
    out.skipped.extend(Skip(f"projects/{n}", "symlink not followed") for n in links)
    for name in names:
        folder = root / name
        if name in refused:
            out.skipped.append(Skip(f"projects/{name}", "project refused to load (injected)"))
            continue
        try:
            meta = read_json(folder / "project.json")
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except Unsafe as e:
            out.skipped.append(Skip(f"projects/{name}", f"project.json is a {e}"))
            continue
        except (OSError, ValueError) as e:
            out.skipped.append(Skip(f"projects/{name}", f"invalid project.json: {e}"))
            continue
        paths = read_owner_tree(
            data_dir, folder, kind="project", owner=name, policy=policy, out=out
        )
        out.projects[name] = LoadedProject(
            name=name, meta=meta, resources={p: out.resources[p] for p in paths}
        )
    return out


def read_config(data_dir: Path, *, policy: ReadPolicy) -> TreeRead:
    """Read ``config/resources/<collection>/…`` and each ``config-mode.json`` (§2.1, §2.2)."""
    out = TreeRead()
    root = data_dir / "config" / "resources"
    if root.is_symlink() or not root.is_dir():
        return out
    _here, names, links = next(walk_dirs(root))
    out.skipped.extend(Skip(f"config/resources/{n}", "symlink not followed") for n in links)
    for name in names:
        folder = root / name
        try:
            mode = read_json(folder / "config-mode.json")
        except (OSError, ValueError, Unsafe):
            mode = {}
        out.collections[name] = mode if isinstance(mode, dict) else {}
        read_owner_tree(data_dir, folder, kind="config", owner=name, policy=policy, out=out)
    return out


def chain(collections: Mapping[str, Mapping[str, Any]], mode: str) -> list[str]:
    """Resolution order, lowest precedence first: system, external, core, modes…, local (§2.2).

    The active mode's ancestors come from each ``config-mode.json`` ``parent``.
    """
    modes: list[str] = []
    current = mode
    while current and current not in BASE_CHAIN and current not in modes:
        modes.insert(0, current)
        current = str((collections.get(current) or {}).get("parent", "core"))
    return [*BASE_CHAIN, *modes, "local"]


def write_caches(data_dir: Path, read: TreeRead, kind: Kind) -> list[str]:
    """Write the gateway's ``.resources/`` caches after a scan (§2.1); return the folders.

    Raises ``OSError`` when a cache cannot be written: the real gateway faults then.
    """
    if kind == "project":
        roots = [data_dir / "projects"] if (data_dir / "projects").is_dir() else []
    else:
        roots = [data_dir / "config" / "resources" / c for c in read.collections]
    written = []
    for root in roots:
        prefix = _rel(data_dir, root) + "/"
        index = {p: r.signature for p, r in read.resources.items() if p.startswith(prefix)}
        cache = root / CACHE_DIR
        if cache.is_symlink():
            raise OSError(f"{_rel(data_dir, cache)} is a symlink")
        cache.mkdir(exist_ok=True)
        atomic_write(cache / "sim-index.json", dump_json(index))
        written.append(_rel(data_dir, cache))
    return written
