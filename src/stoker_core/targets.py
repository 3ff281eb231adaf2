"""The gateways a preview plans for, when no cluster says who they are (a CI job).

From repeated `--gateway NAME[:PROFILE]` flags, or from a small YAML file checked in beside the
GatewaySync (docs/sync.md, "Pull-request previews"):

    gateways:
      - name: ignition-blue      # {{.GatewayName}}
        profile: blue            # default: the profile named "default"
        podName: ignition-blue-0 # optional: {{.PodName}}, PodOrdinal
        namespace: plant         # optional: {{.Namespace}} (default: the CR's)
        labels: {site: north}    # optional: {{.Labels.KEY}}
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from stoker_core.errors import InvalidInput

MAX_TARGETS = 256
MAX_TEXT = 253  # a Kubernetes name's length
_KEYS = {"name", "profile", "podName", "namespace", "labels"}


@attrs.frozen(slots=True, kw_only=True)
class Target:
    """One gateway to plan for: its identity as templates see it, and its profile."""

    name: str
    profile: str | None = None
    pod_name: str = ""
    namespace: str = ""
    labels: Mapping[str, str] = attrs.field(factory=dict)


def from_flag(value: str, labels: Mapping[str, str]) -> Target:
    """`NAME` or `NAME:PROFILE` (a gateway name holds no colon); `labels` apply to each."""
    name, _, profile = value.partition(":")
    if not name or len(value) > 2 * MAX_TEXT:
        raise ValueError(f'"{value}" is not NAME or NAME:PROFILE')
    return Target(name=name, profile=profile or None, labels=dict(labels))


def _text(item: Mapping[str, object], key: str, where: str, required: bool = False) -> str:
    value = item.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT or (required and not value):
        need = "a non-empty string" if required else "a string"
        raise InvalidInput.one(f"must be {need} of at most {MAX_TEXT} characters", field=where)
    return value


def from_document(data: object, *, path: str) -> list[Target]:
    """The targets a gateways file lists; every problem names the file and the field."""
    items = data.get("gateways") if isinstance(data, Mapping) else None
    if not isinstance(items, list) or not items or len(items) > MAX_TARGETS:
        raise InvalidInput.one(
            f"a gateways file holds `gateways:`, a list of 1 to {MAX_TARGETS} gateways "
            "(name, profile, podName, namespace, labels)",
            path=path,
        )
    targets = []
    for i, item in enumerate(items):
        where = f"{path}: gateways[{i}]"
        if not isinstance(item, Mapping) or set(item) - _KEYS:
            unknown = sorted(set(item) - _KEYS) if isinstance(item, Mapping) else []
            raise InvalidInput.one(
                f"must be a map of {', '.join(sorted(_KEYS))}"
                + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else ""),
                field=where,
                path=path,
            )
        labels = item.get("labels", {})
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise InvalidInput.one("must map strings to strings", field=f"{where}.labels")
        profile = _text(item, "profile", f"{where}.profile")
        targets.append(
            Target(
                name=_text(item, "name", f"{where}.name", required=True),
                profile=profile or None,
                pod_name=_text(item, "podName", f"{where}.podName"),
                namespace=_text(item, "namespace", f"{where}.namespace"),
                labels=dict(labels),
            )
        )
    names = [t.name for t in targets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput.one(f"gateway names must be unique: {', '.join(twice)}", path=path)
    return targets
