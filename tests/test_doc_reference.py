"""docs/gatewaysync.md names every field of the generated CRD schema, every annotation and every
condition type Stoker uses, so the reference cannot fall behind the model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from conftest import ROOT
from stoker_core.vocabulary import Annotation, Condition

DOC = (ROOT / "docs" / "gatewaysync.md").read_text()
CRD = ROOT / "src" / "stoker_k8s" / "crds" / "gatewaysync.yaml"


def leaves(node: dict[str, Any], path: str) -> Iterator[str]:
    """Dotted paths of the schema's leaf fields; list items as `[]`, map values as `<name>`."""
    if "properties" in node:
        for key, child in node["properties"].items():
            yield from leaves(child, f"{path}.{key}")
    elif "items" in node and "properties" in node["items"]:
        yield from leaves(node["items"], f"{path}[]")
    elif isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"].get(
        "properties"
    ):
        yield from leaves(node["additionalProperties"], f"{path}.<name>")
    else:
        yield path


def documented() -> set[str]:
    """Backticked paths, with a row's `[].x` tokens expanded onto that row's list fields."""
    names: set[str] = set()
    for line in DOC.splitlines():
        tokens = re.findall(r"`([^`]+)`", line)
        names.update(tokens)
        bases = [t for t in tokens if t.startswith(("spec.", "status."))]
        for token in tokens:
            if token.startswith("[]."):
                names.update(base + token for base in bases)
    return names


def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_every_spec_field_is_documented() -> None:
    fields = list(leaves(schema()["properties"]["spec"], "spec"))
    assert len(fields) > 50
    missing = [f for f in fields if f not in documented()]
    assert not missing, f"docs/gatewaysync.md does not describe {missing}"


def test_every_status_field_is_documented() -> None:
    top = schema()["properties"]["status"]["properties"]
    names = documented()
    missing = [k for k in top if not {f"status.{k}", f"status.{k}[]"} & names]
    assert not missing, f"docs/gatewaysync.md does not describe {missing}"


def test_every_annotation_and_condition_is_documented() -> None:
    names = documented()
    missing = [str(a) for a in Annotation if str(a) not in names]
    missing += [str(c) for c in Condition if str(c) not in names]
    assert not missing, f"docs/gatewaysync.md does not describe {missing}"
