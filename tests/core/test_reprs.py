"""The shared `__repr__` of Stoker's attrs classes (stoker_core.reprs) prints, class by class,
the text attrs would generate: a profile's repr is hashed into the digests of a sync."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from typing import Any

import attrs
import pytest

import stoker_agent
import stoker_core
from core.helpers import context, gs_with
from stoker_core import profiles
from stoker_core.reprs import fields_repr


def shared_repr_classes() -> list[type]:
    """Every attrs class of stoker_core and stoker_agent that uses fields_repr."""
    found = []
    for package in (stoker_core, stoker_agent):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and value.__module__ == module.__name__
                    and attrs.has(value)
                    and value.__repr__ is fields_repr
                ):
                    found.append(value)
    return found


def as_attrs_would_print(cls: type, values: dict[str, Any]) -> str:
    """repr() of an instance with `values` of a class attrs builds with `cls`'s fields and its
    own generated __repr__."""
    fields = {
        a.name: attrs.field(repr=a.repr, init=a.init, default=None) for a in attrs.fields(cls)
    }
    reference = attrs.make_class(cls.__name__, fields, slots=True, frozen=True)
    reference.__qualname__ = cls.__qualname__
    return repr(filled(reference, values))


def filled(cls: type, values: dict[str, Any]) -> Any:
    """An instance of `cls` holding `values`, made without its __init__ (any value will do)."""
    instance = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(instance, name, value)
    return instance


SAMPLES: list[Any] = ["plain", 'it\'s "quoted"\n', "ünï\u202ecode", 0, -1.5, True, None]
SAMPLES += [(), ("a",), {"k": "v"}, {"a": [1, {"b": None}]}, frozenset(), b"\x00bytes"]


def test_the_model_and_the_sync_path_use_the_shared_repr() -> None:
    names = {cls.__qualname__ for cls in shared_repr_classes()}
    assert {"GatewaySync", "Mapping", "Patch", "Profile", "RolloutStatus"} <= names


@pytest.mark.parametrize("cls", shared_repr_classes(), ids=lambda cls: cls.__qualname__)
def test_each_class_with_the_shared_repr_prints_what_attrs_would(cls: type) -> None:
    names = [a.name for a in attrs.fields(cls)]
    for shift in range(len(SAMPLES)):
        values = {n: SAMPLES[(i + shift) % len(SAMPLES)] for i, n in enumerate(names)}
        assert repr(filled(cls, values)) == as_attrs_would_print(cls, values)


def test_an_instance_inside_another_prints_as_attrs_would_print_it() -> None:
    gs = gs_with([{"source": "a", "destination": "b", "patches": [PATCH]}])
    profile = gs.spec.sync.profiles["default"]
    values = {a.name: getattr(profile, a.name) for a in attrs.fields(type(profile))}
    assert repr(profile) == as_attrs_would_print(type(profile), values)
    assert "patches=(Patch(file='x.json', set_={'k': 'v'}),)" in repr(profile)


def test_the_reprs_hashed_into_a_syncs_digests_are_what_they_were_before_the_shared_repr() -> None:
    gs = gs_with(
        [
            {"source": "a", "destination": "b", "template": True, "patches": [PATCH]},
            {"source": "c/d.json", "destination": "e.json", "type": "file"},
        ],
        vars={"site": "north"},
    )
    effective = profiles.resolve(gs.spec.sync, None)
    text = repr((effective, context(vars=effective.vars), gs))
    # With attrs' generated __repr__ on every class (commit fa933a1), this text hashed to:
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "b726ef4cabddd0995fb0b00d20429a7ca392598825e1520cd2713ea6dd2970a3"
    )


PATCH = {"file": "x.json", "set": {"k": "v"}}
