"""JSON from outside, parsed with one rule for nesting: too deep is malformed input, not a crash.

`json.loads` recurses once per nested array or object and raises RecursionError near Python's
stack limit (hundreds of levels); a file the gateway can write, a ConfigMap or a payload can nest
that deep. Every reader of such text catches ValueError already, so too deep becomes one.
"""

from __future__ import annotations

import json
from typing import Any


class TooDeep(ValueError):
    """JSON nested deeper than can be parsed."""


def loads(text: str | bytes) -> Any:
    """`json.loads`, nesting too deep for Python's stack raised as TooDeep (a ValueError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise TooDeep("JSON nested too deeply (hundreds of levels)") from None
