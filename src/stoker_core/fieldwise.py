"""`__eq__`, `__hash__` and `__repr__` for Stoker's attrs classes, written once, field by field.

attrs writes these three methods of each class as source and compiles them when the class is
built: about 0.3 ms a class, 5 ms of importing the GatewaySync model alone, which every cold
`stoker sync` pays (issue 18). A class that says `__eq__, __hash__, __repr__ = FIELDWISE` gets
them from these functions instead (attrs sees the class's own methods and makes none), with the
same results: equal when attrs' method says equal, and the same text. The text matters: a
profile's repr is hashed into the digests of a sync (`standalone.digest`,
`recorded.inputs_digest`). tests/core/test_fieldwise.py compares all three with what attrs
generates, class by class. (attrs' guard against an instance shown inside itself is left out:
Stoker's frozen instances never hold one.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs


def fields_eq(self: Any, other: object) -> Any:
    """attrs' `__eq__`: same class, then each compared field equal, in order (the first
    unequal comparison's result is returned, as attrs' `a == b and c == d` does)."""
    fields: Any = self.__attrs_attrs__
    if other.__class__ is not self.__class__:
        return NotImplemented
    result: Any = True
    for a in fields:
        if a.eq:
            mine, theirs = getattr(self, a.name), getattr(other, a.name)
            key = a.eq_key
            result = key(mine) == key(theirs) if key else mine == theirs
            if not result:
                return result
    return result


def fields_hash(self: Any) -> int:
    """attrs' `__hash__` for a frozen class: the class and the compared fields' values."""
    return hash(
        (
            self.__class__,
            *(
                a.eq_key(getattr(self, a.name)) if a.eq_key else getattr(self, a.name)
                for a in self.__attrs_attrs__
                if a.hash is True or (a.hash is None and a.eq is True)
            ),
        )
    )


def fields_repr(self: Any) -> str:
    """attrs' `__repr__`: `Name(field=value, ...)`, the same text."""
    shown = ", ".join(
        f"{a.name}={_shown(a.repr, getattr(self, a.name, attrs.NOTHING))}"
        for a in self.__attrs_attrs__
        if a.repr is not False
    )
    return f"{self.__class__.__qualname__.rsplit('>.', 1)[-1]}({shown})"


def _shown(how: Any, value: Any) -> str:
    return repr(value) if how is True else str(how(value))


FIELDWISE: tuple[Callable[[Any, object], bool], Callable[[Any], int], Callable[[Any], str]] = (
    fields_eq,
    fields_hash,
    fields_repr,
)
