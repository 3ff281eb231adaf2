"""Doublestar glob semantics used by excludePatterns and patch `file` globs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoker_core.globs import BadPattern, GlobSet, match

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
