"""Doublestar (v4) glob matching on `/`-separated relative paths, in time linear in the path.

`**` as a whole segment matches zero or more segments (`a/**` matches `a`, `**/c` matches `c`);
`*` and `?` never cross `/`; `[...]`, `{a,b}` and `\\` escapes work as in doublestar (braces
expand: `{a,**}/c` reads as `a/c` or `**/c`); dotfiles are not special; a pattern ending in `/`
never matches a path (paths have no trailing slash), except the `a/**/` form, which doublestar
treats like `a/**`.

Patterns come from GatewaySync specs, so a hostile one must not cost more than its size: they
compile to a Thompson NFA run as a set of states (no backtracking, as Go's regexp and RE2), and
the sets met are cached as DFA states, so the usual path costs one dict look-up per character.
"""

from __future__ import annotations

from itertools import compress, repeat
from operator import itemgetter, or_

# The live walk's child process (stoker_agent.walker) imports this module alone: typing would
# be a third of its start-up, and the names below serve only the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TypeVar

    _K = TypeVar("_K")
    _V = TypeVar("_V")

MAX_BRACE_DEPTH = 10


class BadPattern(ValueError):
    """A glob pattern is malformed (unclosed `[` or `{`, trailing backslash, bad range)."""


# Tokens of a parsed pattern: a character, "?", "*", "**", "/", a class, or braces.
_Class = tuple[bool, tuple[tuple[str, str], ...]]  # negated, ranges
_Token = tuple[str, object]
_Seq = list[_Token]


def _class(pattern: str, i: int) -> tuple[_Class, int]:
    """Parse the `[...]` class starting at i; return it and the index after `]`."""
    n = len(pattern)
    j = i + 1
    negate = j < n and pattern[j] in "!^"
    j += negate
    ranges: list[tuple[str, str]] = []
    first = True
    while j < n and (pattern[j] != "]" or first):
        first = False
        lo, j = _class_char(pattern, j)
        hi = lo
        if j + 1 < n and pattern[j] == "-" and pattern[j + 1] != "]":
            hi, j = _class_char(pattern, j + 1)
            if hi < lo:
                raise BadPattern(f'bad range "{lo}-{hi}" in glob "{pattern}"')
        ranges.append((lo, hi))
    if j >= n:
        raise BadPattern(f'unclosed "[" in glob "{pattern}"')
    return (negate, tuple(ranges)), j + 1


def _class_char(pattern: str, j: int) -> tuple[str, int]:
    if pattern[j] == "\\" and j + 1 < len(pattern):
        return pattern[j + 1], j + 2
    return pattern[j], j + 1


def _parse(pattern: str, i: int, depth: int) -> tuple[_Seq, int]:
    """Parse from i to the end, or to the `,`/`}` that ends the current brace alternative."""
    seq: _Seq = []
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if depth and ch in ",}":
            break
        if ch == "*":
            run = i
            while i < n and pattern[i] == "*":
                i += 1
            seq.append(("**" if i - run == 2 else "*", None))
        elif ch == "?" or ch == "/":
            seq.append((ch, None))
            i += 1
        elif ch == "[":
            cls, i = _class(pattern, i)
            seq.append(("[", cls))
        elif ch == "{":
            alternatives, i = _braces(pattern, i, depth + 1)
            seq.append(("{", alternatives))
        elif ch == "\\":
            if i + 1 >= n:
                raise BadPattern(f'trailing "\\" in glob "{pattern}"')
            seq.append(("/", None) if pattern[i + 1] == "/" else ("c", pattern[i + 1]))
            i += 2
        else:
            seq.append(("c", ch))
            i += 1
    return seq, i


def _braces(pattern: str, i: int, depth: int) -> tuple[list[_Seq], int]:
    if depth > MAX_BRACE_DEPTH:
        raise BadPattern(f'braces nested deeper than {MAX_BRACE_DEPTH} in glob "{pattern}"')
    alternatives: list[_Seq] = []
    while True:
        seq, i = _parse(pattern, i + 1, depth)
        alternatives.append(seq)
        if i >= len(pattern):
            raise BadPattern(f'unclosed "{{" in glob "{pattern}"')
        if pattern[i] == "}":
            return alternatives, i + 1


def parse(pattern: str) -> _Seq:
    """Parse a doublestar pattern into tokens; raise BadPattern naming what is wrong."""
    return _parse(pattern, 0, 0)[0]


def check(pattern: str) -> None:
    """Raise BadPattern when `pattern` is malformed (the validator's check)."""
    parse(pattern)


