"""sjson-style edits of JSON text that change only the addressed value and keep every other byte.

Paths are dot-separated (`a.b`, `list.0`, `list.-1` to append, `\\.` for a literal dot). A value
is decoded as JSON when it parses (objects, arrays, numbers kept as written, booleans, null;
never NaN or Infinity), otherwise it is set as a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from stoker_core.errors import PatchError

MAX_PATCH_BYTES = 16 * 1024 * 1024

_DECODER = json.JSONDecoder(parse_constant=lambda name: _reject_constant(name))
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def split_path(path: str) -> list[str]:
    """Split an sjson path on unescaped dots; `\\.` stands for a literal dot."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path):
            current.append(path[i + 1])
            i += 2
            continue
        if ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    if any(p == "" for p in parts):
        raise ValueError(f'path "{path}" has an empty component; write e.g. "a.b.0"')
    return parts


def encode_value(raw: str) -> str:
    """Return the JSON text to store for a patch value given as a (rendered) string."""
    stripped = raw.strip()
    if _NUMBER.fullmatch(stripped):
        return stripped  # kept as written: no float rounding of large integers
    try:
        value = _DECODER.decode(stripped)
    except ValueError:
        return json.dumps(raw, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _skip_ws(text: str, i: int) -> int:
    match = _WS.match(text, i)
    assert match is not None
    return match.end()


def _value_end(text: str, i: int) -> int:
    """Return the index just after the JSON value starting at i."""
    _, end = _DECODER.raw_decode(text, i)
    return end


def _create(parts: list[str], value: str) -> str:
    """Build compact JSON holding `value` at `parts` (numeric parts make arrays)."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    inner = _create(rest, value)
    if head == "-1":
        return f"[{inner}]"
    if head.isdigit():
        return "[" + "null," * int(head) + inner + "]"
    return "{" + json.dumps(head, ensure_ascii=False) + ":" + inner + "}"


def _set_in_object(text: str, start: int, parts: list[str], value: str) -> str:
    key, rest = parts[0], parts[1:]
    i = _skip_ws(text, start + 1)
    if text[i] == "}":
        return (
            text[:i] + json.dumps(key, ensure_ascii=False) + ":" + _create(rest, value) + text[i:]
        )
    while True:
        name, i = _DECODER.raw_decode(text, i)
        i = _skip_ws(text, i) + 1  # the colon
        i = _skip_ws(text, i)
        if name == key:
            return _set_at(text, i, rest, value)
        end = _value_end(text, i)
        i = _skip_ws(text, end)
        if text[i] == "}":
            addition = "," + json.dumps(key, ensure_ascii=False) + ":" + _create(rest, value)
            return text[:end] + addition + text[end:]
        i = _skip_ws(text, i + 1)  # the comma


def _set_in_array(text: str, start: int, parts: list[str], value: str) -> str:
    head, rest = parts[0], parts[1:]
    if head != "-1" and not head.isdigit():
        raise ValueError(f'"{head}" addresses an array; use an index such as 0, or -1 to append')
    want = -1 if head == "-1" else int(head)
    i = _skip_ws(text, start + 1)
    count = 0
    if text[i] != "]":
        while True:
            if count == want:
                return _set_at(text, i, rest, value)
            end = _value_end(text, i)
            i = _skip_ws(text, end)
            count += 1
            if text[i] == "]":
                i = end
                break
            i = _skip_ws(text, i + 1)
    padding = "null," * (max(want, count) - count) if want >= 0 else ""
    item = padding + _create(rest, value)
    return text[:i] + ("," if count else "") + item + text[i:]


def _set_at(text: str, i: int, parts: list[str], value: str) -> str:
    """Set `value` at `parts` below the JSON value starting at index i."""
    if not parts:
        return text[:i] + value + text[_value_end(text, i) :]
    opener = text[i]
    if opener == "{":
        return _set_in_object(text, i, parts, value)
    if opener == "[":
        return _set_in_array(text, i, parts, value)
    # Name the type, never the value: a rendered value may hold a secret variable.
    raise ValueError(
        f'cannot set "{parts[0]}" inside a {_json_type(text[i])}; only objects and arrays '
        "hold keys: point the patch at an object, or set the whole value one level up"
    )


_TYPE_BY_FIRST_CHAR = {'"': "string", "t": "boolean", "f": "boolean", "n": "null"}


def _json_type(first: str) -> str:
    """The JSON type of the scalar value starting with `first`."""
    return _TYPE_BY_FIRST_CHAR.get(first, "number")


def set_path(document: str, path: str, value: str) -> str:
    """Return `document` with the JSON text `value` stored at the sjson `path`."""
    try:
        _DECODER.decode(document)
    except ValueError:
        raise ValueError("file is not valid JSON") from None
    start = _skip_ws(document, 0)
    if document[start] not in "{[":
        raise ValueError("file is JSON but not an object or array; patches need one")
    return _set_at(document, start, split_path(path), value)


def apply_patch(content: bytes, settings: Mapping[str, str], *, path: str) -> bytes:
    """Apply `settings` (sjson path → already rendered value) in sorted key order."""
    if len(content) > MAX_PATCH_BYTES:
        raise PatchError.one(
            f"file is {len(content)} bytes, over the 16 MiB limit for patches", path=path
        )
    bom = content.startswith(b"\xef\xbb\xbf")
    try:
        document = content[3 if bom else 0 :].decode("utf-8")
    except UnicodeDecodeError:
        raise PatchError.one("file is not valid JSON (not UTF-8 text)", path=path) from None
    for key in sorted(settings):
        try:
            document = set_path(document, key, encode_value(settings[key]))
        except ValueError as e:
            raise PatchError.one(f'applying patch at "{key}": {e}', path=path) from None
    return (b"\xef\xbb\xbf" if bom else b"") + document.encode("utf-8")
