"""Resolving a ref against `git ls-remote` output, one rule shared by controller and agent.

Accepted: a full 40-hex SHA (as is), `HEAD`, fully-qualified `refs/heads/…` and `refs/tags/…`
(which GitHub push events carry: the original's D9), and short branch or tag names. A tag wins
over a branch of the same name; an annotated tag resolves to its commit (the `^{}` line). A
leading `v` is treated the same way everywhere (B3): `2.2.3` finds the tag `v2.2.3` and the
other way round, but only when the exact name does not exist.
"""

from __future__ import annotations

import re

import attrs

from stoker_core.errors import InvalidInput
from stoker_core.fieldwise import FIELDWISE
from stoker_core.model import GIT_WORD, MAX_REF

SHA = re.compile(r"^[0-9a-f]{40}$")


def ref_problem(ref: str) -> str | None:
    """Why `ref` cannot be a ref to deploy, or None: the one rule for `spec.git.ref` and a
    ref requested through the receiver (a ref reaches git's command line: never an option)."""
    if not ref.strip():
        return "must not be empty"
    if len(ref) > MAX_REF:
        return f"must be at most {MAX_REF} characters long (found {len(ref)})"
    if re.fullmatch(GIT_WORD, ref) is None or not ref.isprintable():  # as the CRD pattern
        return (
            "must be a branch, a tag or a commit SHA, without spaces or control characters "
            'and not starting with "-"'
        )
    return None


@attrs.frozen(slots=True)
class Advertisement:
    """What a remote advertises: ref name → object id, and annotated tags → peeled commit."""

    __eq__, __hash__, __repr__ = FIELDWISE

    refs: dict[str, str]
    peeled: dict[str, str]


def parse_ls_remote(text: str) -> Advertisement:
    """Parse `git ls-remote` output (`<sha>\\t<refname>` lines, `^{}` for peeled tags)."""
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in text.splitlines():
        sha, sep, name = line.strip().partition("\t")
        if not sep or not SHA.match(sha):
            continue
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        else:
            refs[name] = sha
    return Advertisement(refs, peeled)


def without_v(ref: str) -> str:
    """`v2.2.3` → `2.2.3`; anything else unchanged (the one normalisation, used everywhere)."""
    return ref[1:] if re.match(r"^[vV]\d", ref) else ref


def same_ref(a: str, b: str) -> bool:
    """Tell whether two refs name the same thing up to `refs/heads|tags/` and a leading `v`."""
    return without_v(_short(a)) == without_v(_short(b))


def _short(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _candidates(ref: str) -> list[str]:
    if ref.startswith("refs/") or ref == "HEAD":
        return [ref]
    names = [ref]
    alternate = without_v(ref) if without_v(ref) != ref else f"v{ref}"
    if re.match(r"^[vV]?\d", ref):
        names.append(alternate)
    return [f"refs/{kind}/{name}" for name in names for kind in ("tags", "heads")]


def resolve(ref: str, advertised: Advertisement, *, where: str = "the remote") -> str:
    """Return the commit `ref` names, or raise InvalidInput saying what exists instead."""
    if SHA.match(ref):
        return ref
    for name in _candidates(ref):
        commit = advertised.peeled.get(name) or advertised.refs.get(name)
        if commit:
            return commit
    near = sorted(
        _short(n)
        for n in advertised.refs
        if without_v(_short(n)).startswith(without_v(_short(ref))[:3])
    )[:5]
    hint = f"; similar refs: {', '.join(near)}" if near else ""
    raise InvalidInput.one(
        f'ref "{ref}" not found in {where}{hint}; name a branch, a tag or a full commit SHA',
        field="spec.git.ref",
    )
