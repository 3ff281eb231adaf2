"""One `__repr__` for Stoker's attrs classes, in place of the one attrs compiles for each.

attrs writes each class's `__repr__` as source and compiles it when the class is built: about
0.13 ms a class, over 10 ms of a cold `stoker sync` for the classes on its path (issue 18). A
class that says `__repr__ = fields_repr` gets the same text from this one function (attrs sees
the class's own `__repr__` and makes none). The text matters: a profile's repr is hashed into
the digests of a sync (`standalone.digest`, `recorded.inputs_digest`), so it must not change;
tests/core/test_reprs.py compares it with what attrs generates, class by class. (attrs' guard
against an instance shown inside itself is left out: Stoker's frozen instances never hold one.)
"""

from __future__ import annotations

from typing import Any

import attrs


def fields_repr(self: Any) -> str:
    """`Name(field=value, ...)`: the text attrs' generated `__repr__` gives."""
    shown = ", ".join(
        f"{a.name}={_shown(a.repr, getattr(self, a.name, attrs.NOTHING))}"
        for a in self.__attrs_attrs__
        if a.repr is not False
    )
    return f"{self.__class__.__qualname__.rsplit('>.', 1)[-1]}({shown})"


def _shown(how: Any, value: Any) -> str:
    return repr(value) if how is True else str(how(value))
