"""GitHub App installation tokens for the controller: a JWT signed with the App's key, exchanged
at the GitHub API, cached per (namespace, Secret, App, installation) — never shared between
tenants that merely share App ids (the original's B1) — and refreshed 15 minutes before expiry."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import attrs
import jwt
import requests

from stoker_core.errors import InvalidInput, TemporaryError
from stoker_core.redaction import redact

# Seconds before expiry a cached token is replaced: more than the controller's longest gap
# between passes (10 min) plus the agents' margin, so a token published at one pass outlives
# the next; GitHub's tokens live an hour, so one is minted about every 45 minutes.
REFRESH_BEFORE = 900.0


@attrs.frozen(slots=True)
class Token:
    """An installation token and when it expires (epoch seconds)."""

    value: str
    expires_at: float


class GitHubAppTokens:
    """Thread-safe cache of installation tokens."""

    def __init__(self, *, clock: Any = time.time, timeout: float = 15.0) -> None:
        self._clock = clock
        self._timeout = timeout
        self._cache: dict[tuple[str, str, int, int], Token] = {}
        self._lock = threading.Lock()

    def token(
        self,
        *,
        namespace: str,
        secret: str,
        app_id: int,
        installation_id: int,
        private_key: str,
        api_base_url: str,
    ) -> Token:
        """A valid token, minted when the cached one is missing or near expiry."""
        key = (namespace, secret, app_id, installation_id)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and self._clock() < cached.expires_at - REFRESH_BEFORE:
                return cached
        fresh = self._exchange(app_id, installation_id, private_key, api_base_url)
        with self._lock:
            self._cache[key] = fresh
        return fresh

    def _exchange(
        self, app_id: int, installation_id: int, private_key: str, api_base_url: str
    ) -> Token:
        now = int(self._clock())
        try:
            assertion = jwt.encode(
                {"iat": now - 60, "exp": now + 540, "iss": str(app_id)},
                private_key,
                algorithm="RS256",
            )
        except (ValueError, TypeError, jwt.PyJWTError) as e:
            raise InvalidInput.one(
                f"GitHub App private key is not a usable RSA key: {e}",
                field="spec.git.auth.githubApp.privateKeySecretRef",
            ) from None
        url = f"{api_base_url.rstrip('/')}/app/installations/{installation_id}/access_tokens"
        try:
            reply = requests.post(
                url,
                timeout=self._timeout,
                headers={
                    "Authorization": f"Bearer {assertion}",
                    "Accept": "application/vnd.github+json",
                },
            )
        except requests.RequestException as e:
            raise TemporaryError(f"GitHub App token exchange: {redact(str(e))[:200]}") from None
        if reply.status_code != 201:
            raise TemporaryError(
                f"GitHub App token exchange: GitHub answered {reply.status_code}: "
                f"{redact(reply.text)[:200]}"
            )
        body = reply.json()
        expires = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
        return Token(str(body["token"]), expires.timestamp())
