"""Client for the Ignition gateway's HTTP API (8.3): scans, scan locks, health, Designers,
projects. One exception tree; `check` and `_json` pick the class from the response, in one place.

A reply that is not the API's (a redirect, an HTML page, not JSON, JSON of the wrong shape) is
`GatewayNotTheApi`: something else answers at the gateway's address (a proxy's login page, an
uncommissioned gateway), so it is retried later and never taken as the gateway's verdict. Calls
that are safe to repeat are retried here with a short bounded backoff after a dropped
connection, a timeout or a 5xx; taking a scan lock is not, and `stoker_agent.scanlocking` makes
its retry safe.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from stoker_agent.replies import ReplyRefused, ReplyTooLarge, read_stream
from stoker_core.errors import StokerError, TemporaryError
from stoker_core.outcomes import GatewayReply
from stoker_core.redaction import redact
from stoker_core.scanlocks import HeldLock
from stoker_core.scans import ScanStatus, expected_scan, scan_pauses

if TYPE_CHECKING:  # requests costs ~45 ms to import: only a sync with a gateway pays it
    import urllib3

log = logging.getLogger("stoker.gateway")
BODY_LIMIT = 200  # characters of a response body kept in messages
# The largest answer read: the API's answers (project and Designer lists, scan states) are a few
# KiB; anything far larger is not the API's, and is never read whole into memory.
REPLY_LIMIT = 4 * 1024 * 1024
TRIES = 3  # attempts of a call that is safe to repeat: 0.5 s, then 1 s apart


class GatewayError(StokerError):
    """The gateway answered in a way Stoker cannot use; `status` is the HTTP status, if any."""

    reply = GatewayReply.UNEXPECTED  # says nothing about a change: retried, never a rejection
    status: int | None = None


class GatewayUnhealthy(GatewayError):
    """The gateway stayed unhealthy past the bounded wait (a scan that never finished)."""

    reply = GatewayReply.UNHEALTHY


class GatewayUnavailable(GatewayError, TemporaryError):
    """No answer (refused, timed out, TLS failure) or a 5xx: retry later."""

    reply = GatewayReply.TRANSPORT_ERROR
    retryable = True
    transient = True  # asking again at once may work: a call safe to repeat is retried

    def __init__(self, message: str) -> None:
        TemporaryError.__init__(self, message)


class GatewayStarting(GatewayUnavailable):
    """503: the gateway is starting or restarting."""

    reply = GatewayReply.STARTING


class GatewayNotTheApi(GatewayUnavailable):
    """The answer is not the gateway API's: a redirect, HTML, not JSON, or the wrong shape."""

    reply = GatewayReply.NOT_THE_API
    transient = False  # a login page does not go away in a second: retry on the next sync


class GatewayLockHeld(GatewayError):
    """408 or 409 on a scan-lock request: a lock is held (by us or by someone else)."""


class GatewayUnauthorized(GatewayError):
    """401: the API token is missing or unknown."""

    reply = GatewayReply.UNAUTHORIZED


class GatewayForbidden(GatewayError):
    """403: the token is known but lacks permission (or needs HTTPS)."""

    reply = GatewayReply.FORBIDDEN


_STATUS_ERRORS: dict[int, tuple[type[GatewayError], str]] = {
    401: (
        GatewayUnauthorized,
        "the API token was not accepted (401): check the token file "
        "holds name:secret of an api-token resource on this gateway",
    ),
    403: (
        GatewayForbidden,
        "the API token lacks permission (403): grant its security level "
        "read and write permissions, or use HTTPS if the token requires a secure channel",
    ),
    503: (GatewayStarting, "the gateway is starting (503); retrying later"),
    408: (GatewayLockHeld, "a lock is held (408)"),
    409: (GatewayLockHeld, "a lock is held (409)"),
}


