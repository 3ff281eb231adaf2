"""The shared `__eq__`, `__hash__` and `__repr__` of Stoker's attrs classes
(stoker_core.fieldwise) behave, class by class, as the ones attrs generates: the same equality,
a hash that agrees with it, and the same text (a profile's repr is hashed into a sync's
digests)."""

from __future__ import annotations

import hashlib
import importlib
import math
import pkgutil
import subprocess
import sys
from typing import Any

import attrs
import pytest

import stoker_agent
import stoker_core
from core.helpers import context, gs_with
from stoker_core import profiles
from stoker_core.fieldwise import FIELDWISE


def fieldwise_classes() -> list[type]:
    """Every attrs class of stoker_core and stoker_agent that uses FIELDWISE."""
    found = []
    for package in (stoker_core, stoker_agent):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and value.__module__ == module.__name__
                    and attrs.has(value)
                    and (value.__eq__, value.__hash__, value.__repr__) == FIELDWISE
                ):
                    found.append(value)
    return found


CLASSES = fieldwise_classes()


def as_attrs_builds(cls: type) -> type:
    """A class attrs builds, with its own generated methods, from `cls`'s fields."""
    fields = {
        a.name: attrs.field(repr=a.repr, eq=a.eq, hash=a.hash, init=a.init, default=None)
        for a in attrs.fields(cls)
    }
    reference = attrs.make_class(cls.__name__, fields, slots=True, frozen=True)
    reference.__qualname__ = cls.__qualname__
    return reference


def filled(cls: type, values: dict[str, Any]) -> Any:
    """An instance of `cls` holding `values`, made without its __init__ (any value will do)."""
    instance = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(instance, name, value)
    return instance


NAN = math.nan
SAMPLES: list[Any] = ["plain", 'it\'s "quoted"\n', "ünï\u202ecode", 0, -1.5, True, None, NAN]
SAMPLES += [(), ("a",), {"k": "v"}, {"a": [1, {"b": None}]}, frozenset(), b"\x00bytes", 1.0]


def samples(names: list[str]) -> list[dict[str, Any]]:
    """Field values: every sample in every field, in turn."""
    return [
        {n: SAMPLES[(i + shift) % len(SAMPLES)] for i, n in enumerate(names)}
        for shift in range(len(SAMPLES))
    ]


def hashed(instance: Any) -> Any:
    try:
        return hash(instance)
    except TypeError:
        return TypeError


def test_the_model_uses_the_fieldwise_methods() -> None:
    names = {cls.__qualname__ for cls in CLASSES}
    assert {"GatewaySync", "Mapping", "Patch", "Profile", "RolloutStatus"} <= names


COMPILED = """
import linecache, stoker_core.model, stoker_core.status
scripts = [lines for name, (_, _, lines, _) in linecache.cache.items()
           if name.startswith("<attrs generated") and " stoker_core." in name]
print(sum(line.startswith(("def __eq__", "def __hash__", "def __repr__"))
          for lines in scripts for line in lines))
"""


def test_importing_the_model_compiles_no_eq_hash_or_repr_of_its_own() -> None:
    # attrs keeps the source of each method it compiles in linecache: count them in a fresh
    # process (here the model is long imported). Before stoker_core.fieldwise: 3 a class.
    done = subprocess.run([sys.executable, "-c", COMPILED], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 0


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
def test_each_class_prints_what_attrs_would(cls: type) -> None:
    reference = as_attrs_builds(cls)
    for values in samples([a.name for a in attrs.fields(cls)]):
        assert repr(filled(cls, values)) == repr(filled(reference, values))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
def test_each_class_is_equal_where_attrs_says_equal_and_hashes_alike(cls: type) -> None:
    reference = as_attrs_builds(cls)
    cases = samples([a.name for a in attrs.fields(cls)])
    for left in cases:
        for right in [*cases[:3], dict(left)]:
            ours = filled(cls, left) == filled(cls, right)
            theirs = filled(reference, left) == filled(reference, right)
            assert (ours, filled(cls, left) != filled(cls, right)) == (theirs, not theirs)
        same = (filled(cls, left), filled(cls, dict(left)))
        if same[0] == same[1]:
            assert hashed(same[0]) == hashed(same[1])
        assert (hashed(same[0]) is TypeError) == (hashed(filled(reference, left)) is TypeError)
        assert filled(cls, left) != filled(reference, left)  # another class is never equal
        ignored = {a.name: object() for a in attrs.fields(cls) if not a.eq}
        if ignored and hashed(same[0]) is not TypeError:  # fields equality does not compare
            unlike = filled(cls, {**left, **ignored})
            assert (unlike == same[0], hash(unlike)) == (same[0] == same[1], hash(same[0]))


def test_an_instance_inside_another_prints_and_compares_as_attrs_would() -> None:
    gs = gs_with([{"source": "a", "destination": "b", "patches": [PATCH]}])
    profile = gs.spec.sync.profiles["default"]
    values = {a.name: getattr(profile, a.name) for a in attrs.fields(type(profile))}
    assert repr(profile) == repr(filled(as_attrs_builds(type(profile)), values))
    assert "patches=(Patch(file='x.json', set_={'k': 'v'}),)" in repr(profile)
    again = gs_with([{"source": "a", "destination": "b", "patches": [PATCH]}])
    other = gs_with([{"source": "a", "destination": "c", "patches": [PATCH]}])
    assert again == gs
    assert other != gs
    assert hash(again.spec.git) == hash(gs.spec.git)


def test_the_reprs_hashed_into_a_syncs_digests_are_what_they_were_before() -> None:
    gs = gs_with(
        [
            {"source": "a", "destination": "b", "template": True, "patches": [PATCH]},
            {"source": "c/d.json", "destination": "e.json", "type": "file"},
        ],
        vars={"site": "north"},
    )
    effective = profiles.resolve(gs.spec.sync, None)
    text = repr((effective, context(vars=effective.vars), gs))
    # With attrs' generated methods on every class (commit fa933a1), this text hashed to:
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "b726ef4cabddd0995fb0b00d20429a7ca392598825e1520cd2713ea6dd2970a3"
    )


PATCH = {"file": "x.json", "set": {"k": "v"}}
