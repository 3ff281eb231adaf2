"""The push receiver's decisions, as pure functions: who sent it, is it authentic, what to do.

The WSGI app (stoker_k8s) only moves bytes: it hands the body and headers here and acts on the
answer. A push to the tracked branch asks for an immediate refresh; a push to any other branch is
ignored; a published release, a created tag, ArgoCD, Kargo and generic events name a ref to
deploy; every other release action and a deleted or moved tag are ignored (H11).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from stoker_core import jsontext
from stoker_core.errors import InvalidInput
from stoker_core.refs import ref_problem, same_ref

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


ZERO_SHA = "0" * 40  # `before` of a created ref, `after` of a deleted one (GitHub and GitLab)


def _branch_or_tag(source: Source, ref: str, tracked: str, payload: Any) -> Event:
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        if payload.get("deleted") is True or payload.get("after") == ZERO_SHA:
            return Event(source, Verb.IGNORE, tag, "tag deleted")
        if payload.get("created") is True or payload.get("before") == ZERO_SHA:
            return Event(source, Verb.SET_REF, tag, "tag created")
        return Event(source, Verb.IGNORE, tag, "tag moved, not created")
    branch = ref.removeprefix("refs/heads/")
    if same_ref(branch, tracked):
        return Event(source, Verb.REFRESH, branch, "push to the tracked branch")
    return Event(source, Verb.IGNORE, branch, f'push to "{branch}", not the tracked "{tracked}"')


# GitHub release actions that request the release's tag: `published` is sent when a release
# (or a prerelease) is published, `released` when a full release is published or a prerelease
# becomes one. Prereleases never deploy on their own; created, edited, deleted, unpublished do
# nothing either (editing or deleting an old release must not redeploy it).
RELEASE_ACTIONS = frozenset({"published", "released"})


def _release(payload: Any) -> Event:
    tag = _dig(payload, "release", "tag_name").removeprefix("refs/tags/")
    action = _dig(payload, "action")
    release = payload.get("release") if isinstance(payload, dict) else None
    flags = release if isinstance(release, dict) else {}
    if action not in RELEASE_ACTIONS:
        return Event(Source.GITHUB, Verb.IGNORE, tag, f'release action "{action[:40]}"')
    if not tag or flags.get("prerelease") is True or flags.get("draft") is True:
        return Event(Source.GITHUB, Verb.IGNORE, tag, "no tag, a draft or a prerelease")
    return Event(Source.GITHUB, Verb.SET_REF, tag, "release published")


def _checked(event: Event) -> Event:
    """The event, once its ref passed the rule `spec.git.ref` passes (else InvalidInput)."""
    problem = ref_problem(event.ref) if event.ref or event.verb is not Verb.IGNORE else None
    if problem:
        raise InvalidInput.one(f"the ref {problem}", field="ref")
    return event


def parse(body: bytes, headers: Mapping[str, str], tracked: str) -> Event:
    """Read an event; raise InvalidInput (answer 400) when no valid ref can be found."""
    return _checked(_read(body, headers, tracked))


def _read(body: bytes, headers: Mapping[str, str], tracked: str) -> Event:
    try:
        payload = jsontext.loads(body)
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
        return _branch_or_tag(source, ref, tracked, payload)
    if github == "release" or _dig(payload, "release", "tag_name"):
        return _release(payload)
    if github == "create" and _dig(payload, "ref_type") == "tag":
        return Event(Source.GITHUB, Verb.SET_REF, _dig(payload, "ref"), "tag created")
    if github or gitlab:  # any other event (a deleted tag or branch...): its `ref` is no request
        return Event(
            Source.GITHUB if github else Source.GITLAB,
            Verb.IGNORE,
            detail=f"event {github or gitlab} carries nothing to deploy",
        )
    for source, path in (
        (Source.ARGOCD, ("app", "metadata", "annotations", "git.ref")),
        (Source.KARGO, ("freight", "commits", 0, "tag")),
        (Source.GENERIC, ("ref",)),
    ):
        ref = _dig(payload, *path)
        if ref:
            return Event(source, Verb.SET_REF, ref.removeprefix("refs/tags/"), "ref requested")
    raise InvalidInput.one("no ref found in payload", field="ref")


def authentic(body: bytes, headers: Mapping[str, str], secrets: Secrets) -> bool:
    """Tell whether the request proves it knows the CR's secret (constant-time comparisons).

    With no secret configured nothing is accepted: an open receiver would let anyone redeploy a
    plant (the original accepted anonymous requests by default: B18).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if secrets.hmac_key:
        digest = hmac.new(secrets.hmac_key.encode(), body, hashlib.sha256).hexdigest()
        if _same(lowered.get("x-hub-signature-256", ""), f"sha256={digest}"):
            return True
    if secrets.token:
        offered = [
            lowered.get("x-gitlab-token", ""),
            lowered.get("authorization", "").removeprefix("Bearer "),
        ]
        if any(o and _same(o, secrets.token) for o in offered):
            return True
    return False


