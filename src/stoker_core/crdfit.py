"""Whether the installed GatewaySync CRD carries what this release needs: every field of the
CRD generated from the model (stoker_core.schema), its printer columns and its status
subresource. Helm never upgrades `crds/`, so after a chart upgrade the old CRD stays, and the
API server prunes every status field it does not know: the controller says so once, names the
fields and the command to upgrade, and writes only what the installed CRD keeps (a write of
pruned fields would differ from what is stored on every pass: a patch loop).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import attrs

from stoker_core.vocabulary import KIND

# The CRD as this release ships it; the same file is in the chart and the plain manifests.
UPGRADE = (
    "kubectl apply --server-side --force-conflicts -f adapters/helm/stoker/crds/gatewaysync.yaml"
)
_SKIPPED = ("apiVersion", "kind", "metadata")  # Kubernetes' own, never ours to check


@attrs.frozen(slots=True, kw_only=True)
class Gaps:
    """What the installed CRD lacks (nothing: all empty and `status_subresource` True)."""

    fields: tuple[str, ...] = ()  # "status.discoveredGateways[].targetCommit"
    columns: tuple[str, ...] = ()  # printer column names
    status_subresource: bool = True

    def __bool__(self) -> bool:
        return bool(self.fields or self.columns or not self.status_subresource)

    def message(self) -> str:
        """One sentence naming every gap and the command that closes them."""
        parts = []
        if self.fields:
            parts.append("fields " + ", ".join(self.fields))
        if self.columns:
            parts.append("printer columns " + ", ".join(self.columns))
        if not self.status_subresource:
            parts.append("the status subresource (no status is written until it exists)")
        return (
            f"the installed {KIND} CRD is older than this controller: it lacks "
            + "; ".join(parts)
            + f" (the API server drops what it does not know); upgrade it: {UPGRADE}"
        )


def paths(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every property path of an OpenAPI object schema: `a.b`, list items as `a[]`, map
    values as `a.*`."""
    for name, sub in (schema.get("properties") or {}).items():
        if not prefix and name in _SKIPPED:
            continue
        here = f"{prefix}.{name}" if prefix else name
        yield here
        yield from _below(sub, here)


def _below(schema: Mapping[str, Any], here: str) -> Iterator[str]:
    if "items" in schema:
        yield from _below(schema["items"], f"{here}[]")
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        yield from _below(extra, f"{here}.*")
    yield from paths(schema, here)


def gaps(
    wanted: Mapping[str, Any],
    schema: Mapping[str, Any],
    columns: Collection[str],
    status_subresource: bool,
) -> Gaps:
    """What the installed CRD (its object `schema`, printer `columns` and whether it has the
    status subresource) lacks of `wanted`, a CRD as stoker_core.schema.crd() makes it."""
    [version] = wanted["spec"]["versions"]
    have = set(paths(schema))
    missing = [p for p in paths(version["schema"]["openAPIV3Schema"]) if p not in have]
    # A field whose parent is missing too is named through its parent only.
    shown = [
        p
        for p in missing
        if not any(p.startswith(f"{q}.") or p.startswith(f"{q}[") for q in missing if q != p)
    ]
    return Gaps(
        fields=tuple(shown),
        columns=tuple(
            c["name"]
            for c in version.get("additionalPrinterColumns", [])
            if c["name"] not in columns
        ),
        status_subresource=status_subresource,
    )


def prune(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` with what `schema` does not know removed, as the API server prunes it (so what
    the controller remembers writing is what is stored)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict):
        known = schema.get("properties")
        extra = schema.get("additionalProperties")
        if known is None and isinstance(extra, Mapping):
            return {k: prune(v, extra) for k, v in value.items()}
        if known is None:
            return value  # not described in detail: kept as the API server keeps it
        return {k: prune(v, known[k]) for k, v in value.items() if k in known}
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [prune(v, schema["items"]) for v in value]
    return value
