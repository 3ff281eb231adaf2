"""Size bounds on a GatewaySync, checked the way the API server checks its CRD.

The bounds live once, in the model's field metadata (`maxLength`, `maxItems`, `maxProperties`,
`items`, `values`, `keyMaxLength`); the CRD generator turns them into the schema and this walk
turns them into problems that name the field and the bound, for the webhook, the controller
and `stoker validate`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from stoker_core.errors import Problem
from stoker_core.parsing import wire_name

_SHOWN = 40  # characters of an oversized map key shown in a message


def problems(value: Any, where: str) -> Iterator[Problem]:
    """Yield a problem for every bound that `value` (an attrs instance) or its parts break."""
    for field in attrs.fields(type(value)):
        part = getattr(value, field.name)
        if part is not None:
            yield from _check(part, f"{where}.{wire_name(field)}", field.metadata)


def _check(value: object, where: str, bounds: Mapping[str, Any]) -> Iterator[Problem]:
    if isinstance(value, str):
        yield from _over(where, len(value), bounds.get("maxLength"), "characters", "maxLength")
    elif isinstance(value, tuple):
        yield from _over(where, len(value), bounds.get("maxItems"), "items", "maxItems")
        for i, item in enumerate(value):
            yield from _check(item, f"{where}[{i}]", bounds.get("items", {}))
    elif isinstance(value, dict):
        yield from _over(where, len(value), bounds.get("maxProperties"), "entries", "maxProperties")
        yield from _keys(where, value, bounds.get("keyMaxLength"))
        for name, item in value.items():
            yield from _check(item, f"{where}.{name[:_SHOWN]}", bounds.get("values", {}))
    elif attrs.has(type(value)):
        yield from problems(value, where)


def _over(where: str, size: int, bound: int | None, unit: str, name: str) -> Iterator[Problem]:
    if bound is not None and size > bound:
        yield Problem(
            field=where, message=f"has {size:,} {unit}, over the limit of {bound:,} ({name})"
        )


def _keys(where: str, values: dict[str, Any], bound: int | None) -> Iterator[Problem]:
    for name in values:
        if bound is not None and len(name) > bound:
            yield Problem(
                field=where,
                message=f'key "{name[:_SHOWN]}…" has {len(name):,} characters, over the limit '
                f"of {bound:,} for a key",
            )
