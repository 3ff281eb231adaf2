"""Reading GatewaySync manifests from YAML files (one or many documents per file)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import yaml

from stoker_core.errors import InvalidInput, Problem
from stoker_core.vocabulary import KIND


@attrs.frozen(slots=True)
class Document:
    """One YAML document of a file, with where it came from."""

    file: str
    index: int
    data: Any

    @property
    def where(self) -> str:
        """Human name: `file` or `file (document 2)`."""
        return f"{self.file} (document {self.index + 1})"

    @property
    def is_gatewaysync(self) -> bool:
        """Tell whether the document declares kind GatewaySync."""
        return isinstance(self.data, dict) and self.data.get("kind") == KIND

    @property
    def name(self) -> str:
        """metadata.name, or empty."""
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def read_documents(path: str) -> list[Document]:
    """Parse every document of a YAML file; raise InvalidInput naming the file and line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as e:
        raise InvalidInput.one(f"cannot read: {e.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise InvalidInput.one("is not UTF-8 text", path=path) from None
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise InvalidInput.one(f"invalid YAML: {where}{problem}", path=path) from None
    return [Document(path, i, d) for i, d in enumerate(loaded) if d is not None]


def gatewaysyncs(paths: list[str]) -> Iterator[Document]:
    """Yield the GatewaySync documents of several files."""
    for path in paths:
        yield from (d for d in read_documents(path) if d.is_gatewaysync)


def pick(path: str, name: str | None) -> Document:
    """Return the one GatewaySync in `path` (or the one named `name`)."""
    found = [d for d in read_documents(path) if d.is_gatewaysync]
    if name:
        found = [d for d in found if d.name == name]
    if len(found) == 1:
        return found[0]
    if not found:
        what = f'named "{name}"' if name else ""
        raise InvalidInput.one(f"holds no GatewaySync {what}".strip(), path=path)
    names = ", ".join(d.name or "(unnamed)" for d in found)
    raise InvalidInput(
        [Problem(path=path, message=f"holds several GatewaySyncs ({names}); choose with --cr-name")]
    )