# NFA node kinds. CHAR, ANY, CLASS and SLASH consume one character; STAR loops on non-`/`;
# GLOBSTAR is a `**` token, whose meaning depends on its neighbours (see _Program.close);
# SPLIT is a brace's choice; GMID is "inside `**/`": any characters, leaving after a `/`;
# EVERY is a `**` that ends the pattern (matches the rest of any path); ACCEPT is the end.
CHAR, ANY, CLASS, SLASH, STAR, GLOBSTAR, SPLIT, GMID, EVERY, ACCEPT = range(10)

# Modes of the epsilon closure. A `**` is a globstar only where the token before it is `/` (or
# the pattern starts) and the one after it is `/` (or the pattern ends); braces make both
# sides depend on the path through the NFA, so the closure carries what it has seen:
# N0/N1: plain, the previous token was not / was a `/` (or nothing);
# AFTER_GS, AFTER_GS_SLASH: looking past a globstar for a `/` or the end, and past its `/`;
# AFTER_SLASH, AFTER_SLASH_GS, AFTER_SLASH_GS_SLASH: looking past a `/` for `**` then the end
# (optionally past one more `/`), where `a/**` and `a/**/` also match `a` itself.
N0, N1, AFTER_GS, AFTER_GS_SLASH, AFTER_SLASH, AFTER_SLASH_GS, AFTER_SLASH_GS_SLASH = range(7)

_ACCEPT_NODE, _EVERY_NODE = 0, 1
_MAX_STATES = 2048  # DFA states cached per matcher before the cache starts over
_MAX_CACHED = 16384  # directories, and (state, file name) verdicts, cached per matcher


