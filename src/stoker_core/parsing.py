"""Building the model from the dict a YAML file or the API server gives, and back.

Structure errors (wrong types, unknown fields, missing fields) are collected by cattrs and
reported with the wire path (`spec.sync.profiles.site.mappings[2].destination`), all at once.
"""

from __future__ import annotations

import enum
import functools
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, mapping_structure_factory
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from stoker_core import model
from stoker_core.errors import InvalidInput, Problem

T = TypeVar("T")


def wire_name(field: attrs.Attribute[Any]) -> str:
    """Return the wire (camelCase) name of an attrs field."""
    explicit = field.metadata.get("key")
    if explicit:
        return str(explicit)
    head, *rest = field.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _strict(kind: type, label: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if type(value) is not kind:
            hint = " (quote it to make it a string)" if kind is str and value is not None else ""
            raise ValueError(f"must be {label}, got {_describe(value)}{hint}")
        return value

    return structure


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f'the string "{value[:60]}"'
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _int_or_string(value: Any, _: Any) -> Any:
    """A count or a percent (Kubernetes' IntOrString): a whole number or a string."""
    if type(value) is int or type(value) is str:
        return value
    raise ValueError(f"must be a whole number or a string, got {_describe(value)}")


def _enum_hook(cls: type[enum.Enum]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in cls)
            raise ValueError(f"must be one of {choices}, got {_describe(value)}") from None

    return structure


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp)


def _requiring(
    kind: type | tuple[type, ...], label: str, inner: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    """Wrap a structure hook so a value of the wrong shape gets a plain-words error."""

    def structure(value: Any, tp: Any) -> Any:
        if not isinstance(value, kind):
            raise ValueError(f"must be {label}, got {_describe(value)}")
        return inner(value, tp)

    return structure


def _make_converter(*, strict: bool = True, detailed: bool = False) -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=strict, detailed_validation=detailed)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(bool, _strict(bool, "true or false"))
    converter.register_structure_hook(int, _strict(int, "a whole number"))
    converter.register_structure_hook_factory(lambda t: t == int | str, lambda _: _int_or_string)
    enums = (model.MappingType, model.DesignerPolicy, model.DriftPolicy)
    for enum_cls in (*enums, model.OnFailure, model.Approval):
        converter.register_structure_hook(enum_cls, _enum_hook(enum_cls))

    def structure_factory(cls: type) -> Any:
        overrides = {f.name: override(rename=wire_name(f)) for f in attrs.fields(cls)}
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cls,
            converter,
            _cattrs_forbid_extra_keys=strict,
            **overrides,  # type: ignore[arg-type]
        )
        return _requiring(Mapping, "an object", inner)

    def unstructure_factory(cls: type) -> Any:
        overrides = {f.name: override(rename=wire_name(f)) for f in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, converter, **overrides)  # type: ignore[arg-type]

    converter.register_structure_hook_factory(attrs.has, structure_factory)
    converter.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    converter.register_structure_hook_factory(
        lambda t: _origin(t) is dict,
        lambda t: _requiring(Mapping, "an object", mapping_structure_factory(t, converter)),
    )
    converter.register_structure_hook_factory(
        lambda t: _origin(t) is tuple,
        lambda t: _requiring(list, "a list", homogenous_tuple_structure_factory(t, converter)),
    )
    converter.register_structure_hook(model.ObjectMeta, _structure_meta)
    converter.register_unstructure_hook(model.ObjectMeta, _unstructure_meta)
    return converter


_META_FIELDS = ("name", "namespace", "labels", "annotations", "generation")


def _structure_meta(value: Any, _: Any) -> model.ObjectMeta:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be an object, got {_describe(value)}")
    known = {k: value[k] for k in _META_FIELDS if value.get(k) is not None}
    extra = {k: v for k, v in value.items() if k not in _META_FIELDS}
    return model.ObjectMeta(
        name=str(known.get("name", "")),
        namespace=str(known.get("namespace", "")),
        labels={str(k): str(v) for k, v in dict(known.get("labels", {})).items()},
        annotations={str(k): str(v) for k, v in dict(known.get("annotations", {})).items()},
        generation=int(known.get("generation", 0)),
        extra=extra,
    )