def _same(offered: str, expected: str) -> bool:
    """Constant-time equality of two strings. As bytes: `compare_digest` refuses str with
    non-ASCII characters (a TypeError, once a 500: H10); `surrogatepass` encodes any str."""
    return hmac.compare_digest(
        offered.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def replay_key(body: bytes, headers: Mapping[str, str]) -> str:
    """What identifies a delivery: the sender's delivery id, else a hash of the body."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery = lowered.get("x-github-delivery") or lowered.get("x-gitlab-event-uuid")
    return f"id:{delivery}" if delivery else "sha256:" + hashlib.sha256(body).hexdigest()


# A delivery id as the history records it: the sender's (GitHub's X-GitHub-Delivery, GitLab's
# X-Gitlab-Event-UUID) when it is a plain token, else a digest of the body.
DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def delivery_id(body: bytes, headers: Mapping[str, str]) -> str:
    """The id the receiver records for a delivery (stoker.io/requested-delivery)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    given = lowered.get("x-github-delivery") or lowered.get("x-gitlab-event-uuid") or ""
    return valid_delivery(given) or "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def valid_delivery(value: object) -> str:
    """`value` when it is a delivery id as the receiver writes one, else "" (annotations are
    read back as hostile input: anyone who may edit the GatewaySync can write them)."""
    return value if isinstance(value, str) and DELIVERY_ID.fullmatch(value) else ""


DELIVERIES_KEPT = 32  # delivery marks recorded on a GatewaySync: about 1.3 KiB of annotation


def delivery_mark(key: str) -> str:
    """A delivery's fixed-size name, as the GatewaySync's annotation records it."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _marks(recorded: str, now: float) -> list[tuple[str, int]]:
    """The annotation's `mark@unix-seconds` entries still inside the replay window, newest
    first. Anyone who may edit the GatewaySync can write it: what does not parse is dropped."""
    out = []
    for entry in recorded.split()[: 4 * DELIVERIES_KEPT]:
        mark, _, stamp = entry.partition("@")
        # abs(): replicas' clocks differ a little, a mark may look a second in the future
        if stamp.isdigit() and len(stamp) <= 12 and abs(now - int(stamp)) < REPLAY_WINDOW:
            out.append((mark, int(stamp)))
    return out


def seen(recorded: str, mark: str, now: float) -> bool:
    """Tell whether the annotation `recorded` holds the delivery `mark` (within the window)."""
    return any(m == mark for m, _ in _marks(recorded, now))


def record(recorded: str, mark: str, now: float) -> str:
    """The annotation with `mark` added at `now`: the newest DELIVERIES_KEPT in the window."""
    kept = [(mark, int(now)), *((m, t) for m, t in _marks(recorded, now) if m != mark)]
    return " ".join(f"{m}@{t}" for m, t in kept[:DELIVERIES_KEPT])


PRUNE_ABOVE = 1024  # buckets kept before the full ones are swept

# The receiver's two budgets (H9), both per receiver process. Strangers: requests that did not
# authenticate, counted per client address and checked before any authentication work, so a
# flood of forgeries is answered 429 cheaply; an address that sends only valid deliveries never
# spends it. Deliveries: authenticated requests per GatewaySync, which forgeries never spend.
STRANGER_RATE, STRANGER_BURST = 1.0, 20.0  # failed requests per second per address; burst
DELIVERY_RATE, DELIVERY_BURST = 10.0, 10.0  # authenticated requests per second per GatewaySync
IPV6_PREFIX = 64  # one IPv6 client holds a whole /64: it is counted as one address


@attrs.define
class RateLimit:
    """A token bucket per key: `rate` requests per second, bursts up to `burst` (else `rate`)."""

    rate: float = 10.0
    burst: float = 0.0
    _buckets: dict[str, tuple[float, float]] = attrs.field(factory=dict)
    _sweep_at: int = PRUNE_ABOVE

    def __attrs_post_init__(self) -> None:
        self.burst = self.burst or self.rate

    def allow(self, key: str, now: float) -> bool:
        """Take one token for `key` at time `now` (seconds); False when the bucket is empty."""
        if len(self._buckets) >= self._sweep_at:
            self._forget_full(now)
            # Amortised: under a burst too fast to refill, do not sweep on every request.
            self._sweep_at = max(PRUNE_ABOVE, 2 * len(self._buckets))
        tokens = self._tokens(key, now)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True

    def ready(self, key: str, now: float) -> bool:
        """Whether `key` has a token at `now`, without taking it."""
        return self._tokens(key, now) >= 1

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they mean no more than an absent one. Keys come from
        request URLs, so without this a stream of made-up names would grow the map forever."""
        self._buckets = {
            k: (tokens, last)
            for k, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate < self.burst
        }


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The address a request's stranger budget is counted against.

    The peer itself, unless it is a trusted proxy: then `X-Forwarded-For` is read from the
    right (each proxy appends the address it received from), skipping trusted proxies, and the
    first other address is the client. Entries left of it were written by the client and are
    never believed. An IPv6 client counts as its /64."""
    hops = [peer, *reversed([h.strip() for h in forwarded_for.split(",")])]
    client = peer
    for hop in hops:
        address = _address(hop)
        if address is None:
            break  # garbage from beyond the last proxy we trust: count the hop that sent it
        client = _bucket(address)
        if not any(address in network for network in trusted):
            break
    return client


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _bucket(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def trusted_networks(spec: str) -> tuple[Network, ...]:
    """Parse a comma-separated list of proxy addresses or CIDR networks (InvalidInput if bad)."""
    networks = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise InvalidInput.one(
                f'"{item[:60]}" is not an IP address or CIDR network (e.g. 10.0.0.0/8)',
                field="trusted proxies",
            ) from None
    return tuple(networks)