class _Program:
    """The NFA of one or more patterns (a path matches when any of them does)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.kind = [ACCEPT, EVERY]
        self.arg: list[object] = [None, None]
        self.next = [0, 1]
        self.starts = [self._emit(parse(p), _ACCEPT_NODE) for p in patterns]
        self.steps = 0  # NFA work done so far (tests bound it; the DFA cache makes it rare)

    def _node(self, kind: int, arg: object, nxt: int) -> int:
        self.kind.append(kind)
        self.arg.append(arg)
        self.next.append(nxt)
        return len(self.kind) - 1

    def _emit(self, seq: _Seq, nxt: int) -> int:
        """Add the nodes of `seq`, continuing at `nxt`; return its first node."""
        for token, value in reversed(seq):
            if token == "{":
                assert isinstance(value, list)
                starts = tuple(self._emit(alt, nxt) for alt in value)
                nxt = self._node(SPLIT, starts, nxt)
            elif token == "**":
                nxt = self._node(GLOBSTAR, self._node(STAR, None, nxt), nxt)
            elif token == "/":
                nxt = self._node(SLASH, self._node(GMID, None, nxt), nxt)
            else:
                nxt = self._node(_TOKEN_KINDS[token], value, nxt)
        return nxt

    def close(self, seeds: list[tuple[int, int]]) -> frozenset[int]:
        """The consuming nodes reachable from `seeds` (node, mode) without reading a character."""
        kind, arg, nxt = self.kind, self.arg, self.next
        out: set[int] = set()
        seen: set[tuple[int, int]] = set()
        stack = list(seeds)
        while stack:
            item = stack.pop()
            if item in seen:
                continue
            seen.add(item)
            self.steps += 1
            node, mode = item
            k = kind[node]
            if k == SPLIT:
                stack.extend((start, mode) for start in arg[node])  # type: ignore[attr-defined]
            elif mode <= N1:
                if k == GLOBSTAR:
                    stack.append((arg[node], N0))  # type: ignore[arg-type]
                    if mode == N1:
                        stack.append((nxt[node], AFTER_GS))
                    continue
                out.add(node)
                if k == SLASH:
                    stack.append((nxt[node], AFTER_SLASH))
                elif k == STAR:
                    stack.append((nxt[node], N0))
            elif mode == AFTER_GS:
                if k == SLASH:
                    out.add(arg[node])  # type: ignore[arg-type]
                    stack.append((nxt[node], N1))
                    stack.append((nxt[node], AFTER_GS_SLASH))
                elif k == ACCEPT:
                    out.add(_EVERY_NODE)
            elif mode == AFTER_GS_SLASH:
                if k == ACCEPT:
                    out.add(_EVERY_NODE)
            elif mode == AFTER_SLASH:
                if k == GLOBSTAR:
                    stack.append((nxt[node], AFTER_SLASH_GS))
            elif k == ACCEPT:  # AFTER_SLASH_GS or AFTER_SLASH_GS_SLASH
                out.add(_ACCEPT_NODE)
            elif k == SLASH and mode == AFTER_SLASH_GS:
                stack.append((nxt[node], AFTER_SLASH_GS_SLASH))
            elif k == GLOBSTAR and mode == AFTER_SLASH_GS_SLASH:
                # `a/**/**` matches `a` as `a/**` does; `a/**{}**` reads `a/****`, no globstar
                stack.append((nxt[node], AFTER_SLASH_GS))
        return frozenset(out)

    def step(self, states: frozenset[int], ch: str) -> frozenset[int]:
        """The NFA states after reading `ch` in `states`."""
        kind, arg, nxt = self.kind, self.arg, self.next
        seeds: list[tuple[int, int]] = []
        stay: list[int] = []
        for node in states:
            self.steps += 1
            k = kind[node]
            if k == CHAR:
                if ch == arg[node]:
                    seeds.append((nxt[node], N0))
            elif k == SLASH:
                if ch == "/":
                    seeds.append((nxt[node], N1))
            elif ch == "/":
                if k == GMID:
                    stay.append(node)
                    seeds.append((nxt[node], N1))
                elif k == EVERY:
                    stay.append(node)
            elif k == ANY or (k == CLASS and _in_class(arg[node], ch)):  # type: ignore[arg-type]
                seeds.append((nxt[node], N0))
            elif k == STAR:
                seeds.append((node, N0))
            elif k in (GMID, EVERY):
                stay.append(node)
        return self.close(seeds).union(stay)


_TOKEN_KINDS = {"c": CHAR, "?": ANY, "[": CLASS, "*": STAR}


def _in_class(cls: _Class, ch: str) -> bool:
    negate, ranges = cls
    return any(lo <= ch <= hi for lo, hi in ranges) != negate


class _State:
    """A DFA state: a set of NFA states, with the transitions found from it so far."""

    __slots__ = ("accepting", "edges", "nfa")

    def __init__(self, nfa: frozenset[int]) -> None:
        self.nfa = nfa
        self.edges: dict[str, _State] = {}
        self.accepting = _ACCEPT_NODE in nfa or _EVERY_NODE in nfa


_DEAD = _State(frozenset())  # no NFA state left: no match, whatever follows


class Matcher:
    """Compiled patterns; `matches` runs in time linear in the path (and the patterns' size).

    The NFA state sets met so far become DFA states with their transitions cached, so a
    character costs one dict look-up once its prefix has been seen; on top of that, the state
    after each directory and the verdict for each (state, file name) are cached, since a
    tree's paths share both. Each cache starts over when it grows past its bound (a character
    adds at most one DFA state, so the linear bound holds either way). Threads may share a
    matcher: a race can only build the same state twice, never a wrong one.
    """

    __slots__ = ("_dirs", "_names", "_program", "_start", "_states")

    def __init__(self, patterns: Iterable[str]) -> None:
        self._program = _Program(patterns)
        self._reset()

    def _reset(self) -> None:
        self._states: dict[frozenset[int], _State] = {_DEAD.nfa: _DEAD}
        self._dirs: dict[str, _State] = {}
        self._names: dict[tuple[_State, str], bool] = {}
        self._start = self._state(self._program.close([(s, N1) for s in self._program.starts]))

    @property
    def steps(self) -> int:
        """NFA work done so far, for tests that bound it."""
        return self._program.steps

    def _state(self, nfa: frozenset[int]) -> _State:
        found = self._states.get(nfa)
        if found is None:
            if len(self._states) > _MAX_STATES:
                self._reset()
            found = self._states[nfa] = _State(nfa)
        return found

    def _walk(self, state: _State, text: str) -> _State:
        """The DFA state after reading `text` from `state` (_DEAD as soon as nothing matches)."""
        for ch in text:
            following = state.edges.get(ch)
            if following is None:
                following = state.edges[ch] = self._state(self._program.step(state.nfa, ch))
            state = following
            if state is _DEAD:
                break
        return state

    def _after(self, head: str) -> _State:
        """The state after reading directory `head` and its `/` (cached)."""
        found = self._dirs.get(head)
        if found is None:
            found = self._walk(self._start, head + "/")
            _bounded(self._dirs)[head] = found
        return found

    def enters(self, head: str) -> bool:
        """Tell whether some path in directory `head` (or below) could still match."""
        return self._after(head) is not _DEAD

    def matches(self, path: str) -> bool:
        """Tell whether any of the patterns matches `path`."""
        head, slash, name = path.rpartition("/")
        state = self._start
        if slash:
            state = self._after(head)
            if state is _DEAD:
                return False
        verdict = self._names.get((state, name))
        if verdict is None:
            verdict = self._walk(state, name).accepting
            _bounded(self._names)[(state, name)] = verdict
        return verdict


def _bounded(cache: dict[_K, _V]) -> dict[_K, _V]:
    """`cache`, emptied first when it holds _MAX_CACHED entries."""
    if len(cache) >= _MAX_CACHED:
        cache.clear()
    return cache


def compile_glob(pattern: str) -> Matcher:
    """Return the (cached) matcher of one pattern; raise BadPattern."""
    matcher = _MATCHERS.get(pattern)
    if matcher is None:
        if len(_MATCHERS) >= 1024:
            _MATCHERS.clear()
        matcher = _MATCHERS[pattern] = Matcher([pattern])
    return matcher


# Matchers by pattern (compile_glob) and by set of patterns (_combined), in plain dicts rather
# than functools.lru_cache: the walk's child process imports this module alone, and functools
# (with collections) would be half of its imports.
_MATCHERS: dict[str, Matcher] = {}
_COMBINED: dict[tuple[str, ...], Matcher] = {}


def match(pattern: str, path: str) -> bool:
    """Tell whether `path` matches `pattern`; raise BadPattern for a malformed pattern."""
    return compile_glob(pattern).matches(path)


_GLOB_META = frozenset("*?[]{}\\")


def _is_literal(text: str) -> bool:
    return bool(text) and "/" not in text and not _GLOB_META.intersection(text)


class GlobSet:
    """Many patterns tested at once, sorted by shape so the common ones cost a set lookup.

    `**/NAME` only looks at the last segment and `**/NAME/**` at any segment, so they are
    answered from the split path (a set lookup for literal names, one small matcher for the
    others); every other pattern goes into one combined matcher, tried only on paths whose
    first segment one of them starts with, when all of them start with a literal one
    (`config/**`). Planning tests every path of a tree against these sets.
    """

    __slots__ = (
        "_basename_matcher",
        "_basenames",
        "_heads",
        "_matcher",
        "_named",
        "_places",
        "_segments",
        "_slashed_matcher",
        "patterns",
    )

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(dict.fromkeys(p.strip() for p in patterns if p.strip()))
        basenames: set[str] = set()
        segments: set[str] = set()
        basename_patterns: list[str] = []
        others: list[str] = []
        slashed: list[str] = []
        heads: set[str] | None = set()
        for pattern in self.patterns:
            if pattern.endswith("/") and not pattern.endswith("**/") and "{" not in pattern:
                # Matches only a path ending in "/", which no tree path does; the CRD's default
                # exclude "**/.git/" is one, and would otherwise cost a matcher on every path.
                # (With braces, `a{/**}/` reads as `a/**/`, which matches `a`.)
                slashed.append(pattern)
                continue
            rest = pattern[3:] if pattern.startswith("**/") else ""
            if rest.endswith("/**") and _is_literal(rest[:-3]):
                segments.add(rest[:-3])
            elif _is_literal(rest):
                basenames.add(rest)
            elif rest and "/" not in rest and "**" not in rest and "{" not in rest:
                basename_patterns.append(rest)
            else:
                others.append(pattern)
                head = pattern.partition("/")[0]
                heads = heads.union([head]) if heads is not None and _is_literal(head) else None
        self._heads = None if heads is None else frozenset(heads)
        self._basenames = frozenset(basenames)
        self._segments = frozenset(segments)
        self._basename_matcher = _combined(tuple(basename_patterns))
        self._matcher = _combined(tuple(others))
        self._slashed_matcher = _combined(tuple(slashed))
        self._named: dict[str, bool] = {}  # file name -> whether a `**/NAME`-shaped one matches
        self._places: dict[str, object] = {}  # directory -> _place's verdict on it

    def matches(self, path: str) -> bool:
        """Tell whether any pattern matches `path`."""
        # Planning asks this of every path of a tree, whose directories and file names repeat:
        # a verdict on the file name (the `**/NAME`-shaped patterns) and one on the directory
        # (every other pattern, when it settles the matter for any name) are remembered, per
        # set and bounded, so a path costs two dict lookups.
        head, slash, last = path.rpartition("/")
        named = self._named.get(last)
        if named is None:
            named = _bounded(self._named)[last] = self._name_matches(last)
        if named:
            return True
        if not (slash and last):  # a top-level name, or a path ending in "/": not cached
            return self._path_matches(path, head, slash)
        place = self._places.get(head)
        if place is None:
            place = _bounded(self._places)[head] = self._place(head)
        if place is not _ASK:
            return place is _ALL
        assert self._matcher is not None  # only _place's verdict on it is _ASK
        return self._matcher.matches(path)

    def matching(self, paths: list[str]) -> list[str]:
        """The paths any pattern matches, in order: what `matches` says of each, asked only of
        those whose file name or folder some pattern can match (a step per distinct name and
        folder, not per path: a whole commit's tree is asked at once)."""
        split = list(map(str.rpartition, paths, repeat("/")))
        named, places = self._named, self._places
        names: set[str] = {""}  # a path ending in "/" (no name) is always asked
        lasts, folders = set(map(_LAST, split)), set(map(_HEAD, split))
        unusual = "" in lasts or "" in folders  # a top-level name, or a path ending in "/"
        for last in lasts:
            verdict = named.get(last)
            if verdict is None:
                verdict = _bounded(named)[last] = self._name_matches(last)
            if verdict:
                names.add(last)
        heads: set[str] = {""}  # a top-level name too
        for head in self._placed(folders):
            place = places.get(head)
            if place is None:
                place = _bounded(places)[head] = self._place(head)
            if place is not _NONE:
                heads.add(head)
        if not unusual and len(names) == 1 and len(heads) == 1:
            return []  # no name, no folder, no top-level path any pattern can match
        asked = map(
            or_,
            map(names.__contains__, map(_LAST, split)),
            map(heads.__contains__, map(_HEAD, split)),
        )
        return [path for path in compress(paths, asked) if self.matches(path)]

    def _placed(self, heads: set[str]) -> Iterable[str]:
        """The folders among `heads` whose _place verdict may not be _NONE: when no folder
        holds a `**/NAME/**` name, only those under a literal first segment of the other
        patterns (a few searches and set look-ups in C, not a _place each)."""
        heads.discard("")
        if self._segments:
            joined = "\0/" + "/\0/".join(heads) + "/\0"  # "/NAME/" in it: a folder holds one
            if any(f"/{name}/" in joined for name in self._segments):
                return heads
        if self._matcher is None:
            return ()
        if self._heads is None:
            return heads
        listed = list(heads)
        firsts = map(_HEAD, map(str.partition, listed, repeat("/")))
        return compress(listed, map(self._heads.__contains__, firsts))

    def _name_matches(self, last: str) -> bool:
        """Whether a pattern that looks at the last segment alone matches it."""
        if last in self._basenames or last in self._segments:
            return True
        return self._basename_matcher is not None and self._basename_matcher.matches(last)

    def _place(self, head: str) -> object:
        """The verdict, for a path in directory `head`, of every pattern but the name-shaped
        ones: _ALL (it lies in a `**/NAME/**` folder), _NONE (no pattern can match it,
        whatever its name) or _ASK (the combined matcher must read the name)."""
        if self._segments and self._in_segment(head):
            return _ALL
        matcher = self._matcher
        if matcher is None:
            return _NONE
        if self._heads is not None and head.partition("/")[0] not in self._heads:
            return _NONE
        return _ASK if matcher.enters(head) else _NONE

    def _in_segment(self, head: str) -> bool:
        """Whether a part of directory `head` is a `**/NAME/**` name (its parent's verdict,
        found first in a walk, answers for all but its own name)."""
        parent, _, name = head.rpartition("/")
        if name in self._segments:
            return True
        above = self._places.get(parent) if parent else _NONE
        if above is None:
            return not self._segments.isdisjoint(parent.split("/"))
        return above is _ALL

    def _path_matches(self, path: str, head: str, slash: str) -> bool:
        """What the patterns but the name-shaped ones say of a top-level name or of a path
        ending in "/" (see _place for the others)."""
        if slash and self._segments and not self._segments.isdisjoint(head.split("/")):
            return True
        slashed = self._slashed_matcher
        if slashed is not None and path.endswith("/") and slashed.matches(path):
            return True
        if self._matcher is None:
            return False
        if self._heads is not None and path.partition("/")[0] not in self._heads:
            return False
        return self._matcher.matches(path)


# GlobSet._place's verdicts on a directory.
_ALL, _NONE, _ASK = object(), object(), object()
_HEAD, _LAST = itemgetter(0), itemgetter(2)  # of str.rpartition's parts


def _combined(patterns: tuple[str, ...]) -> Matcher | None:
    """One matcher for `patterns`, shared by every set that holds them: each plan builds its
    sets afresh, and this keeps the states and verdicts the last plan found."""
    if not patterns:
        return None
    matcher = _COMBINED.get(patterns)
    if matcher is None:
        if len(_COMBINED) >= 256:
            _COMBINED.clear()
        matcher = _COMBINED[patterns] = Matcher(patterns)
    return matcher