def _unstructure_meta(meta: model.ObjectMeta) -> dict[str, Any]:
    out: dict[str, Any] = dict(meta.extra)
    for name in _META_FIELDS:
        value = getattr(meta, name)
        if value:
            out[name] = dict(value) if isinstance(value, Mapping) else value
    return out


# Valid documents are built by a converter whose generated code stops at the first error: half
# the code of one that collects every error with its path, so the first GatewaySync a process
# reads costs ~2 ms less (issue 18). A document it refuses is built again by the detailed one,
# made on first use, whose errors name every problem.
CONVERTER = _make_converter()


@functools.cache
def _converter(*, lenient: bool, detailed: bool) -> cattrs.Converter:
    """The converters made on first use. Lenient ones are for objects the API server has
    already checked against its CRD: a field of a newer release (the CRD upgraded before this
    component) is ignored rather than hiding the whole object; a sync from a file never needs
    them (issue 18)."""
    return _make_converter(strict=not lenient, detailed=detailed)


# --- turning cattrs' attribute-name paths into wire paths -------------------------------------

_SEGMENT = re.compile(r"\.(\w+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


def _unwrap(tp: Any) -> Any:
    """Strip Optional / unions with None down to the concrete type."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _wire_path(root: type, path: str) -> str:
    """Translate `$.spec.sync.profiles['a'].mappings[0].allow_empty` into wire names."""
    tp: Any = root
    out: list[str] = []
    for attr, index, dict_key in _SEGMENT.findall(path[1:]):
        tp = _unwrap(tp)
        if attr:
            field = _field_by_name(tp, attr)
            name = wire_name(field) if field is not None else attr
            out.append(("." if out else "") + name)
            tp = field.type if field is not None else Any
        elif index:
            out.append(f"[{index}]")
            args = typing.get_args(tp)
            tp = args[0] if args else Any
        else:
            out.append(("." if out else "") + dict_key)
            args = typing.get_args(tp)
            tp = args[1] if len(args) == 2 else Any
    return "".join(out)


def _field_by_name(tp: Any, name: str) -> attrs.Attribute[Any] | None:
    if not (isinstance(tp, type) and attrs.has(tp)):
        return None
    resolved = attrs.resolve_types(tp, globalns=vars(model))
    return next((f for f in attrs.fields(resolved) if f.name == name), None)


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        names = ", ".join(sorted(exc.extra_fields))
        return f"\x00{names}"
    if isinstance(exc, KeyError):
        return "is required"
    if isinstance(exc, ValueError | TypeError):
        text = str(exc)
        if text.startswith("must be"):
            return text
        return f"has the wrong type ({text})"
    return str(exc)


def _problems_from(error: Exception, root: type) -> list[Problem]:
    problems: list[Problem] = []
    for line in cattrs.transform_error(error, path="$", format_exception=_format):
        message, _, path = line.rpartition(" @ ")
        where = _wire_path(root, path)
        if message.startswith("\x00"):
            for extra in message[1:].split(", "):
                problems.append(
                    Problem(
                        field=f"{where}.{extra}" if where else extra,
                        message="unknown field; check its spelling and indentation "
                        "(the API server would drop it silently)",
                    )
                )
        else:
            problems.append(Problem(field=where or "(document)", message=message))
    return problems


def structure(data: Any, cls: type[T], *, lenient: bool = False) -> T:
    """Build `cls` from plain data; raise InvalidInput listing every structural problem
    (unknown fields included, unless `lenient`)."""
    if not isinstance(data, Mapping):
        raise InvalidInput.one(f"must be an object, got {_describe(data)}", field="(document)")
    try:
        fast = _converter(lenient=True, detailed=False) if lenient else CONVERTER
        return fast.structure(data, cls)
    except Exception:  # refused: built again below, by the converter that says why
        pass
    try:
        return _converter(lenient=lenient, detailed=True).structure(data, cls)
    except Exception as e:  # cattrs groups every failure into one exception group
        if isinstance(e, cattrs.BaseValidationError | ValueError | TypeError | KeyError):
            raise InvalidInput(_problems_from(e, cls)) from None
        raise


def unstructure(obj: Any) -> Any:
    """Return plain data (wire names) for a model object."""
    return CONVERTER.unstructure(obj)
