"""What the documentation shows must exist: every `stoker` command line in README.md and docs/
names a real sub-command and real options, and every GatewaySync in a YAML block validates."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from conftest import NOT_RUN, ROOT
from stoker_agent.cli import COMMANDS, LazyGroup, group
from stoker_core.validation import load

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)


def blocks(kind: str) -> list[tuple[Path, str]]:
    return [
        (path, body)
        for path in DOCS
        for lang, body in BLOCK.findall(path.read_text())
        if lang == kind or (kind == "sh" and lang in ("", "sh", "console", "bash"))
    ]


def stoker_lines() -> list[tuple[Path, str]]:
    out = []
    for path, body in blocks("sh"):
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("stoker ") and "[" not in line and "…" not in line:
                out.append((path, line))
    for path, body in blocks("ini"):  # systemd units
        for line in body.splitlines():
            words = shlex.split(line.removeprefix("ExecStart=")) if "ExecStart=" in line else []
            if words and Path(words[0]).name == "stoker":
                out.append((path, shlex.join(["stoker", *words[1:]])))
    return out


def test_the_docs_show_commands() -> None:
    assert len(stoker_lines()) >= 6


@pytest.mark.parametrize(("path", "line"), stoker_lines(), ids=lambda v: str(v)[-60:])
def test_documented_command_lines_parse(path: Path, line: str) -> None:
    words = shlex.split(line)[1:]
    assert words[0] in COMMANDS, f"{path.name}: no command {words[0]}"
    command = LazyGroup.get_command(group, click.Context(group), words[0])
    assert command is not None
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for word in words[1:]:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{path.name}: {words[0]} has no option {word}"


def test_every_documented_gatewaysync_validates() -> None:
    found = 0
    for _path, body in blocks("yaml"):
        for doc in yaml.safe_load_all(body):
            if isinstance(doc, dict) and doc.get("kind") == "GatewaySync":
                load(doc)
                found += 1
    assert found >= 1


def test_documented_helm_settings_exist_in_the_chart() -> None:
    values = yaml.safe_load((ROOT / "adapters/helm/stoker/values.yaml").read_text())
    seen = 0
    for path, body in blocks("sh"):
        for line in body.replace("\\\n", " ").splitlines():  # a command continued with \
            if not line.strip().startswith(("helm install", "helm upgrade")):
                continue
            words = shlex.split(line)
            for i, word in enumerate(words):
                if word == "--set":
                    # Helm's list syntax {a,b} holds commas that do not separate settings.
                    for setting in re.split(r",(?![^{]*\})", words[i + 1]):
                        node = values
                        for key in setting.split("=")[0].split("."):
                            assert key in node, f"{path.name}: no chart value {setting}"
                            node = node[key]
                        seen += 1
    assert seen >= 1


# Commands that need a cluster, a container engine or a Git host: the docs show them, no test
# runs them. Each page showing one must say so, and the run lists them.
NEEDS_A_CLUSTER = ("kubectl ", "kind ", "docker ", "curl ", "helm ", "ssh-keygen ", "ssh-keyscan ")
# ... except those a test runs against local servers: receiver.md's curl commands
# (tests/k8s/test_doc_receiver_curl.py, against a real receiver and API server), and the
# quickstart's kubectl and helm steps (tests/e2e/test_quickstart.py, `make e2e`, real pods).
RUN_ELSEWHERE = {("receiver.md", "curl "), ("quickstart.md", "kubec"), ("quickstart.md", "helm ")}


def cluster_steps() -> list[tuple[Path, str]]:
    out = []
    for path, body in blocks("sh"):
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith(NEEDS_A_CLUSTER) and (path.name, line[:5]) not in RUN_ELSEWHERE:
                out.append((path, line))
    return out


def test_steps_needing_a_cluster_are_listed_as_not_run(request: pytest.FixtureRequest) -> None:
    steps = cluster_steps()
    assert steps, "the install and quickstart pages show kubectl and helm steps"
    for path in {p for p, _ in steps}:
        assert "not run" in path.read_text(), (
            f"{path.name} shows cluster steps: say they are not run"
        )
    request.config.stash[NOT_RUN] = [f"{p.relative_to(ROOT)}: {line}" for p, line in steps]
