"""The Secret files a sync reads (the gateway API key, Git credentials, `varsFrom` values): what
each is for, where it comes from, and the sentence that says which are missing.

In a cluster these are mounted from optional Secret volumes (a missing Secret must not keep the
gateway pod from starting), so the agent looks before it syncs and says what it lacks instead
of failing somewhere inside a fetch or a render.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence

import attrs

from stoker_core.fieldwise import FIELDWISE


@attrs.frozen(slots=True, kw_only=True)
class SecretFile:
    """One credential file: its path, what it is for, and the Secret it is mounted from."""

    __eq__, __hash__, __repr__ = FIELDWISE

    path: str
    purpose: str  # e.g. "the gateway API key", "varsFrom dbPassword"
    secret: str = ""  # the Kubernetes Secret it is mounted from; "" outside a cluster
    gateway_only: bool = False  # needed only to talk to the gateway (not before it starts)

    def describe(self) -> str:
        """`the Git token: Secret 'git' key 'token' (/etc/stoker/git-credentials/token)`."""
        key = posixpath.basename(self.path)
        where = f"Secret '{self.secret}' key '{key}' ({self.path})" if self.secret else self.path
        return f"{self.purpose}: {where}"


def needed(files: Iterable[SecretFile], *, gateway: bool) -> tuple[SecretFile, ...]:
    """The files a sync needs: all of them, or, when it will not talk to the gateway, those
    that are not only for the gateway."""
    return tuple(f for f in files if gateway or not f.gateway_only)


def missing_sentence(missing: Sequence[SecretFile]) -> str:
    """What to tell the user about credentials that are not there (empty when none are)."""
    if not missing:
        return ""
    what = "; ".join(f.describe() for f in missing)
    fix = (
        "create the Secret (or add the key); the kubelet mounts it within about a minute and "
        "the agent goes on without a restart"
        if any(f.secret for f in missing)
        else "create the file"
    )
    noun = "credentials are" if len(missing) > 1 else "credential is"
    return f"waiting: {noun} missing: {what}. Nothing was changed; {fix}"
