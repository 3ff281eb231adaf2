"""Which documents of a manifest file are GatewaySyncs, which belong to other APIs, and which
look meant to be ours but are not (a misspelt kind, an unknown stoker.io kind).

`stoker validate` fails on the last group instead of skipping it: a CR that silently is not one
would never be applied, and no one would be told.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from stoker_core.vocabulary import API_GROUP, KIND

# A kind this close to GatewaySync (case ignored) is a typo, not another API's kind.
_NEAR = 2


class Verdict(enum.Enum):
    """What a document is, for the purpose of validating GatewaySyncs."""

    GATEWAYSYNC = "GatewaySync"
    OTHER = "other"  # another API's kind (Secret, ConfigMap, …): noted and skipped
    WRONG = "wrong"  # looks meant to be a GatewaySync but is not: an error


@attrs.frozen(slots=True)
class Kind:
    """A document's verdict, its kind as written, and what is wrong with its `kind` (WRONG)."""

    verdict: Verdict
    kind: str
    problem: str = ""


def classify(document: Any) -> Kind:
    """Classify one parsed YAML document by its apiVersion and kind."""
    if not isinstance(document, dict):
        return Kind(
            Verdict.WRONG, "", "is missing: the document is not a mapping (apiVersion, kind, …)"
        )
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        return Kind(Verdict.WRONG, "", f"is missing; a GatewaySync says kind: {KIND}")
    if kind == KIND:
        return Kind(Verdict.GATEWAYSYNC, kind)
    if _distance(kind.lower(), KIND.lower()) <= _NEAR:
        return Kind(Verdict.WRONG, kind, f'"{kind}" is unknown; did you mean {KIND}?')
    if isinstance(api_version, str) and api_version.partition("/")[0] == API_GROUP:
        return Kind(
            Verdict.WRONG,
            kind,
            f'"{kind}" is not a {API_GROUP} kind; the only one is {KIND}',
        )
    return Kind(Verdict.OTHER, kind)


def _distance(a: str, b: str) -> int:
    """Edit distance with transpositions, or _NEAR + 1 when it must exceed _NEAR (so the work
    stays bounded by len(b), whatever the input's length)."""
    if abs(len(a) - len(b)) > _NEAR:
        return _NEAR + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[-1]
