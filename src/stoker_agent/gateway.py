"""Client for the Ignition gateway's HTTP API (8.3): scans, scan locks, health, Designers,
projects. One exception tree; `check` picks the class from the response, in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from stoker_core.errors import Blocked, StokerError, TemporaryError
from stoker_core.outcomes import GatewayReply
from stoker_core.redaction import redact

if TYPE_CHECKING:  # requests costs ~45 ms to import: only a sync with a gateway pays it
    import requests

log = logging.getLogger("stoker.gateway")
BODY_LIMIT = 200  # characters of a response body kept in messages


class GatewayError(StokerError):
    """The gateway answered in a way Stoker cannot use; `status` is the HTTP status, if any."""

    reply = GatewayReply.UNHEALTHY
    status: int | None = None


class GatewayUnavailable(GatewayError, TemporaryError):
    """No answer (refused, timed out, TLS failure) or a 5xx: retry later."""

    reply = GatewayReply.TRANSPORT_ERROR
    retryable = True

    def __init__(self, message: str) -> None:
        TemporaryError.__init__(self, message)


class GatewayStarting(GatewayUnavailable):
    """503: the gateway is starting or restarting."""

    reply = GatewayReply.STARTING


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
}


def check(response: requests.Response, what: str) -> requests.Response:
    """Return `response` if 2xx, else raise the GatewayError subclass its status calls for."""
    if 200 <= response.status_code < 300:
        return response
    body = redact(response.text[:BODY_LIMIT].replace("\n", " "))
    known = _STATUS_ERRORS.get(response.status_code)
    error: GatewayError
    if known is not None:
        error = known[0](f"{what}: {known[1]}")
    elif response.status_code >= 500:
        error = GatewayUnavailable(f"{what}: gateway error {response.status_code}: {body}")
    else:
        error = GatewayError(f"{what}: unexpected HTTP {response.status_code}: {body}")
    error.status = response.status_code
    raise error


@attrs.frozen(slots=True)
class ScanStatus:
    """The state of one scan kind."""

    active: bool
    last_timestamp: int
    last_duration: int


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
        import requests

        self._session = requests.Session()
        if settings.insecure:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS verification of the gateway is off (--gateway-insecure)")
        self._verify: bool | str = False if settings.insecure else (settings.ca_file or True)

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

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
        tries: int = 3,
    ) -> requests.Response:
        import requests

        headers = {}
        token = self._token() if auth else None
        if token:
            headers["X-Ignition-API-Token"] = token
        for attempt in range(1, tries + 1):
            try:
                response = self._session.request(
                    method,
                    self.base + path,
                    headers=headers,
                    json=json,
                    timeout=self.settings.timeout,
                    verify=self._verify,
                    allow_redirects=False,
                )
                return check(response, what)
            except requests.RequestException as e:
                error: GatewayError = GatewayUnavailable(f"{what}: {_describe(e)}")
            except GatewayStarting as e:
                error = e
            if attempt == tries:
                raise error
            self._sleep(0.5 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One call whose answer must be JSON; anything else is a GatewayError quoting it."""
        response = self._call(method, path, what, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise GatewayError(
                f"{what}: the answer is not JSON (is something else listening at "
                f"{redact(self.settings.url)}?): {redact(response.text[:BODY_LIMIT])}"
            ) from None

    def ping(self) -> str:
        """`/StatusPing` state (RUNNING, STARTING…), no token needed."""
        body = self._json("GET", "/StatusPing", "checking gateway status", auth=False)
        return str(body.get("state", "")) if isinstance(body, dict) else ""

    def info(self) -> dict[str, Any]:
        """`/data/api/v1/gateway-info` (name, redundancyRole, deploymentMode, version…)."""
        body = self._json("GET", "/data/api/v1/gateway-info", "reading gateway info")
        return body if isinstance(body, dict) else {}

    def designers(self) -> list[DesignerSession]:
        """Open Designer sessions."""
        body = self._json("GET", "/data/api/v1/designers", "listing Designer sessions")
        return [
            DesignerSession(str(i.get("user", "?")), str(i.get("project", "?")))
            for i in _items(body)
        ]

    def projects(self) -> set[str]:
        """Names of the projects the gateway has loaded."""
        body = self._json("GET", "/data/api/v1/projects/list?limit=-1", "listing projects")
        return {str(i["name"]) for i in _items(body) if "name" in i}

    def scan(self, kind: str) -> ScanStatus:
        """Ask for a scan of `projects` or `config` (this also releases its scan lock)."""
        return _scan_status(
            self._json("POST", f"/data/api/v1/scan/{kind}", f"requesting a {kind} scan")
        )

    def scan_status(self, kind: str) -> ScanStatus:
        """The current state of the `kind` scan."""
        return _scan_status(
            self._json("GET", f"/data/api/v1/scan/{kind}", f"reading {kind} scan status")
        )

    def lock(self, kind: str, hold_seconds: int = 120) -> bool:
        """Hold off scans of `kind` while files change; False if the gateway offers no lock."""
        try:
            self._call(
                "POST",
                f"/data/api/v1/scan-lock/{kind}",
                f"taking the {kind} scan lock",
                json={"acquireTimeout": 10, "holdTimeout": hold_seconds},
                tries=1,
            )
        except GatewayError as e:
            if e.status == 404:
                return False
            if e.status in (408, 409):
                raise Blocked(f"the gateway's {kind} scan lock is held by someone else") from None
            raise
        return True

    def wait_for_scan(self, kind: str, since_ms: int, timeout: float) -> ScanStatus:
        """Poll until a `kind` scan that started after `since_ms` has finished."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.scan_status(kind)
            if not status.active and status.last_timestamp >= since_ms:
                return status
            if time.monotonic() > deadline:
                raise GatewayError(f"the {kind} scan did not finish within {timeout:.0f}s")
            self._sleep(0.2)


def _items(body: Any) -> list[dict[str, Any]]:
    """The objects of a list reply (`{"items": [...]}` or a bare list); anything else is none."""
    items = body.get("items") if isinstance(body, dict) else body
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _scan_status(body: Any) -> ScanStatus:
    try:
        if not isinstance(body, dict):
            raise TypeError
        return ScanStatus(
            bool(body.get("scanActive")),
            int(body.get("lastScanTimestamp") or 0),
            int(body.get("lastScanDuration") or 0),
        )
    except (TypeError, ValueError):
        raise GatewayError(f"unexpected scan reply: {str(body)[:BODY_LIMIT]}") from None


def _describe(error: requests.RequestException) -> str:
    import requests

    if isinstance(error, requests.exceptions.SSLError):
        return "TLS failed (give --gateway-ca-file, or --gateway-insecure to skip checks)"
    if isinstance(error, requests.exceptions.ConnectTimeout | requests.exceptions.ReadTimeout):
        return "timed out"
    if isinstance(error, requests.exceptions.ConnectionError):
        return "connection refused or gateway unreachable"
    return redact(str(error))[:BODY_LIMIT]
