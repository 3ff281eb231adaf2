"""docs/templating.md's worked examples: each profile, given the file shown "in Git", delivers
exactly the file shown "on the gateway", through the same desired-tree code the agent uses."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT
from stoker_core import desired, profiles
from stoker_core.templates import TemplateContext
from stoker_core.trees import MemorySnapshot
from stoker_core.validation import load

DOC = (ROOT / "docs" / "templating.md").read_text()
EXAMPLE = re.compile(
    r"<!-- example: (\w+) -->\n```yaml\n(.*?)```\n\n`([^`]+)` in Git:\n\n```json\n(.*?)```"
    r"\n\n[^\n]*:\n\n```json\n(.*?)```",
    re.DOTALL,
)


def examples() -> list[tuple[str, str, str, str, str]]:
    found = EXAMPLE.findall(DOC)
    assert {name for name, *_ in found} == {"patch", "template"}
    return found


@pytest.mark.parametrize(("name", "profile", "source", "before", "after"), examples())
def test_the_example_delivers_what_the_doc_shows(
    name: str, profile: str, source: str, before: str, after: str
) -> None:
    spec = yaml.safe_load(profile)
    gs = load(
        {
            "apiVersion": "stoker.io/v1alpha1",
            "kind": "GatewaySync",
            "metadata": {"name": "plant"},
            "spec": {
                "git": {"repo": "https://git.example/plant.git", "ref": "main"},
                "gateway": {"api": {"secretName": "ignition-api-key"}},
                "sync": {"profiles": {"default": spec}},
            },
        }
    )
    effective = profiles.resolve(gs.spec.sync, None)
    context = TemplateContext(gateway_name="ignition-blue", vars=effective.vars)
    repo = MemorySnapshot(files={source: before.encode()})
    tree = desired.build(effective, repo, context)
    assert len(tree.files) == 1, tree.skipped
    (delivered,) = tree.files.values()
    assert delivered.content is not None, "the file should have been rendered or patched"
    assert delivered.content.decode() == after
