"""Doublestar (v4) glob matching on `/`-separated relative paths.

`**` as a whole segment matches zero or more segments (`a/**` matches `a`, `**/c` matches `c`);
`*` and `?` never cross `/`; `[...]`, `{a,b}` and `\\` escapes work as in doublestar; dotfiles
are not special; a pattern ending in `/` never matches a path (paths have no trailing slash),
except the `a/**/` form, which doublestar treats like `a/**`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


class BadPattern(ValueError):
    """A glob pattern is malformed (unclosed `[` or `{`, trailing backslash)."""


def _class(pattern: str, i: int) -> tuple[str, int]:
    """Translate a `[...]` class starting at i; return regex and index after `]`."""
    j = i + 1
    negate = j < len(pattern) and pattern[j] in "!^"
    if negate:
        j += 1
    body: list[str] = []
    first = True
    while j < len(pattern) and (pattern[j] != "]" or first):
        ch = pattern[j]
        if ch == "\\" and j + 1 < len(pattern):
            j += 1
            ch = pattern[j]
        if ch == "-" and body and j + 1 < len(pattern) and pattern[j + 1] != "]":
            body.append("-")
        else:
            body.append(re.escape(ch))
        first = False
        j += 1
    if j >= len(pattern):
        raise BadPattern(f'unclosed "[" in glob "{pattern}"')
    inner = "".join(body)
    return (f"[^/{inner}]" if negate else f"(?!/)[{inner}]"), j + 1


def _translate(pattern: str, i: int, depth: int) -> tuple[str, int]:
    """Translate from index i until the end (or a `,`/`}` closing the current brace group)."""
    out: list[str] = []
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        at_segment_start = i == 0 or pattern[i - 1] in "/{,"
        if ch == "*" and pattern.startswith("**", i) and at_segment_start:
            end = i + 2
            if end == n or (depth and pattern[end] in ",}"):
                out.append(".*")
                i = end
            elif pattern[end] == "/":
                if end + 1 == n:  # trailing `**/`: same as `**`
                    out.append(".*")
                    i = end + 1
                else:
                    out.append("(?:.*/)?")
                    i = end + 1
            else:
                out.append("[^/]*")
                i = end
        elif ch == "/" and pattern.startswith("/**", i) and _ends_segment(pattern, i + 3, depth):
            out.append("(?:/.*)?")
            i += 3
            if i < n and pattern[i] == "/" and i + 1 == n:
                i += 1
        elif ch == "*":
            out.append("[^/]*")
            i += 1
            while i < n and pattern[i] == "*":
                i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            regex, i = _class(pattern, i)
            out.append(regex)
        elif ch == "{":
            alternatives: list[str] = []
            i += 1
            while True:
                regex, i = _translate(pattern, i, depth + 1)
                alternatives.append(regex)
                if i >= n:
                    raise BadPattern(f'unclosed "{{" in glob "{pattern}"')
                i += 1
                if pattern[i - 1] == "}":
                    break
            out.append("(?:" + "|".join(alternatives) + ")")
        elif depth and ch in ",}":
            return "".join(out), i
        elif ch == "\\":
            if i + 1 >= n:
                raise BadPattern(f'trailing "\\" in glob "{pattern}"')
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out), i


def _ends_segment(pattern: str, i: int, depth: int) -> bool:
    if i == len(pattern):
        return True
    if pattern[i] == "/":
        return i + 1 == len(pattern)
    return bool(depth) and pattern[i] in ",}"


@lru_cache(maxsize=1024)
def translate(pattern: str) -> str:
    """Return an anchored-free regex source for a doublestar pattern; raise BadPattern."""
    regex, _ = _translate(pattern, 0, 0)
    return regex


def match(pattern: str, path: str) -> bool:
    """Tell whether `path` matches `pattern`; raise BadPattern for a malformed pattern."""
    return re.fullmatch(translate(pattern), path, re.DOTALL) is not None


_GLOB_META = frozenset("*?[]{}\\")


def _is_literal(text: str) -> bool:
    return bool(text) and "/" not in text and not _GLOB_META.intersection(text)


class GlobSet:
    """Many patterns tested at once, sorted by shape so the common ones cost a set lookup.

    `**/NAME` only looks at the last segment and `**/NAME/**` at any segment, so they are
    answered from the split path (a set lookup for literal names, one small regex for the
    others); every other pattern goes into one combined regex, tried only on paths whose first
    segment one of them starts with, when all of them start with a literal one (`config/**`).
    Planning tests every path of a tree against these sets, which made the single combined
    regex a measurable share of it.
    """

    __slots__ = (
        "_basename_regex",
        "_basenames",
        "_heads",
        "_regex",
        "_segments",
        "_slashed_regex",
        "patterns",
    )

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(dict.fromkeys(p.strip() for p in patterns if p.strip()))
        basenames: set[str] = set()
        segments: set[str] = set()
        basename_sources: list[str] = []
        others: list[str] = []
        slashed: list[str] = []
        heads: set[str] | None = set()
        for pattern in self.patterns:
            if pattern.endswith("/") and not pattern.endswith("**/"):
                # Matches only a path ending in "/", which no tree path does; the CRD's default
                # exclude "**/.git/" is one, and would otherwise cost a regex on every path.
                slashed.append(translate(pattern))
                continue
            rest = pattern[3:] if pattern.startswith("**/") else ""
            if rest.endswith("/**") and _is_literal(rest[:-3]):
                segments.add(rest[:-3])
            elif _is_literal(rest):
                basenames.add(rest)
            elif rest and "/" not in rest and "**" not in rest and "{" not in rest:
                basename_sources.append(translate(rest))
            else:
                others.append(translate(pattern))
                head = pattern.partition("/")[0]
                heads = heads.union([head]) if heads is not None and _is_literal(head) else None
        self._heads = None if heads is None else frozenset(heads)
        self._basenames = frozenset(basenames)
        self._segments = frozenset(segments)
        self._basename_regex = _combined(basename_sources)
        self._regex = _combined(others)
        self._slashed_regex = _combined(slashed)

    def matches(self, path: str) -> bool:
        """Tell whether any pattern matches `path`."""
        if self._basenames or self._segments or self._basename_regex is not None:
            parts = path.split("/")
            last = parts[-1]
            if last in self._basenames:
                return True
            if self._segments and not self._segments.isdisjoint(parts):
                return True
            if self._basename_regex is not None and self._basename_regex.fullmatch(last):
                return True
        slashed = self._slashed_regex
        if slashed is not None and path.endswith("/") and slashed.fullmatch(path):
            return True
        if self._regex is None:
            return False
        if self._heads is not None and path.partition("/")[0] not in self._heads:
            return False
        return self._regex.fullmatch(path) is not None


def _combined(sources: list[str]) -> re.Pattern[str] | None:
    if not sources:
        return None
    return re.compile("|".join(f"(?:{s})" for s in sources), re.DOTALL)