@attrs.frozen(slots=True)
class Reply:
    """One answer of the gateway, read whole (within REPLY_LIMIT): what `check` and the
    callers read of it, as requests' Response offered it."""

    status_code: int
    headers: urllib3.HTTPHeaderDict
    url: str
    content: bytes

    @property
    def text(self) -> str:
        """The body as text (the charset the answer names, else UTF-8), for messages."""
        charset = self.headers.get("Content-Type", "").partition("charset=")[2]
        try:
            return self.content.decode(charset.split(";")[0].strip("\"' ") or "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (UTF-8, -16 or -32); ValueError if it is not."""
        return json.loads(self.content)


def check(response: Reply, what: str) -> Reply:
    """Return `response` if 2xx, else raise the GatewayError subclass its status calls for."""
    if 200 <= response.status_code < 300:
        return response
    body = redact(response.text[:BODY_LIMIT].replace("\n", " "))
    known = _STATUS_ERRORS.get(response.status_code)
    error: GatewayError
    if known is not None:
        error = known[0](f"{what}: {known[1]}")
    elif 300 <= response.status_code < 400:
        error = GatewayNotTheApi(
            f"{what}: {not_the_api(response)}: a redirect to "
            f"{redact(response.headers.get('Location', '(nowhere)'))[:BODY_LIMIT]!r} "
            "(a login page of a proxy in front of the gateway, or a gateway that is not "
            "commissioned yet); retrying later"
        )
    elif response.status_code >= 500:
        error = GatewayUnavailable(f"{what}: gateway error {response.status_code}: {body}")
    else:
        url = redact(response.url.split("?", 1)[0])[:BODY_LIMIT]
        error = GatewayError(
            f"{what}: unexpected HTTP {response.status_code} from {url}: {body!r}; retrying later"
        )
    error.status = response.status_code
    raise error


def not_the_api(response: Reply) -> str:
    """'the answer at URL is not the gateway API's (HTTP n, type)', URL without credentials."""
    url = redact(response.url.split("?", 1)[0])[:BODY_LIMIT]
    kind = response.headers.get("Content-Type", "no content type")[:60]
    return f"the answer at {url} is not the gateway API's (HTTP {response.status_code}, {kind})"


def _is_json(response: Reply) -> bool:
    kind = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


@attrs.frozen(slots=True)
class DesignerSession:
    """One open Designer."""

    user: str
    project: str

    def __str__(self) -> str:
        return f"{self.user} on {self.project}"


@attrs.frozen(slots=True, kw_only=True)
class GatewaySettings:
    """How to reach the gateway."""

    url: str
    token_file: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    timeout: float = 10.0


class GatewayClient:
    """A small, retrying client; every call names what it was doing in its errors."""

    def __init__(
        self, settings: GatewaySettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self._sleep = sleep
        from requests.utils import get_environ_proxies

        # The environment's proxy (NO_PROXY honoured) and CA bundle, read once for the gateway's
        # address, which every call shares (~/.netrc is not read: its credentials were never
        # meant for the gateway).
        self._proxies = get_environ_proxies(self.base)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if settings.insecure:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS verification of the gateway is off (--gateway-insecure)")
        self._verify: bool | str = (
            False if settings.insecure else (settings.ca_file or bundle or True)
        )
        self._route: Route | None = None  # made at the first call, whose errors it raises

    def close(self) -> None:
        """Close the connection pool."""
        if self._route is not None:
            self._route.adapter.close()

    def _token(self) -> str | None:
        if not self.settings.token_file:
            return None
        with open(self.settings.token_file, encoding="utf-8") as handle:
            return handle.read().strip() or None

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        auth: bool = True,
        json: Any = None,
        idempotent: bool = True,
    ) -> Reply:
        """One request; a call safe to repeat is tried again after a transient failure."""
        import requests
        import urllib3

        tries = TRIES if idempotent else 1
        headers = {}
        token = self._token() if auth else None
        if token:
            headers["X-Ignition-API-Token"] = token
        body = None if json is None else json_body(json)
        for attempt in range(1, tries + 1):
            try:
                return check(self._send(method, path, headers, body), what)
            except (urllib3.exceptions.HTTPError, requests.RequestException) as e:
                error: GatewayError = GatewayUnavailable(f"{what}: {_describe(e)}")
            except _NoAnswer as e:
                error = GatewayUnavailable(f"{what}: {e}")
            except ReplyTooLarge as e:
                error = GatewayNotTheApi(f"{what}: {e}, not an answer of the gateway API")
            except ReplyRefused as e:
                error = GatewayUnavailable(f"{what}: {e}")
            except GatewayUnavailable as e:
                error = e
            if attempt == tries or not getattr(error, "transient", False):
                raise error
            self._sleep(0.5 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Reply:
        """One request through urllib3's pool for the gateway, as requests would send it
        (same pool, TLS, proxy and headers) without its per-call preparation (~0.6 ms of CPU
        a call, ten calls a sync); the answer read whole within its bounds."""
        import urllib3

        if self._route is None:
            self._route = Route.to(self.base, self._verify, self._proxies)
        route = self._route
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        seconds = self.settings.timeout  # both the connect and the read timeout, as requests
        try:
            raw = route.open(method, path, body, headers, (seconds, seconds))
        except (urllib3.exceptions.HTTPError, OSError) as e:  # said as requests said them
            raise _NoAnswer(_no_answer(e)) from None
        content = read_stream(raw, limit=REPLY_LIMIT, within=self.settings.timeout)
        return Reply(raw.status, raw.headers, route.url + path, content)

    def _json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One call whose answer must be JSON; anything else is GatewayNotTheApi quoting it."""
        return self._parse(self._call(method, path, what, **kwargs), what)

    def _parse(self, response: Reply, what: str) -> Any:
        """The JSON body of `response`, which must say it is JSON and be JSON."""
        try:
            if not _is_json(response):
                raise ValueError
            return response.json()
        except ValueError:
            secrets = [t for t in [self._token()] if t]
            body = redact(response.text[:BODY_LIMIT], secrets).replace("\n", " ")
            raise GatewayNotTheApi(
                f"{what}: {not_the_api(response)}: the answer is not JSON (a proxy's login page, "
                f"or something else listening at {redact(self.settings.url)}?): {body!r}; "
                "retrying later"
            ) from None

    def ping(self) -> str:
        """`/StatusPing` state (RUNNING, STARTING…), no token needed."""
        body = self._json("GET", "/StatusPing", "checking gateway status", auth=False)
        return str(body.get("state", "")) if isinstance(body, dict) else ""

    def info(self) -> dict[str, Any]:
        """`/data/api/v1/gateway-info` (name, redundancyRole, deploymentMode, version…)."""
        what = "reading gateway info"
        body = self._json("GET", "/data/api/v1/gateway-info", what)
        if not isinstance(body, dict):
            raise _wrong_shape(what, self.settings.url, "an object", body)
        return body

    def designers(self) -> list[DesignerSession]:
        """Open Designer sessions."""
        what = "listing Designer sessions"
        body = self._json("GET", "/data/api/v1/designers", what)
        return [
            DesignerSession(str(i.get("user", "?")), str(i.get("project", "?")))
            for i in _items(body, what, self.settings.url)
        ]

    def pending_restarts(self) -> list[str]:
        """`/data/api/v1/restart-tasks/pending`: the changes the gateway says need a restart
        (the first few, each cut short: they reach the status)."""
        what = "reading pending restart tasks"
        body = self._json("GET", "/data/api/v1/restart-tasks/pending", what)
        pending = body.get("pending") if isinstance(body, dict) else None
        if not isinstance(pending, list):
            raise _wrong_shape(what, self.settings.url, '{"pending": [...]}', body)
        return [str(task)[:RESTART_TASK_CHARS] for task in pending[:RESTART_TASKS]]

    def uptime(self) -> float:
        """Seconds since the gateway started (`/data/api/v1/overview`, `uptime` in ms)."""
        what = "reading the gateway overview"
        body = self._json("GET", "/data/api/v1/overview", what)
        uptime = body.get("uptime") if isinstance(body, dict) else None
        if isinstance(uptime, bool) or not isinstance(uptime, int | float) or uptime < 0:
            raise _wrong_shape(what, self.settings.url, 'an object with "uptime" (ms)', body)
        return float(uptime) / 1000.0

    def projects(self) -> set[str]:
        """Names of the projects the gateway has loaded."""
        what = "listing projects"
        body = self._json("GET", "/data/api/v1/projects/list?limit=-1", what)
        return {str(i["name"]) for i in _items(body, what, self.settings.url) if "name" in i}

    def scan(self, kind: str) -> ScanStatus:
        """Ask for a scan of `projects` or `config` (this also releases its scan lock).

        Safe to repeat, so retried: a second request while a scan runs only queues one more."""
        what = f"requesting a {kind} scan"
        body = self._json("POST", f"/data/api/v1/scan/{kind}", what)
        return _scan_status(body, what, self.settings.url)

    def scan_status(self, kind: str) -> ScanStatus:
        """The current state of the `kind` scan."""
        what = f"reading {kind} scan status"
        body = self._json("GET", f"/data/api/v1/scan/{kind}", what)
        return _scan_status(body, what, self.settings.url)

    def token_name(self) -> str:
        """The API token's name (before the colon): the actor the gateway names for our locks."""
        return (self._token() or "").partition(":")[0]

    def acquire_lock(self, kind: str, hold_seconds: int) -> HeldLock | None:
        """One request for the `kind` scan lock: the lock granted, or None if the gateway has
        no scan locks (404). 408/409 raise GatewayLockHeld. Not retried here: a lost answer
        may mean the lock was taken (see stoker_agent.scanlocking)."""
        what = f"taking the {kind} scan lock"
        try:
            body = self._json(
                "POST",
                f"/data/api/v1/scan-lock/{kind}",
                what,
                json={"acquireTimeout": 10, "holdTimeout": hold_seconds},
                idempotent=False,
            )
        except GatewayError as e:
            if e.status == 404:
                return None
            raise
        return _held_lock(body, what, self.settings.url)

    def held_lock(self, kind: str) -> HeldLock | None:
        """The `kind` scan lock held now, or None (204: nobody holds it)."""
        what = f"reading the {kind} scan lock"
        response = self._call("GET", f"/data/api/v1/scan-lock/{kind}", what)
        if response.status_code == 204:
            return None
        return _held_lock(self._parse(response, what), what, self.settings.url)

    def wait_for_scan(
        self,
        kind: str,
        since_ms: int,
        timeout: float,
        *,
        like: ScanStatus | None = None,
        asked_at: float | None = None,
    ) -> ScanStatus:
        """Poll until a `kind` scan that started after `since_ms` has finished: soon for a
        quick scan, then less and less often (see scan_pauses). `like`: what the request for it
        answered (at `asked_at`, time.monotonic()), whose last scan's duration says when this
        one is likely done."""
        now = time.monotonic()
        deadline = now + timeout
        expected = expected_scan(like, time.time()) if like is not None else 0.0
        pauses = scan_pauses(expected, now - (now if asked_at is None else asked_at))
        while True:
            pause = next(pauses)
            if pause:
                self._sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
            status = self.scan_status(kind)
            if not status.active and status.last_timestamp >= since_ms:
                return status
            if time.monotonic() > deadline:
                raise GatewayUnhealthy(f"the {kind} scan did not finish within {timeout:.0f}s")


RESTART_TASKS = 10  # pending restart tasks reported; the gateway may list more
RESTART_TASK_CHARS = 200


def _wrong_shape(what: str, url: str, wanted: str, body: Any) -> GatewayNotTheApi:
    """The error for JSON that is not what the API answers (an empty list would be a lie)."""
    seen = redact(json.dumps(body)[:BODY_LIMIT])
    return GatewayNotTheApi(
        f"{what}: the answer at {redact(url)} is not the gateway API's: expected {wanted}, "
        f"got {seen!r}; retrying later"
    )


def _items(body: Any, what: str, url: str) -> list[dict[str, Any]]:
    """The objects of a list reply (`{"items": [...]}` or a bare list); other shapes raise."""
    items = body.get("items") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise _wrong_shape(what, url, 'a list or {"items": [...]}', body)
    return [i for i in items if isinstance(i, dict)]


def _scan_status(body: Any, what: str, url: str = "the gateway") -> ScanStatus:
    try:
        if not isinstance(body, dict):
            raise TypeError
        return ScanStatus(
            bool(body.get("scanActive")),
            int(body.get("lastScanTimestamp") or 0),
            int(body.get("lastScanDuration") or 0),
        )
    except (TypeError, ValueError):
        raise _wrong_shape(what, url, "a scan status", body) from None


def _held_lock(body: Any, what: str, url: str) -> HeldLock:
    held = HeldLock.from_reply(body)
    if held is None:
        raise _wrong_shape(what, url, "{actor, remaining, timestamp}", body)
    return held


class _NoAnswer(Exception):
    """The request got no answer; the message says why, as `_describe` words it."""


class Route:
    """How every call reaches the gateway: requests' own urllib3 pool for its address (TLS
    as `verify` says, through the environment's proxy if any), and what each call adds."""

    def __init__(self, adapter: Any, pool: Any, url: str, prefix: str, headers: Any) -> None:
        import urllib3

        self.adapter = adapter  # owns the pool (and a proxy's manager): closed with the client
        self.pool = pool
        self.url = url  # the gateway's address as requests prepared it, for messages
        self.prefix = prefix  # put before each path: the whole URL through an HTTP proxy
        self.headers = headers  # requests' defaults, and Basic auth for credentials in the URL
        self.retries = urllib3.Retry(0, read=False)  # requests' own: ours are in _call

    def open(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: tuple[float, float],
    ) -> urllib3.BaseHTTPResponse:
        """Send one request as requests would (its default headers, no redirect followed, no
        retry, the body left unread and undecoded for read_stream); `timeout`: (connect, read)
        seconds. Raises urllib3's (or the socket's) error when there is no answer."""
        import urllib3

        return self.pool.urlopen(  # type: ignore[no-any-return]
            method=method,
            url=self.prefix + path,
            body=body,
            headers={**self.headers, **headers},
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            retries=self.retries,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            chunked=False,
        )

    @classmethod
    def to(
        cls,
        base: str,
        verify: bool | str,
        proxies: dict[str, str],
        cert: tuple[str, str] | None = None,
    ) -> Route:
        """The route to `base`, made by requests' adapter as for its first request (`cert`: a
        client certificate and key); a URL it refuses raises its exception (an OSError for a
        CA bundle or certificate that is not there)."""
        import requests
        from requests.utils import default_headers, urldefragauth

        prepared = requests.Request("GET", base + "/", headers=default_headers()).prepare()
        adapter = requests.adapters.HTTPAdapter()
        pool = adapter.get_connection_with_tls_context(prepared, verify, proxies, cert)
        adapter.cert_verify(pool, prepared.url or base, verify, cert)  # type: ignore[no-untyped-call]
        url = urldefragauth(prepared.url or base).rstrip("/")
        proxied = adapter.request_url(prepared, proxies) != prepared.path_url
        prefix = url if proxied else prepared.path_url.rstrip("/")
        return cls(adapter, pool, url, prefix, dict(prepared.headers))


def json_body(value: Any) -> bytes:
    """A JSON request body as requests encodes one (NaN refused)."""
    return json.dumps(value, allow_nan=False).encode("utf-8")


def _no_answer(error: Exception) -> str:
    """What went wrong with a request urllib3 raised `error` for, in the words `_describe`
    gives the requests exception HTTPAdapter.send turns it into."""
    said = {
        "SSLError": TLS_FAILED,
        "ConnectTimeout": "timed out",
        "ReadTimeout": "timed out",
        "ConnectionError": UNREACHABLE,
        "ProxyError": UNREACHABLE,
    }
    return said.get(requests_name(error)) or redact(str(error))[:BODY_LIMIT]


def requests_name(error: Exception) -> str:
    """The name of the requests exception HTTPAdapter.send raises for urllib3's (or the
    socket's) `error` (the name of `error` itself where it lets it through)."""
    import urllib3.exceptions as u

    if isinstance(error, u.MaxRetryError):
        reason = error.reason
        if isinstance(reason, u.ConnectTimeoutError) and not isinstance(
            reason, u.NewConnectionError
        ):
            return "ConnectTimeout"
        if isinstance(reason, u.ResponseError):
            return "RetryError"
        if isinstance(reason, u.ProxyError):
            return "ProxyError"
        return "SSLError" if isinstance(reason, u.SSLError) else "ConnectionError"
    if isinstance(error, u.ProtocolError | OSError | u.ClosedPoolError):
        return "ConnectionError"
    if isinstance(error, u.ProxyError):
        return "ProxyError"
    if isinstance(error, u.SSLError):
        return "SSLError"
    if isinstance(error, u.ReadTimeoutError):
        return "ReadTimeout"
    return "InvalidHeader" if isinstance(error, u.InvalidHeader) else type(error).__name__


TLS_FAILED = "TLS failed (give --gateway-ca-file, or --gateway-insecure to skip checks)"
UNREACHABLE = "connection refused or gateway unreachable"


def _describe(error: Exception) -> str:
    """What went wrong, for a requests exception (a URL it refuses) or another urllib3 one."""
    import requests
    import urllib3

    if isinstance(error, urllib3.exceptions.HTTPError):
        return _no_answer(error)
    if isinstance(error, requests.exceptions.SSLError):
        return TLS_FAILED
    if isinstance(error, requests.exceptions.ConnectTimeout | requests.exceptions.ReadTimeout):
        return "timed out"
    if isinstance(error, requests.exceptions.ConnectionError):
        return UNREACHABLE
    return redact(str(error))[:BODY_LIMIT]
