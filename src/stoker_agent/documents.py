"""Reading GatewaySync manifests from YAML files (one or many documents per file)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import attrs
import yaml

from stoker_core.errors import InvalidInput, Problem
from stoker_core.fieldwise import FIELDWISE
from stoker_core.vocabulary import KIND

STDIN = "-"
# A GatewaySync is a few kilobytes and the API server stores at most 1.5 MiB per object; a
# larger file is a mistake (or hostile), refused before YAML parsing starts.
MAX_BYTES = 4 * 1024 * 1024
TOO_DEEP = "nests lists or mappings too deeply (hundreds of levels): no GatewaySync does"


@attrs.frozen(slots=True)
class Document:
    """One YAML document of a file, with where it came from."""

    __eq__, __hash__, __repr__ = FIELDWISE

    file: str
    index: int
    data: Any

    @property
    def where(self) -> str:
        """Human name: `file` or `file (document 2)`."""
        return f"{shown(self.file)} (document {self.index + 1})"

    @property
    def is_gatewaysync(self) -> bool:
        """Tell whether the document declares kind GatewaySync."""
        return isinstance(self.data, dict) and self.data.get("kind") == KIND

    @property
    def name(self) -> str:
        """metadata.name, or empty."""
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def shown(path: str) -> str:
    """How a file is named in messages (`-` is standard input)."""
    return "<stdin>" if path == STDIN else path


def _read_text(path: str) -> str:
    try:
        if path == STDIN:
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
    except OSError as e:
        raise InvalidInput.one(f"cannot read: {e.strerror}", path=shown(path)) from None
    if len(data) > MAX_BYTES:
        raise InvalidInput.one(
            f"is larger than {MAX_BYTES // 1024 // 1024} MiB; is it really a manifest?",
            path=shown(path),
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput.one("is not UTF-8 text", path=shown(path)) from None


def read_documents(path: str) -> list[Document]:
    """Parse every document of a YAML file (`-`: standard input); raise InvalidInput naming the
    file and line."""
    text = _read_text(path)
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise InvalidInput.one(f"invalid YAML: {where}{problem}", path=shown(path)) from None
    except RecursionError:  # PyYAML recurses once per level: a hostile file can nest deeper
        raise InvalidInput.one(TOO_DEEP, path=shown(path)) from None
    return [
        Document(path, i, item) for i, d in enumerate(loaded) if d is not None for item in _items(d)
    ]


def _items(document: Any) -> list[Any]:
    """A `kind: List` (what `kubectl get … -o yaml` prints) stands for its items."""
    if isinstance(document, dict) and document.get("kind") == "List":
        items = document.get("items")
        return list(items) if isinstance(items, list) else []
    return [document]


def gatewaysyncs(paths: list[str]) -> Iterator[Document]:
    """Yield the GatewaySync documents of several files."""
    for path in paths:
        yield from (d for d in read_documents(path) if d.is_gatewaysync)


def pick(path: str, name: str | None) -> Document:
    """Return the one GatewaySync in `path` (or the one named `name`)."""
    documents = read_documents(path)
    found = [d for d in documents if d.is_gatewaysync]
    if name:
        found = [d for d in found if d.name == name]
    if len(found) == 1:
        return found[0]
    if not found:
        from stoker_core.kinds import Verdict, classify  # for the hint: a refusal only

        what = f'named "{name}"' if name else ""
        wrong = [(d, classify(d.data)) for d in documents]
        hints = [f"; {d.where}: kind {k.problem}" for d, k in wrong if k.verdict is Verdict.WRONG]
        raise InvalidInput.one(
            f"holds no GatewaySync {what}".strip() + "".join(hints[:1]), path=path
        )
    names = ", ".join(d.name or "(unnamed)" for d in found)
    raise InvalidInput(
        [Problem(path=path, message=f"holds several GatewaySyncs ({names}); choose with --cr-name")]
    )
