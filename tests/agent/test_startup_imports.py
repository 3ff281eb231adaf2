"""Start-up of the one-file sync path (issue 18 item 3): `stoker sync` of a commit changing one
file imports only what that path uses, reads its GatewaySync without compiling more than that
needs, and leaves no cache of code where the gateway writes.

Counted (from `python -X importtime` of the real command, or what cattrs compiled, in a child
process), not timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

from conftest import commit_tree
from core.helpers import manifest_with
from stoker_core import model

# Never on this path: the Kubernetes roles and their packages, HTTP stacks, terminal UI, and
# what only a preview or another command needs.
HEAVY = {
    "kubernetes",
    "stoker_k8s",
    "requests",
    "urllib3",
    "rich",
    "gunicorn",
    "prometheus_client",
    "jwt",
    "cryptography",
    "difflib",  # diffs are shown by `stoker plan --diff` and previews, not by a sync
}
# Stoker's own modules a one-file sync without a gateway (JSON output, as `make bench` runs it)
# does not use: each is imported where its branch runs (a gateway to scan, --diff, text
# output, a rollout, the agent's first sync in a pod, a refusal's hint).
DEFERRED = {
    "stoker_agent.gateway",  # --gateway-url
    "stoker_agent.replies",
    "stoker_agent.scanlocking",
    "stoker_core.scanlocks",
    "stoker_agent.previewing",  # --dry-run --diff
    "stoker_agent.rendering",  # text output
    "stoker_core.previews",
    "stoker_core.markup",
    "stoker_core.preboot",  # before the gateway started (the agent in a pod)
    "stoker_core.discovery",
    "stoker_core.waves",  # spec.rollout
    "stoker_core.kinds",  # a file without a GatewaySync
    "stoker_agent.gitfetch",  # a remote repository
    "stoker_core.diffs",  # --dry-run --diff (a sync's Secrets live in stoker_core.secretvalues)
}
# Standard-library modules only another branch needs: decimal formats a duration (a status, a
# message) or parses a fractional one.
STDLIB_DEFERRED = {"decimal"}


def imported(args: list[str], cwd: Path) -> set[str]:
    """Every module a `stoker` process imported, from its -X importtime report."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stoker_agent.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "| cumulative |" not in line
    }


def one_file_sync(make_repo: Any, tmp_path: Path, *extra: str) -> tuple[set[str], Path]:
    """The modules a cold `stoker sync` of a commit changing one file imported, and its data
    directory."""
    files: dict[str, bytes | str] = {f"p/proj/v{i}/view.json": f'{{"v": {i}}}' for i in range(50)}
    repo = make_repo(files)
    cr = tmp_path / "cr.yaml"
    profile = {"default": {"mappings": [{"source": "p", "destination": "projects"}]}}
    cr.write_text(json.dumps(manifest_with(profile)))  # JSON is YAML
    data = tmp_path / "data"
    data.mkdir()
    args = ["sync", "--cr", str(cr), "--repo", str(repo), "--data-dir", str(data)]
    args += ["--gateway-name", "gw", *extra]
    imported(args, tmp_path)  # the full apply
    commit_tree(repo, {**files, "p/proj/v0/view.json": '{"v": "edited"}'}, "one file")
    return imported(args, tmp_path), data


def test_a_one_file_sync_imports_no_heavy_module_and_writes_no_bytecode_into_the_data_dir(
    make_repo: Any, tmp_path: Path
) -> None:
    modules, data = one_file_sync(make_repo, tmp_path)
    assert "stoker_agent.syncing" in modules  # the report was read
    assert {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY} == set()
    assert not [p for p in data.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]


def test_a_one_file_sync_without_a_gateway_imports_none_of_the_modules_of_other_branches(
    make_repo: Any, tmp_path: Path
) -> None:
    modules, _ = one_file_sync(make_repo, tmp_path, "--output", "json")
    assert "stoker_core.recorded" in modules  # planned from the commit's changes
    assert sorted(modules & DEFERRED) == []
    assert sorted(modules & STDLIB_DEFERRED) == []


def test_the_model_s_field_types_are_types_not_strings_compiled_on_first_use() -> None:
    # cattrs compiles a string annotation into its type when it first builds a class (typing's
    # ForwardRef: one compile() each, ~60 for a GatewaySync).
    strings = [
        f"{cls.__name__}.{a.name}"
        for cls in vars(model).values()
        if isinstance(cls, type) and attrs.has(cls)
        for a in attrs.fields(cls)
        if isinstance(a.type, str)
    ]
    assert strings == []


FIRST_CR = """
import linecache, sys
from stoker_core.validation import load
load({doc!r})
scripts = [name for name, (_, _, lines, _) in linecache.cache.items()
           if name.startswith("<cattrs generated structure")]
print(len(scripts), sum("errors.append" in "".join(linecache.cache[n][2]) for n in scripts))
"""


def test_a_valid_gatewaysync_is_built_by_code_that_does_not_collect_every_error() -> None:
    # cattrs writes and compiles a structure function per class on first use; the one that
    # collects each field's error with its path is twice the code. A valid document does not
    # need it: it is made only for a refused one (tests/core/test_validation.py: the messages).
    profile = {"default": {"mappings": [{"source": "p", "destination": "projects"}]}}
    code = FIRST_CR.format(doc=manifest_with(profile))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    built, collecting = map(int, done.stdout.split())
    assert built >= 5  # GatewaySync, its spec, git, sync, a profile, ...
    assert collecting == 0
