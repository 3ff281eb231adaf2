"""Doublestar glob semantics used by excludePatterns and patch `file` globs."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoker_core.globs import BadPattern, GlobSet, Matcher, check, match

# (pattern, path, expected) from doublestar v4's documented behaviour.
TABLE = [
    ("a/**", "a", True),
    ("a/**", "a/b/c", True),
    ("a/**/", "a", True),
    ("a/", "a", False),
    ("**/c", "c", True),
    ("**/c", "a/b/c", True),
    ("*.go", "a/b.go", False),
    ("*.go", "b.go", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("**/.git/", ".git", False),
    ("**/.resources/**", "projects/.resources/x", True),
    ("**/.resources/**", ".resources", True),
    ("*", ".hidden", True),
    ("?", "ab", False),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("{a,b}/*.json", "b/x.json", True),
    ("{a,b/c}/x", "b/c/x", True),
    ("[abc]x", "bx", True),
    ("[!abc]x", "bx", False),
    ("[^abc]x", "dx", True),
    ("[a-c]", "b", True),
    ("[a-c]", "d", False),
    ("a[/]b", "a/b", False),
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("**", "a/b/c", True),
    ("a**b", "a/b", False),
    ("config/local/**", "config/local", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), TABLE)
def test_doublestar_table(pattern: str, path: str, expected: bool) -> None:
    assert match(pattern, path) is expected


@pytest.mark.parametrize("pattern", ["[abc", "{a,b", "a\\"])
def test_malformed_patterns_are_errors(pattern: str) -> None:
    with pytest.raises(BadPattern):
        match(pattern, "a")


def test_globset_matches_if_any_pattern_does() -> None:
    globs = GlobSet(["**/.gitkeep", "*.tmp", "  "])
    assert globs.matches("a/b/.gitkeep")
    assert globs.matches("x.tmp")
    assert not globs.matches("a/x.tmp")
    assert globs.patterns == ("**/.gitkeep", "*.tmp")


def test_empty_globset_matches_nothing() -> None:
    assert not GlobSet([]).matches("anything")


PATTERN_POOL = [
    "**/.git/**",
    "**/.git",
    "**/*.jks",
    "**/*keystore*",
    "**/[ab].json",
    "**/{a,b}.json",
    "**/a/**",
    "**/a?/**",
    "**/a/b",
    "a/**",
    "a/*/c",
    "**",
    "**/",
    "*.json",
    "**/x\\*",
    "db/**",
    "a",
    "c/**",
    "{a,b}/c",
    "a*/**",
    "x\\*/**",
    "**/.git/",
    "a/",
    "a**/",
    "a/**/",
    "{a,b}/",
    "*/",
]
SEGMENT = st.sampled_from(["a", "b", "a1", ".git", "x.jks", "my-keystore.p", "a.json", "c", "x*"])


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from(PATTERN_POOL), max_size=5),
    st.tuples(st.lists(SEGMENT, min_size=1, max_size=4), st.sampled_from(["", "/"])).map(
        lambda parts_and_end: "/".join(parts_and_end[0]) + parts_and_end[1]
    ),
)
def test_a_glob_set_matches_exactly_when_one_of_its_patterns_does(
    patterns: list[str], path: str
) -> None:
    assert GlobSet(patterns).matches(path) == any(match(p, path) for p in patterns)


PATH = st.tuples(st.lists(SEGMENT, min_size=1, max_size=4), st.sampled_from(["", "/"])).map(
    lambda parts_and_end: "/".join(parts_and_end[0]) + parts_and_end[1]
)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(PATTERN_POOL), max_size=5), st.lists(PATH, max_size=20))
def test_one_glob_set_asked_about_many_paths_answers_each_as_its_patterns_do(
    patterns: list[str], paths: list[str]
) -> None:
    # A set remembers its verdicts on directories and file names: asked again, or about a
    # sibling, it must still answer as the patterns do.
    globs = GlobSet(patterns)
    for path in paths + paths:
        assert globs.matches(path) == any(match(p, path) for p in patterns), path


def test_a_glob_set_remembers_a_bounded_number_of_directories_and_names() -> None:
    globs = GlobSet(["**/.resources/**", "**/*.jks"])
    for i in range(40_000):  # distinct directories and names, as a hostile tree has
        assert globs.matches(f"p/d{i}/n{i}.json") is False
    assert globs.matches("p/.resources/x")
    assert globs.matches("p/k.jks")
    assert len(globs._places) <= 16_384
    assert len(globs._named) <= 16_384


# Braces expand (as in doublestar), so whether a `**` is a whole segment depends on the branch.
BRACE_TABLE = [
    ("{**,a}/b", "b", True),
    ("{**,a}/b", "x/y/b", True),
    ("{a,**}/b", "a/b", True),
    ("x{**,y}", "x/a", False),
    ("x{**,y}", "xa", True),
    ("b{**,a}", "ba/ab", False),
    ("**/{a/b,}", "x/y", True),
    ("{a/**,b}", "a", True),
    ("{a/**,b}", "a/x/y", True),
    ("{**/*.bak,**/*.tmp}", "p/q/r.tmp", True),
    # An empty brace joins two `**` into `****`, which is `*`, not a globstar (found by the
    # property test below: the matcher let `a/**{}**` match `a` as `a/**` does).
    ("a/**{}**", "a", False),
    ("a/**{}**", "a/b", True),
    ("a/**{}**", "a/b/c", False),
    ("a/**{,/}**", "a", True),  # `a/**/**` matches `a` as `a/**` does
    ("[z-a]x", None, None),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), BRACE_TABLE)
def test_braces_expand_before_globstars_are_read(
    pattern: str, path: str | None, expected: bool | None
) -> None:
    if path is None:
        with pytest.raises(BadPattern, match="bad range"):
            check(pattern)
    else:
        assert match(pattern, path) is expected


def test_braces_nested_too_deep_are_refused_by_name() -> None:
    with pytest.raises(BadPattern, match="nested deeper than 10"):
        check("{" * 11 + "a" + "}" * 11)


# A reference matcher, written for obviousness rather than speed: patterns are generated as
# token trees, braces are expanded into every alternative, and each brace-free pattern is
# matched segment by segment with memoised recursion (`**` alone in a segment: zero or more
# segments; `a/**/` reads as `a/**`; elsewhere `**` is `*`).
Token = tuple[str, Any]

LEAVES: list[Token] = [
    ("c", "a"),
    ("c", "b"),
    ("c", "*"),
    ("?", None),
    ("*", None),
    *[("**", None)] * 3,  # `**` and `/` are where the subtle rules are: draw them often
    *[("/", None)] * 4,
    ("[", (False, (("a", "a"), (".", ".")))),
    ("[", (True, (("a", "a"),))),
    ("[", (False, (("a", "b"),))),
]


def _tidy(seq: list[Token]) -> list[Token]:
    """Drop a star that directly follows another: `*` `*` would read back as one `**` token."""
    out: list[Token] = []
    for token in seq:
        if token[0] in ("*", "**") and out and out[-1][0] in ("*", "**"):
            continue
        out.append(token)
    return out


def _sequences(tokens: st.SearchStrategy[Token]) -> st.SearchStrategy[list[Token]]:
    return st.lists(tokens, max_size=4).map(_tidy)


TOKENS = st.recursive(
    st.sampled_from(LEAVES),
    lambda inner: st.lists(_sequences(inner), min_size=1, max_size=3).map(lambda a: ("{", a)),
    max_leaves=5,
)
PATTERNS = st.lists(TOKENS, min_size=1, max_size=6).map(_tidy)
PATHS = st.lists(
    st.sampled_from(["a", "b", "ab", "", ".a", "*", "ba", "aa"]), min_size=1, max_size=5
).map("/".join)


def _render(seq: list[Token]) -> str:
    out = []
    for kind, value in seq:
        if kind == "c":
            out.append("\\" + str(value) if value in "*?[]{},\\" else str(value))
        elif kind == "[":
            negate, ranges = value
            body = "".join(lo if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
            out.append(f"[{'!' if negate else ''}{body}]")
        elif kind == "{":
            out.append("{" + ",".join(_render(alt) for alt in value) + "}")
        else:
            out.append(kind)
    return "".join(out)


def _expand(seq: list[Token]) -> list[list[Token]]:
    out: list[list[Token]] = [[]]
    for token in seq:
        options = [e for alt in token[1] for e in _expand(alt)] if token[0] == "{" else [[token]]
        out = [a + b for a in out for b in options]
    return out


def _segment_matches(seg: list[Token], text: str) -> bool:
    @functools.cache
    def m(i: int, j: int) -> bool:
        if i == len(seg):
            return j == len(text)
        kind, value = seg[i]
        if kind in ("*", "**"):
            return m(i + 1, j) or (j < len(text) and m(i, j + 1))
        if j == len(text):
            return False
        if kind == "c":
            ok = text[j] == value
        elif kind == "?":
            ok = True
        else:
            negate, ranges = value
            ok = any(lo <= text[j] <= hi for lo, hi in ranges) != negate
        return ok and m(i + 1, j + 1)

    return m(0, 0)


def _reference(tokens: list[Token], path: str) -> bool:
    segments: list[list[Token]] = [[]]
    for token in tokens:
        if token[0] == "/":
            segments.append([])
        else:
            segments[-1].append(token)
    globstar = [("**", None)]
    if len(segments) > 1 and segments[-1] == [] and segments[-2] == globstar:
        segments.pop()
    parts = path.split("/")

    @functools.cache
    def m(i: int, j: int) -> bool:
        if i == len(segments):
            return j == len(parts)
        if segments[i] == globstar:
            return i == len(segments) - 1 or any(m(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and _segment_matches(segments[i], parts[j]) and m(i + 1, j + 1)

    return m(0, 0)


@settings(max_examples=400, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=2), PATHS)
def test_H13_the_linear_matcher_agrees_with_a_reference_matcher(
    patterns: list[list[Token]], path: str
) -> None:
    texts = [_render(p) for p in patterns]
    expected = [any(_reference(e, path) for e in _expand(p)) for p in patterns]
    assert [match(text, path) for text in texts] == expected, texts
    assert GlobSet(texts).matches(path) == any(expected), texts


HOSTILE = [
    ("**/" * 12 + "x", "/".join(["a"] * 22)),  # 16 s per path with the backtracking regex
    ("*a" * 10 + "*b", "a" * 40),  # 28 s
    ("*a" * 10 + "*b", "a" * 4000),
    ("{**/,a/}" * 12 + "x", "/".join(["a"] * 400)),
    ("**/" * 12 + "x", "/".join(["a"] * 22) + "/x"),
]


@pytest.mark.parametrize(("pattern", "path"), HOSTILE)
def test_H13_hostile_globs_cost_steps_linear_in_the_path(pattern: str, path: str) -> None:
    matcher = Matcher([pattern])
    before = matcher.steps
    expected = path.endswith("/x")
    assert matcher.matches(path) is expected
    # Each character visits each NFA node (at most 2 per pattern character, plus 2) in at
    # most 7 closure modes, plus once as a state: no backtracking, whatever the pattern.
    nodes = 2 * len(pattern) + 2
    assert matcher.steps - before <= 8 * nodes * (len(path) + 1)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [("a/**/**", "a"), ("a/{**/**}", "a"), ("a/**/**/", "a"), ("a/**/**", "a/b/c")],
)
def test_H13_a_doubled_globstar_matches_what_one_globstar_matches(pattern: str, path: str) -> None:
    """`**/**` is `**` (found by the reference-matcher property test: `a/**/**` missed `a`)."""
    single = pattern.replace("**/**", "**")
    assert match(pattern, path) == match(single, path)
    assert GlobSet([pattern]).matches(path) == GlobSet([single]).matches(path)
    assert match(single, path)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(PATTERN_POOL), max_size=5), st.lists(PATH, max_size=20))
def test_a_glob_set_asked_about_many_paths_at_once_names_those_its_patterns_match(
    patterns: list[str], paths: list[str]
) -> None:
    # matching() asks matches() only of paths whose name or folder a pattern can match: what
    # it leaves out must be what no pattern matches. Asked twice: its verdicts are remembered.
    globs = GlobSet(patterns)
    expected = [path for path in paths if any(match(p, path) for p in patterns)]
    assert globs.matching(paths) == expected
    assert globs.matching(paths) == expected


def test_a_glob_set_asked_at_once_finds_a_match_deep_in_a_tree_of_plain_paths() -> None:
    paths = [f"projects/p{i}/views/v{j}/view.json" for i in range(30) for j in range(30)]
    deep = ["projects/p3/.resources/x.bin", "projects/p4/views/store.jks", "top.json"]
    globs = GlobSet(["**/.resources/**", "**/*.jks", "*.json", "config/local/**"])
    assert globs.matching(paths) == []
    assert globs.matching([*paths, *deep]) == deep
