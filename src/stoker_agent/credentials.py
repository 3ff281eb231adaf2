"""Where a Git server's credentials are: files, re-read on every fetch (tokens rotate).

Apart from `stoker_agent.gitfetch`, which uses them, so that a sync of a local repository (which
fetches nothing) does not import the fetching code (issue 18).
"""

from __future__ import annotations

import os

import attrs

from stoker_core.fieldwise import FIELDWISE


@attrs.frozen(slots=True, kw_only=True)
class Credentials:
    """Where the credentials are; files are re-read on every fetch (tokens rotate)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    token_file: str | None = None
    ssh_key_file: str | None = None
    known_hosts_file: str | None = None
    ca_file: str | None = None  # CA bundle for an HTTPS server with a private CA

    def secrets(self) -> list[str]:
        """Current secret values, for redaction."""
        out = []
        for path in (self.token_file, self.ssh_key_file):
            if path and os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    out.append(handle.read().strip())
        return out
