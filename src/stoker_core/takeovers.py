"""Warnings about directory mappings that take over a collection the gateway owns.

A directory mapping owns its whole subtree (the original's manifests rely on it), so a mapping onto
`config/resources/core`, or onto a folder above it such as `config/`, deletes every gateway-made
file there that Git lacks: security properties, user sources, the gateway's own settings. That
stays allowed; `stoker validate` and `stoker plan` say so, naming the files when they know them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import attrs

from stoker_core import model
from stoker_core.desired import DesiredTree
from stoker_core.manifest import Manifest
from stoker_core.paths import GATEWAY_COLLECTIONS, PathEscape, is_under, normalize
from stoker_core.plans import SyncPlan

SHOWN = 10  # file names listed in one warning; the rest are counted


@attrs.frozen(slots=True, kw_only=True)
class Takeover:
    """A directory mapping whose destination holds a whole gateway-owned collection."""

    mapping: str  # where the mapping is, e.g. "spec.sync.profiles.blue.mappings[3]"
    destination: str
    collection: str
    deletes: tuple[str, ...] | None = None  # gateway-made files a sync would delete; None: unknown

    def message(self) -> str:
        """One sentence a user can act on."""
        where = self.destination or "the data directory itself"
        text = (
            f'{self.mapping} maps a directory onto "{where}", so it owns {self.collection}, the '
            "collection the gateway itself writes (security properties, user sources, settings "
            "made in its web interface): a sync deletes every file there that Git does not hold "
            "(API tokens excepted)"
        )
        if self.deletes:
            names = ", ".join(self.deletes[:SHOWN])
            more = len(self.deletes) - SHOWN
            text += f"; this sync would delete {len(self.deletes)} gateway-made file(s): {names}"
            text += f" and {more} more" if more > 0 else ""
        elif self.deletes is not None:
            text += "; this data directory has no such file now"
        return (
            text + ". Keep Git-managed config in config/resources/external (or a deployment-mode "
            "collection such as config/resources/dev) and leave core to the gateway"
        )

    def to_json(self) -> dict[str, object]:
        """The warning as `-o json` carries it."""
        out: dict[str, object] = {
            "mapping": self.mapping,
            "destination": self.destination,
            "collection": self.collection,
            "message": self.message(),
        }
        if self.deletes is not None:
            out["deletes"] = list(self.deletes)
        return out


def owned_collections(destination: str) -> list[str]:
    """The gateway-owned collections a directory mapping onto `destination` owns whole."""
    return [c for c in GATEWAY_COLLECTIONS if is_under(c, destination)]


def in_profiles(spec: model.SyncSpec) -> Iterator[Takeover]:
    """Takeovers in every profile of a GatewaySync, judged from its text alone (for validate).

    A destination holding a template action is judged only once rendered, by `stoker plan`.
    """
    for name, profile in spec.profiles.items():
        for i, mapping in enumerate(profile.mappings):
            if mapping.type is model.MappingType.FILE or "{{" in mapping.destination:
                continue
            try:
                dest = normalize(mapping.destination)
            except PathEscape:
                continue  # validation reports it
            for collection in owned_collections(dest):
                yield Takeover(
                    mapping=f"spec.sync.profiles.{name}.mappings[{i}]",
                    destination=dest,
                    collection=collection,
                )


def in_plan(
    desired: DesiredTree, plan: SyncPlan, manifest: Manifest | None, profile: str
) -> list[Takeover]:
    """Takeovers among a plan's directory roots, each naming the gateway-made files (those
    Stoker never wrote) that the plan deletes inside the collection."""
    recorded = manifest.records if manifest is not None else {}
    deleted = [p for p in plan.deleted if p not in recorded]
    found: list[Takeover] = []
    for root in desired.roots:
        if root.kind is not model.MappingType.DIR:
            continue
        for collection in owned_collections(root.path):
            found.append(
                Takeover(
                    mapping=f"spec.sync.profiles.{profile}.mappings[{root.mapping}]",
                    destination=root.path,
                    collection=collection,
                    deletes=tuple(_inside(deleted, collection)),
                )
            )
    return _one_per_collection(found)


def _inside(paths: Iterable[str], root: str) -> Iterator[str]:
    return (p for p in paths if is_under(p, root))


def _one_per_collection(found: Sequence[Takeover]) -> list[Takeover]:
    """Several mappings onto one collection (an overlay) make one warning, the first's."""
    seen: dict[str, Takeover] = {}
    for takeover in found:
        seen.setdefault(takeover.collection, takeover)
    return list(seen.values())
