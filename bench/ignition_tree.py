"""Generate Ignition-shaped configuration trees for benchmarks (deterministic, seeded)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

PATCHED = "config/resources/core/ignition/system-properties/config.json"  # see config_files


def resource_json(files: list[str], rng: random.Random) -> str:
    """A resource.json of the 8.3 shape."""
    return json.dumps(
        {
            "scope": "G",
            "version": 1,
            "restricted": False,
            "overridable": True,
            "files": files,
            "attributes": {
                "lastModification": {"actor": "admin", "timestamp": "2026-01-15T10:30:00Z"},
                "lastModificationSignature": f"{rng.getrandbits(256):064x}",
            },
        },
        indent=2,
    )


def ignition_files(
    count: int, *, seed: int = 7, body_bytes: int = 600
) -> Iterator[tuple[str, bytes]]:
    """Yield about `count` (path, content) pairs: projects with views and scripts, plus config."""
    rng = random.Random(seed)
    made = 0
    project = 0
    while made < count:
        base = f"projects/project{project:03d}"
        yield f"{base}/project.json", json.dumps({"title": f"P{project}", "parent": ""}).encode()
        made += 1
        for i in range(40):
            if made >= count:
                return
            kind = ("com.inductiveautomation.perspective/views", "view.json")
            if i % 3 == 0:
                kind = ("ignition/script-python", "code.py")
            folder = f"{base}/{kind[0]}/area{i % 5}/item{i:03d}"
            body = ("x" * rng.randint(body_bytes // 2, body_bytes * 2)).encode()
            yield f"{folder}/{kind[1]}", body
            yield f"{folder}/resource.json", resource_json([kind[1]], rng).encode()
            made += 2
        project += 1


def config_files(count: int, *, seed: int = 11) -> Iterator[tuple[str, bytes]]:
    """Yield about `count` config-collection files for a mapping that renders them: every
    third names a template value (the gateway's name: a template naming the commit would be
    rewritten at every commit), and one is the system properties a patch sets the gateway's
    name in (PATCHED)."""
    rng = random.Random(seed)
    yield PATCHED, json.dumps({"systemName": "unset", "httpPort": 8088}).encode()
    for i in range(count - 1):
        folder = f"config/resources/core/com.inductiveautomation.opcua/device{i:03d}"
        body: dict[str, object] = {"enabled": True, "port": 20000 + i}
        if i % 3 == 0:
            body["description"] = "{{.GatewayName}}: OPC UA device"
        body["pad"] = "p" * rng.randint(200, 800)
        yield f"{folder}/config.json", json.dumps(body).encode()
