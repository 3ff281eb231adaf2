"""The push receiver's decisions, as pure functions: who sent it, is it authentic, what to do.

The WSGI app (stoker_k8s) only moves bytes: it hands the body and headers here and acts on the
answer. A push to the tracked branch asks for an immediate refresh; a push to any other branch is
ignored; releases, tags, ArgoCD, Kargo and generic events name a ref to deploy.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import attrs

from stoker_core.errors import InvalidInput
from stoker_core.refs import same_ref

MAX_BODY = 1024 * 1024  # bytes; larger bodies are refused whole (413), never truncated (B18)
REPLAY_WINDOW = 600.0  # seconds during which the same delivery is answered but not acted on


class Source(enum.StrEnum):
    """Who sent the event."""

    GITHUB = "github"
    GITLAB = "gitlab"
    ARGOCD = "argocd"
    KARGO = "kargo"
    GENERIC = "generic"


class Verb(enum.StrEnum):
    """What the receiver does with the event."""

    REFRESH = "refresh"  # resolve the tracked ref again now (bypassing the ls-remote cache)
    SET_REF = "set-ref"  # set stoker.io/requested-ref to `ref`
    IGNORE = "ignore"  # answer 202 "ignored" and change nothing


@attrs.frozen(slots=True)
class Event:
    """The receiver's reading of one request."""

    source: Source
    verb: Verb
    ref: str = ""
    detail: str = ""


@attrs.frozen(slots=True, kw_only=True)
class Secrets:
    """What authenticates requests for one CR (its own Secret, else the global one)."""

    hmac_key: str | None = None
    token: str | None = None


def _dig(body: Any, *path: str | int) -> str:
    for step in path:
        if isinstance(step, int):
            body = body[step] if isinstance(body, list) and len(body) > step else None
        else:
            body = body.get(step) if isinstance(body, dict) else None
    return body if isinstance(body, str) else ""


def _branch_or_tag(source: Source, ref: str, tracked: str) -> Event:
    if ref.startswith("refs/tags/"):
        return Event(source, Verb.SET_REF, ref.removeprefix("refs/tags/"), "tag pushed")
    branch = ref.removeprefix("refs/heads/")
    if same_ref(branch, tracked):
        return Event(source, Verb.REFRESH, branch, "push to the tracked branch")
    return Event(source, Verb.IGNORE, branch, f'push to "{branch}", not the tracked "{tracked}"')


def parse(body: bytes, headers: Mapping[str, str], tracked: str) -> Event:
    """Read an event; raise InvalidInput (answer 400) when no ref can be found."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidInput.one("body is not JSON", field="body") from None
    lowered = {k.lower(): v for k, v in headers.items()}
    github, gitlab = lowered.get("x-github-event", ""), lowered.get("x-gitlab-event", "")
    if github == "ping":
        return Event(Source.GITHUB, Verb.IGNORE, detail="ping")
    if github == "push" or gitlab in ("Push Hook", "Tag Push Hook"):
        source = Source.GITHUB if github else Source.GITLAB
        ref = _dig(payload, "ref")
        if not ref:
            raise InvalidInput.one("push event without a ref", field="ref")
        return _branch_or_tag(source, ref, tracked)
    for source, path in (
        (Source.GITHUB, ("release", "tag_name")),
        (Source.ARGOCD, ("app", "metadata", "annotations", "git.ref")),
        (Source.KARGO, ("freight", "commits", 0, "tag")),
        (Source.GENERIC, ("ref",)),
    ):
        ref = _dig(payload, *path)
        if ref:
            return Event(source, Verb.SET_REF, ref.removeprefix("refs/tags/"), "ref requested")
    if github or gitlab:
        return Event(
            Source.GITHUB if github else Source.GITLAB,
            Verb.IGNORE,
            detail=f"event {github or gitlab} carries nothing to deploy",
        )
    raise InvalidInput.one("no ref found in payload", field="ref")


def authentic(body: bytes, headers: Mapping[str, str], secrets: Secrets) -> bool:
    """Tell whether the request proves it knows the CR's secret (constant-time comparisons).

    With no secret configured nothing is accepted: an open receiver would let anyone redeploy a
    plant (the original accepted anonymous requests by default: B18).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if secrets.hmac_key:
        digest = hmac.new(secrets.hmac_key.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(lowered.get("x-hub-signature-256", ""), f"sha256={digest}"):
            return True
    if secrets.token:
        offered = [
            lowered.get("x-gitlab-token", ""),
            lowered.get("authorization", "").removeprefix("Bearer "),
        ]
        if any(o and hmac.compare_digest(o, secrets.token) for o in offered):
            return True
    return False


def replay_key(body: bytes, headers: Mapping[str, str]) -> str:
    """What identifies a delivery: the sender's delivery id, else a hash of the body."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery = lowered.get("x-github-delivery") or lowered.get("x-gitlab-event-uuid")
    return f"id:{delivery}" if delivery else "sha256:" + hashlib.sha256(body).hexdigest()


PRUNE_ABOVE = 1024  # buckets kept before the full ones are swept


@attrs.define
class RateLimit:
    """A token bucket per key: `rate` requests per second, bursts up to `rate`."""

    rate: float = 10.0
    _buckets: dict[str, tuple[float, float]] = attrs.field(factory=dict)
    _sweep_at: int = PRUNE_ABOVE

    def allow(self, key: str, now: float) -> bool:
        """Take one token for `key` at time `now` (seconds); False when the bucket is empty."""
        if len(self._buckets) >= self._sweep_at:
            self._forget_full(now)
            # Amortised: under a burst too fast to refill, do not sweep on every request.
            self._sweep_at = max(PRUNE_ABOVE, 2 * len(self._buckets))
        tokens, last = self._buckets.get(key, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they mean no more than an absent one. Keys come from
        request URLs, so without this a stream of made-up names would grow the map forever."""
        self._buckets = {
            k: (tokens, last)
            for k, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate < self.rate
        }
