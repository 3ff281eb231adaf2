"""The live walk of a full check, run in a child process while the parent builds the desired tree.

`python -I -S -c` runs `main`, which reads the data directory, the folders to walk and the
patterns of the paths never entered from stdin (see LocalTree.prefetch) and writes, with
marshal, per folder, the columns of its entries `(path, what, size, mtime_ns, inode, st_mode,
ctime_ns)` in the order LocalTree.walk yields them, `what` being ENTERED or PRUNED for a folder
(no stat) and STATED for anything else: seven lists (`what` a bytes), which the parent takes
apart in bulk, without a step per entry (see LocalTree.walked_ahead). It imports nothing but the
standard library and stoker_core.globs, so it starts in a few milliseconds, and it never
follows a link (scandir's own type, lstat).
Any error ends it with a non-zero status: the parent then walks itself.
"""

from __future__ import annotations

import gc
import marshal
import os
import stat
import sys

from stoker_core.globs import GlobSet

TYPE_CHECKING = False  # as in stoker_core.globs: the child imports no typing machinery
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ENTERED, PRUNED, STATED = range(3)


def walk(root: str, top: str, never: GlobSet) -> tuple[object, ...] | None:
    """Every entry below `top`, as LocalTree.walk finds them with `never.matches` as prune,
    in columns; None when `top` is not a folder reached through folders only (a link on the
    way is never followed here: planning refuses it, and the walk, if asked, is the parent's)."""
    if not _real_folder(root, top):
        return None
    out: list[tuple[object, ...]] = []
    add = out.append
    absolute = os.path.join(root, top) if top else root
    for rel, st, entered in listing(top, absolute, lambda path: not never.matches(path)):
        if st is None:
            add((rel, ENTERED if entered else PRUNED, 0, 0, 0, 0, 0))
        else:
            add((rel, STATED, st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode, st.st_ctime_ns))
    if not out:
        return ([], b"", [], [], [], [], [])
    paths, what, *stats = map(list, zip(*out, strict=True))
    return (paths, bytes(what), *stats)


def listing(
    top: str, absolute: str, enter: Callable[[str], bool]
) -> Iterator[tuple[str, os.stat_result | None, bool]]:
    """Every entry below folder `top` (at `absolute`), depth first, as the parent's walk and
    this child's both list them: `(path, None, entered)` for a folder, known by readdir's own
    type, so no link is ever followed, and entered when `enter(path)`; `(path, lstat, False)`
    for anything else. A folder that vanished meanwhile lists as empty."""
    stack = [(top, absolute)]
    while stack:
        current, folder = stack.pop()
        prefix = current + "/" if current else ""
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for child in children:
            rel = prefix + child.name
            if child.is_dir(follow_symlinks=False):
                entered = enter(rel)
                if entered:
                    stack.append((rel, child.path))
                yield rel, None, entered
            else:
                yield rel, child.stat(follow_symlinks=False), False


def _real_folder(root: str, top: str) -> bool:
    path = root
    for part in top.split("/") if top else ():
        path = os.path.join(path, part)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return False
        except OSError:
            return False
    return True


def main() -> None:
    """Read (data directory, folders, patterns, file-name encoding) from stdin; write the
    folders' lists to stdout. Exits with status 3 when this process decodes file names in
    another way than its parent (the names would not be the same strings)."""
    root, tops, patterns, encoding = marshal.loads(sys.stdin.buffer.read())
    if encoding != [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()]:
        sys.exit(3)
    never = GlobSet(patterns)
    gc.disable()  # short-lived, and it makes no cycle: a collection would only slow the walk
    out = sys.stdout.buffer
    out.write(marshal.dumps([walk(root, top, never) for top in tops]))
    out.flush()
    os._exit(0)  # no teardown: freeing the lists one object at a time is work nobody waits on
