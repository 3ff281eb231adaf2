"""Git tree objects compared and listed in Python, as `git diff-tree -r -t` and `git ls-tree`
print them, from tree objects read by the caller (gitrepo reads them through its one
`git cat-file --batch-command`: no git process per command).

Pure: no I/O. Trees are read level by level, each level in one batch (a round trip to git, not
one per tree), and walked without recursion: a hostile repository's depth costs memory in
proportion to its size, never Python's stack. Where git's own answer could differ from what is
computed here (a tree git would walk unsorted, a name with a slash or `.`/`..`, a submodule
whose changes git's configuration may hide, trees nested past MAX_DEPTH), `Inexact` says so
and the caller asks git's commands instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

# git's canonical modes (tree-walk.c canon_mode): every entry is read as one of these.
S_IFMT = 0o170000
DIR = 0o040000
FILE = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000
GITLINK = 0o160000
MAX_DEPTH = 4096  # trees nested deeper than this are left to git (a cycle through replace refs)
_OCTAL = b"01234567"
_T = TypeVar("_T")

# One tree entry: its sort key (git's base_name_compare), name, canonical mode and raw id.
Entry = tuple[bytes, bytes, int, bytes]
# A read of many trees at once: raw ids in, each one's content out, in order (a tree that
# cannot be read is the reader's error).
ReadTrees = Callable[[Sequence[bytes]], Sequence[bytes]]


class MalformedTree(Exception):
    """A tree object git itself would refuse to read; the message names it."""


class Inexact(Exception):
    """Git's commands could answer otherwise than this module: ask them instead."""


def canonical(mode: int) -> int:
    """The mode git reads a tree entry's as (tree-walk.c canon_mode)."""
    kind = mode & S_IFMT
    if kind == 0o100000:
        return EXECUTABLE if mode & 0o100 else FILE
    if kind in (SYMLINK, DIR):
        return kind
    return GITLINK


def parse_tree(data: bytes, raw_len: int, name: str) -> list[Entry]:
    """A tree object's entries, in order; MalformedTree (naming `name`) where git refuses it,
    Inexact where git's walk of it is not a sorted merge (unsorted or duplicate entries)."""
    entries: list[Entry] = []
    size, pos, last = len(data), 0, b""
    while pos < size:
        # tree-walk.c decode_tree_entry: the checks git makes, in its order.
        if size - pos < raw_len + 3 or data[size - raw_len - 1] != 0:
            raise MalformedTree(f"tree {name} is malformed: too-short tree object")
        space = data.find(b" ", pos)
        mode_text = data[pos:space] if space > pos else b""
        if not mode_text or mode_text.translate(None, _OCTAL):
            raise MalformedTree(f"tree {name} is malformed: malformed mode in tree entry")
        end = data.index(b"\0", space + 1)  # found: the byte checked above is one
        if end == space + 1:
            raise MalformedTree(f"tree {name} is malformed: empty filename in tree entry")
        if end + 1 + raw_len > size:
            raise MalformedTree(f"tree {name} is malformed: too-short tree file")
        # git's mode is an unsigned int that wraps: only the last 11 octal digits count.
        mode = canonical(int(mode_text[-11:], 8) & 0xFFFFFFFF)
        entry_name = data[space + 1 : end]
        if b"/" in entry_name or entry_name in (b".", b".."):
            raise Inexact(f"tree {name} has an entry named {entry_name!r}")
        key = entry_name + (b"/" if mode == DIR else b"\0")
        if key <= last:
            raise Inexact(f"tree {name} is not sorted")
        last = key
        pos = end + 1 + raw_len
        entries.append((key, entry_name, mode, data[end + 1 : pos]))
    return entries


class Trees:
    """Parsed trees by raw id, read in batches through `read` and kept for the next walk."""

    def __init__(self, read: ReadTrees, raw_len: int) -> None:
        self._read = read
        self._raw_len = raw_len
        self._parsed: dict[bytes, list[Entry]] = {}

    def load(self, ids: Sequence[bytes]) -> None:
        """Read and parse the trees of `ids` not yet held, in one batch."""
        wanted = list(dict.fromkeys(i for i in ids if i not in self._parsed))
        if wanted:
            for tree_id, data in zip(wanted, self._read(wanted), strict=True):
                self._parsed[tree_id] = parse_tree(data, self._raw_len, tree_id.hex())

    def get(self, tree_id: bytes) -> list[Entry]:
        """The entries of a loaded tree."""
        return self._parsed[tree_id]


class Specs:
    """Literal pathspecs (`--literal-pathspecs`): each names a path and everything below it."""

    def __init__(self, specs: Sequence[str]) -> None:
        self.paths = [s.encode("utf-8", "surrogateescape") for s in specs]
        self._below = [p + b"/" for p in self.paths]

    def all_below(self, path: bytes) -> bool:
        """Whether every entry under `path` is interesting (git's all_entries_interesting)."""
        return not self.paths or any(path.startswith(b) for b in self._below)

    def interesting(self, path: bytes, mode: int) -> bool:
        """tree_entry_interesting: the path is named, under a named path, or a tree that leads
        to one (a file or submodule never leads anywhere)."""
        if not self.paths:
            return True
        for spec, below in zip(self.paths, self._below, strict=True):
            if path == spec or path.startswith(below):
                return True
            if mode == DIR and spec.startswith(path + b"/"):
                return True
        return False

    def leads(self, path: bytes) -> bool:
        """ls-tree's show_recursive without -r: a tree strictly above a named path."""
        return any(spec.startswith(path + b"/") for spec in self.paths)


