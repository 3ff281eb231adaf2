"""The GatewaySync CRD, generated from the model: one source of field names, types, defaults.

Every attrs field becomes an OpenAPI v3 property with its wire name, type, default, enum and
the constraints in its metadata. An object field with a default is itself defaulted to `{}`,
so the API server fills nested defaults even when the user omitted the whole object (the Go
original relied on a side effect of its first Update for that).
"""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any

import attrs

from stoker_core import model
from stoker_core.parsing import CONVERTER, wire_name
from stoker_core.vocabulary import API_GROUP, API_VERSION, KIND, PLURAL, SHORT_NAME

_CONSTRAINTS = (
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
_PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _type_schema(tp: Any) -> dict[str, Any]:
    if tp == int | str:  # a count or a percent, as Kubernetes' IntOrString
        return {"x-kubernetes-int-or-string": True}
    tp, _ = _optional(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer", "format": "int64"}
    if tp is float:
        return {"type": "number"}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(typing.get_args(tp)[0])}
    if origin is dict:
        value = typing.get_args(tp)[1]
        return (
            _PRESERVE
            if value is Any
            else {"type": "object", "additionalProperties": _type_schema(value)}
        )
    if isinstance(tp, type) and attrs.has(tp):
        return object_schema(tp)
    return dict(_PRESERVE)


def _default(field: attrs.Attribute[Any]) -> Any:
    if field.default is attrs.NOTHING:
        return attrs.NOTHING
    factory = getattr(field.default, "factory", None)
    value = factory() if callable(factory) else field.default
    if value is None:
        return attrs.NOTHING
    if attrs.has(type(value)):
        return {}  # the object's own properties carry their defaults
    return json.loads(json.dumps(CONVERTER.unstructure(value)))  # enums become plain strings


def _constrain(prop: dict[str, Any], metadata: typing.Mapping[str, Any]) -> None:
    """Copy a field's constraints into its schema: its own, its items' and its map values'."""
    for name in _CONSTRAINTS:
        if name in metadata:
            prop[name] = metadata[name]
    if "items" in metadata:
        prop["items"] = {**prop["items"], **metadata["items"]}
    if "values" in metadata:
        prop["additionalProperties"] = {**prop["additionalProperties"], **metadata["values"]}
    for rule in metadata.get("rules", ()):  # CEL rules the OpenAPI keywords cannot say
        prop.setdefault("x-kubernetes-validations", []).append(rule)
    if "keyMaxLength" in metadata and metadata.get("keyRule", True):  # OpenAPI cannot bound
        # map keys; a CEL rule can
        longest = metadata["keyMaxLength"]
        prop.setdefault("x-kubernetes-validations", []).append(
            {
                "rule": f"self.all(k, size(k) <= {longest})",
                "message": f"every key must be at most {longest} characters long",
            }
        )


def object_schema(cls: type) -> dict[str, Any]:
    """The structural schema of an attrs class (wire names, defaults, constraints)."""
    hints = typing.get_type_hints(cls, vars(model))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        if field.metadata.get("passthrough"):
            continue
        prop = dict(_type_schema(hints[field.name]))
        _constrain(prop, field.metadata)
        if "doc" in field.metadata:
            prop["description"] = field.metadata["doc"]
        default = _default(field)
        if default is not attrs.NOTHING:
            prop["default"] = default
        elif field.default is attrs.NOTHING:
            required.append(wire_name(field))
        properties[wire_name(field)] = prop
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    if cls.__doc__:
        out["description"] = cls.__doc__.strip().splitlines()[0]
    return out


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ref", "type": "string", "jsonPath": ".status.lastSyncRef"},
    {
        "name": "Gateways",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="AllGatewaysSynced")].message',
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Status",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    },
    {
        "name": "Restart",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="RestartRequired")].status',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Commit", "type": "string", "jsonPath": ".status.lastSyncCommitShort", "priority": 1},
    {"name": "Profiles", "type": "integer", "jsonPath": ".status.profileCount", "priority": 1},
    {"name": "Last Sync", "type": "date", "jsonPath": ".status.lastSyncTime", "priority": 1},
]


def crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition for GatewaySync."""
    spec = object_schema(model.GatewaySyncSpec)
    status = object_schema(model.GatewaySyncStatus)
    status.pop("required", None)
    root = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }
