"""Read what the installed GatewaySync CRD serves, at the controller's start, without any right
beyond those it has: the published OpenAPI v3 schema of stoker.io/v1alpha1 (open to every
authenticated client: `system:discovery`) gives the fields and whether the status subresource
exists; a one-item Table list of GatewaySyncs gives the printer columns. stoker_core.crdfit
compares them with the CRD this release generates."""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import urllib3

from stoker_core import crdfit
from stoker_core.schema import crd
from stoker_core.vocabulary import API_GROUP, API_VERSION, KIND, PLURAL

log = logging.getLogger("stoker.controller")
TIMEOUT = (5, 30)  # seconds: connect, read
_TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
# The API server's name for the GatewaySync schema in its OpenAPI document.
_SCHEMA = ".".join(reversed(API_GROUP.split("."))) + f".{API_VERSION}.{KIND}"


@attrs.frozen(slots=True)
class Installed:
    """The installed CRD as served: object schema, printer column names, status subresource."""

    schema: dict[str, Any]
    columns: frozenset[str]
    status_subresource: bool

    def status_schema(self) -> dict[str, Any]:
        """The schema of `.status` ({}: none)."""
        found: dict[str, Any] = (self.schema.get("properties") or {}).get("status") or {}
        return found


def _get(api: Any, path: str, accept: str = "application/json") -> Any:
    """The JSON answer to a GET of `path` (ApiException on an error status)."""
    from kubernetes.client.exceptions import ApiException

    method, url, headers, body, post = api.param_serialize(
        "GET", path, header_params={"Accept": accept}, auth_settings=["BearerToken"]
    )
    response = api.call_api(method, url, headers, body, post, _request_timeout=TIMEOUT)
    response.read()
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=response.reason)
    return json.loads(response.data)


def installed(api: Any) -> Installed:
    """What the API server serves for GatewaySyncs now."""
    document = _get(api, f"/openapi/v3/apis/{API_GROUP}/{API_VERSION}")
    schema = document["components"]["schemas"][_SCHEMA]
    status_path = (
        f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}/status"
    )
    table = _get(api, f"/apis/{API_GROUP}/{API_VERSION}/{PLURAL}?limit=1", accept=_TABLE)
    return Installed(
        schema=schema,
        columns=frozenset(c["name"] for c in table.get("columnDefinitions") or []),
        status_subresource=status_path in document.get("paths", {}),
    )


def check(api: Any) -> tuple[crdfit.Gaps, Installed] | None:
    """The gaps of the installed CRD and what was read; None (and one warning) when it could
    not be read, so the controller runs as before."""
    from kubernetes.client.exceptions import ApiException

    try:
        found = installed(api)
    except (ApiException, urllib3.exceptions.HTTPError, OSError, KeyError, ValueError) as e:
        log.warning("could not check the installed %s CRD against this release: %s", KIND, e)
        return None
    return crdfit.gaps(crd(), found.schema, found.columns, found.status_subresource), found