def clean(spec: str) -> bool:
    """Whether git takes pathspec `spec` as it is (it would normalise the others)."""
    parts = spec.split("/")
    return all(p not in ("", ".", "..") for p in parts)


# A change as diff-tree prints it: path, old mode, new mode (0: none), status letter.
Change = tuple[bytes, int, int, str]


def diff(trees: Trees, old: bytes, new: bytes, specs: Specs, limit: int) -> list[Change] | None:
    """`git diff-tree -r -t --no-renames old new -- specs` (tree ids), in git's order; None
    as soon as more than `limit` distinct paths changed."""
    # Each node: a pair of trees under a base path; its items are changes, and after a
    # tree's change the node of its contents (-1: none). Read a level at a time.
    nodes: list[tuple[bytes, bytes | None, bytes | None]] = [(b"", old, new)]
    items: list[list[tuple[Change, int]]] = []
    seen: set[bytes] = set()
    level, depth = [0], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise Inexact(f"trees nest deeper than {MAX_DEPTH}")
        trees.load([t for n in level for t in nodes[n][1:] if t is not None])
        following: list[int] = []
        for n in level:
            base, old_id, new_id = nodes[n]
            found: list[tuple[Change, int]] = []
            for change, child in _pairs(trees, base, old_id, new_id, specs):
                child_node = -1
                if child is not None:
                    child_node = len(nodes)
                    nodes.append(child)
                    following.append(child_node)
                found.append((change, child_node))
                seen.add(change[0])
                if len(seen) > limit:
                    return None
            items.append(found)
        level = following
    return list(_preorder(items))


def _pairs(
    trees: Trees, base: bytes, old_id: bytes | None, new_id: bytes | None, specs: Specs
) -> Iterator[tuple[Change, tuple[bytes, bytes | None, bytes | None] | None]]:
    """The changes of one pair of trees (tree-diff.c ll_diff_tree_paths, two trees), each with
    the pair of subtrees to compare next when it is a tree's."""
    every = specs.all_below(base)
    olds = _kept(trees, base, old_id, specs, every)
    news = _kept(trees, base, new_id, specs, every)
    i = j = 0
    while i < len(olds) or j < len(news):
        o = olds[i] if i < len(olds) else None
        n = news[j] if j < len(news) else None
        if o is not None and n is not None and o[0] == n[0]:
            i, j = i + 1, j + 1
            if o[3] == n[3] and o[2] == n[2]:
                continue
            path = base + n[1]
            if GITLINK in (o[2], n[2]):
                raise Inexact(f"submodule {path!r} changed")  # its configuration may hide it
            status = "T" if (o[2] ^ n[2]) & S_IFMT else "M"
            below = (path + b"/", o[3], n[3]) if n[2] == DIR else None
            yield (path, o[2], n[2], status), below
        elif n is not None and (o is None or n[0] < o[0]):
            j += 1
            path = base + n[1]
            if n[2] == GITLINK:
                raise Inexact(f"submodule {path!r} added")
            yield (path, 0, n[2], "A"), ((path + b"/", None, n[3]) if n[2] == DIR else None)
        else:
            assert o is not None
            i += 1
            path = base + o[1]
            if o[2] == GITLINK:
                raise Inexact(f"submodule {path!r} deleted")
            yield (path, o[2], 0, "D"), ((path + b"/", o[3], None) if o[2] == DIR else None)


def _kept(
    trees: Trees, base: bytes, tree_id: bytes | None, specs: Specs, every: bool
) -> list[Entry]:
    if tree_id is None:
        return []
    entries = trees.get(tree_id)
    if every:
        return entries
    return [e for e in entries if specs.interesting(base + e[1], e[2])]


# An entry as ls-tree prints it: path, canonical mode, raw id.
Listed = tuple[bytes, int, bytes]


def list_tree(trees: Trees, root: bytes, specs: Specs, recursive: bool) -> list[Listed]:
    """`git ls-tree --full-tree root -- specs`, with `-r -t` when `recursive`, in git's order."""
    nodes: list[tuple[bytes, bytes]] = [(b"", root)]
    items: list[list[tuple[Listed | None, int]]] = []
    level, depth = [0], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise Inexact(f"trees nest deeper than {MAX_DEPTH}")
        trees.load([nodes[n][1] for n in level])
        following: list[int] = []
        for n in level:
            base, tree_id = nodes[n]
            every = specs.all_below(base)
            found: list[tuple[Listed | None, int]] = []
            for _, name, mode, oid in trees.get(tree_id):
                path = base + name
                if not every and not specs.interesting(path, mode):
                    continue
                shown: Listed | None = (path, mode, oid)
                child = -1
                if mode == DIR and (recursive or specs.leads(path)):
                    child = len(nodes)
                    nodes.append((path + b"/", oid))
                    following.append(child)
                    if not recursive:
                        shown = None  # a tree recursed into is shown only with -t
                found.append((shown, child))
            items.append(found)
        level = following
    return [e for e in _preorder(items) if e is not None]


def _preorder(items: list[list[tuple[_T, int]]]) -> Iterator[_T]:
    """The items of node 0, each followed by its child node's, depth first (no recursion)."""
    stack = [iter(items[0])]
    while stack:
        for item, child in stack[-1]:
            yield item
            if child >= 0:
                stack.append(iter(items[child]))
                break
        else:
            stack.pop()
