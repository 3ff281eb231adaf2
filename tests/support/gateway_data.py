"""A commissioned Ignition 8.3 gateway's data directory, as a gateway leaves it before Stoker
arrives: its own `core` collection (security properties, a user source, system properties, an API
token made in the web interface), the gateway identity, a Quick Start project and the caches.

Tests copy it and check that a sync leaves every gateway-owned file where it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from support.ignition_sim_resources import (
    write_api_token,
    write_collection,
    write_project,
    write_resource,
    write_security_properties,
)

CORE = "config/resources/core"


def write_gateway_data(data: Path, *, token_name: str = "stoker", quick_start: bool = True) -> str:
    """Fill `data` like a commissioned gateway and return its API token (`name:secret`).

    The token lives in `core`, where an API key made in the gateway's web interface lands;
    `quick_start` adds the Quick Start project a fresh gateway offers.
    """
    write_collection(data, "core", parent="external")
    write_security_properties(data, collection="core")
    core = data / CORE / "ignition"
    write_resource(
        core / "system-properties",
        {"config.json": {"systemName": "Ignition-plant-01", "homepageNotes": ""}},
        signed="valid",
        kind="config",
        identity="core/ignition/system-properties",
    )
    write_resource(
        core / "user-source/default",
        {"config.json": {"profile": {"type": "internal"}}, "users.json": {"users": []}},
        signed="valid",
        kind="config",
        identity="core/ignition/user-source/default",
    )
    token = write_api_token(data, token_name, collection="core")
    identity = data / "config/local/ignition/gateway-network/uuid.txt"
    identity.parent.mkdir(parents=True, exist_ok=True)
    identity.write_text("6f1c2a1e-3b7d-4c55-9a43-0f1a2b3c4d5e\n")
    if quick_start:
        write_project(data, "QuickStart", title="Quick Start")
    cache = data / CORE / ".resources"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "index").write_text("gateway cache\n")
    return token


def gateway_owned(data: Path) -> set[str]:
    """Every file under the gateway's `core` collection and `config/local` (the gateway may
    restamp their resource.json, so their presence is what a sync must keep)."""
    return {
        str(path.relative_to(data))
        for top in (data / CORE, data / "config/local")
        for path in top.rglob("*")
        if path.is_file()
    }


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes (Stoker's .stoker and the
    gateway's .resources caches left out): a data directory to compare before and after."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".stoker", ".resources")]
        for name in filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = path.read_bytes()
    return out
