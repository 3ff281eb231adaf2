"""Secret values never to show, and their masking in text and in JSON-like data.

Its own module, not in stoker_core.diffs with the diffs that mask with it: every sync holds a
Secrets, and only a preview diffs (a sync's start-up does not build diffs' classes, issue 18).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from stoker_core.fieldwise import FIELDWISE
from stoker_core.redaction import MIN_SECRET_LENGTH


@attrs.frozen(slots=True, kw_only=True)
class Secrets:
    """Values never to show: named ones (a variable: shown as `<secret NAME>`) and anonymous
    ones (a token registered by the process: shown as `***`)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    named: Mapping[str, str] = attrs.field(factory=dict)
    anonymous: tuple[str, ...] = ()

    def replacements(self) -> list[tuple[str, str]]:
        """(value as it may appear, what to show), longest first so no mask leaves a tail."""
        pairs: dict[str, str] = {}
        for label, value in [(f"<secret {n}>", v) for n, v in self.named.items()] + [
            ("***", v) for v in self.anonymous
        ]:
            for form in _forms(value):
                if len(form) >= MIN_SECRET_LENGTH:
                    pairs.setdefault(form, label)
        return sorted(pairs.items(), key=lambda p: len(p[0]), reverse=True)

    def mask(self, text: str) -> str:
        """Return `text` with every secret value (in every form) replaced by its label."""
        return _masked(text, self.replacements())

    def mask_all(self, data: Any) -> Any:
        """Return a JSON-like value with every string in it masked (keys included)."""
        pairs = self.replacements()
        if not pairs:
            return data

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                return _masked(value, pairs)
            if isinstance(value, dict):
                return {_masked(k, pairs): walk(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [walk(v) for v in value]
            return value

        return walk(data)


def _masked(text: str, pairs: list[tuple[str, str]]) -> str:
    for value, label in pairs:
        if value in text:
            text = text.replace(value, label)
    return text


def _forms(value: str) -> Iterable[str]:
    yield value
    yield value.strip()
    yield json.dumps(value, ensure_ascii=False)[1:-1]
    yield json.dumps(value)[1:-1]
