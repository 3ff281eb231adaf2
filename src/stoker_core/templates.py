"""The subset of Go's text/template that Stoker users write, rendered without surprises.

Supported inside `{{ }}`: field access (`.GatewayName`, `.Vars.key`, `.Labels.site`), string
literals (`{{"{{"}}`), `index .Labels "app.kubernetes.io/name"`, comments `{{/* */}}` and the
`{{-`/`-}}` whitespace trims. Anything else (functions, pipelines, variables, `if`/`range`) is an
error that names the construct; nothing is ever passed through unrendered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache

import attrs

from stoker_core import jsontext
from stoker_core.errors import TemplateError
from stoker_core.fieldwise import FIELDWISE

MAX_TEMPLATE_BYTES = 16 * 1024 * 1024

# Inside an action, where a string literal may start and where "}}" may end it: an action may
# hold string literals containing "}}" (e.g. {{"}}"}}), so the scan skips over them.
_ACTION_STOP = re.compile(r'["`]|\}\}')
_QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"', re.DOTALL)  # one way to match each char: linear
_TRIM = " \t\r\n"
_FIELD = re.compile(r"\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`')
_INDEX = re.compile(
    r"index\s+(\.[A-Za-z_][A-Za-z0-9_.]*)((?:\s+(?:\"(?:[^\"\\\n]|\\.)*\"|`[^`]*`))+)"
)
_KEYWORDS = (
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
)


@attrs.frozen(slots=True, kw_only=True)
class TemplateContext:
    """The values a template can name, for one gateway at one commit."""

    __eq__, __hash__, __repr__ = FIELDWISE

    gateway_name: str
    pod_name: str = ""
    pod_ordinal: int = 0
    namespace: str = ""
    cr_name: str = ""
    ref: str = ""
    commit: str = ""
    labels: Mapping[str, str] = attrs.field(factory=dict)
    vars: Mapping[str, str] = attrs.field(factory=dict)

    def fields(self) -> dict[str, object]:
        """Return the template-visible names and their values."""
        return {
            "GatewayName": self.gateway_name,
            "PodName": self.pod_name,
            "PodOrdinal": self.pod_ordinal,
            "Namespace": self.namespace,
            "CRName": self.cr_name,
            "Ref": self.ref,
            "Commit": self.commit,
            "Labels": dict(self.labels),
            "Vars": dict(self.vars),
        }


@attrs.frozen(slots=True)
class _Text:
    __eq__, __hash__, __repr__ = FIELDWISE

    text: str


@attrs.frozen(slots=True)
class _Lookup:
    """A chain of names looked up from the context: `.Vars.key` is ("Vars", "key")."""

    __eq__, __hash__, __repr__ = FIELDWISE

    names: tuple[str, ...]
    source: str


_Node = _Text | _Lookup


def _unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    # Go and JSON share the escapes users write in templates (\n, \", \\, \u).
    try:
        value = jsontext.loads(literal)
    except ValueError as e:
        raise ValueError(f"bad string literal {literal}") from e
    assert isinstance(value, str)
    return value


def _compile_action(body: str) -> _Node | None:
    """Turn the inside of one `{{ }}` into a node; None for a comment."""
    inner = body.strip()
    if inner.startswith("/*") and inner.endswith("*/"):
        return None
    if _FIELD.fullmatch(inner):
        return _Lookup(tuple(inner[1:].split(".")), inner)
    if _STRING.fullmatch(inner):
        return _Text(_unquote(inner))
    index = _INDEX.fullmatch(inner)
    if index:
        keys = tuple(_unquote(k) for k in _STRING.findall(index.group(2)))
        return _Lookup((*index.group(1)[1:].split("."), *keys), inner)
    raise ValueError(_unsupported(inner))


def _unsupported(inner: str) -> str:
    word = inner.split(None, 1)[0] if inner else ""
    if not inner:
        return "empty action {{}}"
    if word in _KEYWORDS:
        return f'"{word}" is not supported; Stoker templates only substitute values'
    if "|" in inner:
        return f'pipelines are not supported: "{{{{{inner}}}}}"; write a single value'
    if word.startswith("$"):
        return f'variables are not supported: "{{{{{inner}}}}}"'
    if word == "index":
        return f'"{{{{{inner}}}}}": index takes a map and quoted keys, e.g. index .Labels "app"'
    if re.fullmatch(r"[A-Za-z_]\w*", word):
        return f'function "{word}" is not supported; use a value such as .Vars.name'
    return (
        f'cannot understand "{{{{{inner}}}}}"; write e.g. {{{{.GatewayName}}}} or {{{{.Vars.key}}}}'
    )


def _action_end(source: str, i: int) -> int:
    """The index of the "}}" closing the action whose body starts at i (one pass, no retries)."""
    while (stop := _ACTION_STOP.search(source, i)) is not None:
        if stop.group() == "}}":
            return stop.start()
        if stop.group() == "`":
            end = source.find("`", stop.end())
            if end < 0:
                raise ValueError("unterminated raw string (`) in an action")
            i = end + 1
        else:
            quoted = _QUOTED.match(source, stop.start())
            if quoted is None:
                raise ValueError('unterminated string literal (") in an action')
            i = quoted.end()
    raise ValueError('unclosed action: "{{" without a matching "}}"')


def _actions(source: str) -> Iterator[tuple[int, int, str, bool, bool]]:
    """Yield (start, end, body, trim before, trim after) for each `{{ }}` action, in order.

    Every character is read once, so a hostile template costs time linear in its size (the
    regex this replaces rescanned to the end of the text from every unclosed "{{").
    """
    pos = 0
    while (start := source.find("{{", pos)) >= 0:
        end = _action_end(source, start + 2)
        body = source[start + 2 : end]
        trim_before = body[:1] == "-" and body[1:2] != "" and body[1] in _TRIM
        if trim_before:
            body = body[2:]
        trim_after = body[-1:] == "-" and len(body) >= 2 and body[-2] in _TRIM
        if trim_after:
            body = body[:-2]
        yield start, end + 2, body, trim_before, trim_after
        pos = end + 2


@lru_cache(maxsize=4096)
def _parse(source: str) -> tuple[_Node, ...]:
    """Parse a template into literal text and lookups; raise ValueError with a reason."""
    nodes: list[_Node] = []
    pos = 0
    pending_trim = False
    for start, end, body, trim_before, trim_after in _actions(source):
        text = source[pos:start]
        if pending_trim:
            text = text.lstrip(_TRIM)
        if trim_before:
            text = text.rstrip(_TRIM)
        if text:
            nodes.append(_Text(text))
        node = _compile_action(body)
        if node is not None:
            nodes.append(node)
        pending_trim = trim_after
        pos = end
    tail = source[pos:]
    if pending_trim:
        tail = tail.lstrip(_TRIM)
    if tail:
        nodes.append(_Text(tail))
    return tuple(nodes)


def _resolve(lookup: _Lookup, fields: Mapping[str, object]) -> str:
    value: object = fields
    for depth, name in enumerate(lookup.names):
        if not isinstance(value, Mapping):
            raise ValueError(
                f"{lookup.source}: cannot look up {name!r} in a {type(value).__name__}"
            )
        if name not in value:
            if depth == 0:
                known = ", ".join(f".{k}" for k in fields)
                raise ValueError(f"unknown field .{name}; known fields: {known}")
            where = "." + ".".join(lookup.names[:depth])
            known = ", ".join(sorted(value)) or "none"
            raise ValueError(f'map has no entry for key "{name}" in {where} (keys: {known})')
        value = value[name]
    if isinstance(value, Mapping):
        raise ValueError(f"{lookup.source} is a map; name one key, e.g. {lookup.source}.key")
    return str(value)


def render(source: str, context: TemplateContext, *, where: str) -> str:
    """Render `source`; `where` names the file or field for error messages."""
    if "{{" not in source:
        return source
    try:
        nodes = _parse(source)
        fields = context.fields()
        return "".join(n.text if isinstance(n, _Text) else _resolve(n, fields) for n in nodes)
    except ValueError as e:
        raise TemplateError.one(f"template: {e}", field=where) from None


def render_file(content: bytes, context: TemplateContext, *, path: str) -> bytes:
    """Render file content under `template: true`; refuse binary or oversized input."""
    if b"{{" not in content:
        return content
    if len(content) > MAX_TEMPLATE_BYTES:
        raise TemplateError.one(
            f"template: file is {len(content)} bytes, over the 16 MiB limit for templates; "
            "turn off template for this mapping or split the file",
            path=path,
        )
    if b"\0" in content:
        raise TemplateError.one(
            "template=true on binary file is not supported (it holds a NUL byte); "
            "exclude it or map it without template: true",
            path=path,
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise TemplateError.one(
            "template: file is not UTF-8 text; map it without template: true", path=path
        ) from None
    try:
        nodes = _parse(text) if len(text) < 65536 else _parse.__wrapped__(text)
        fields = context.fields()
        out = "".join(n.text if isinstance(n, _Text) else _resolve(n, fields) for n in nodes)
    except ValueError as e:
        raise TemplateError.one(f"template: {e}", path=path) from None
    return out.encode("utf-8")
