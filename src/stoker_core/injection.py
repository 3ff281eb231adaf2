"""The sidecar injection decision: from (pod, GatewaySyncs in its namespace, settings) to a
JSONPatch that adds the agent as a native sidecar, or a denial with the documented message.

Differs from the original on purpose: a paused GatewaySync still gets the sidecar (the agent
idles), a pod with no Ignition data volume is admitted without the sidecar and with a warning
(never blocked: a plant gateway must always be able to restart), a pod without a profile
annotation uses `default` (D1), and Stoker's volume names never collide with the pod's (B19).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from stoker_core.discovery import gateway_name
from stoker_core.errors import InvalidInput
from stoker_core.metadata import agent_token_for
from stoker_core.model import GatewaySync, VarFrom
from stoker_core.preboot import STARTUP_PROBE_FAILURES, STARTUP_PROBE_PERIOD, startup_timeout
from stoker_core.profiles import resolve
from stoker_core.vocabulary import AGENT_CONTAINER, DEFAULT_PROFILE, Annotation, Label

DATA_VOLUMES = ("ignition-data", "data")
DEFAULT_MOUNT = "/ignition-data"
API_ACCESS_DIR = "/etc/stoker/api-access"  # the agent's own token and the cluster CA
IGNITION_UID = 2003  # the official Ignition image's `ignition` user and group
DEFAULT_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"cpu": "200m", "memory": "256Mi"},
}


@attrs.frozen(slots=True, kw_only=True)
class InjectionSettings:
    """Webhook-wide settings (from the controller's flags)."""

    default_image: str = "ghcr.io/stoker-io/stoker:latest"
    health_port: int = 8082


@attrs.frozen(slots=True)
class Decision:
    """Allowed with a patch (maybe empty) and warnings, or denied with a message. `event` is
    the reason of a Warning event to record on the GatewaySync `cr` (message: the warnings)."""

    allowed: bool
    message: str
    patch: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    event: str = ""
    cr: str = ""


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _pick_cr(pod: Mapping[str, Any], crs: Mapping[str, GatewaySync], ns: str) -> str | Decision:
    name = (pod.get("metadata", {}).get("annotations") or {}).get(Annotation.CR_NAME, "")
    if name:
        if name not in crs:
            return Decision(False, f"GatewaySync '{name}' not found in namespace '{ns}'")
        return str(name)
    if not crs:
        return Decision(False, f"no GatewaySync CR found in namespace '{ns}'")
    if len(crs) > 1:
        names = ", ".join(sorted(crs))
        return Decision(
            False,
            f"multiple GatewaySync CRs in namespace '{ns}': [{names}] — set "
            f"annotation '{Annotation.CR_NAME}' explicitly",
        )
    return next(iter(crs))


def _pod_label(meta: Mapping[str, Any]) -> str:
    """The pod's name, or its generateName prefix with `*` (no name yet at admission)."""
    return str(meta.get("name") or f"{meta.get('generateName', '')}*")


def _data_volume(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    spec = pod.get("spec", {})
    annotations = pod.get("metadata", {}).get("annotations") or {}
    wanted = (
        [annotations[Annotation.DATA_VOLUME]]
        if annotations.get(Annotation.DATA_VOLUME)
        else list(DATA_VOLUMES)
    )
    present = {v.get("name") for v in spec.get("volumes") or []}
    for name in wanted:
        if name in present:
            for container in spec.get("containers") or []:
                for mount in container.get("volumeMounts") or []:
                    if mount.get("name") == name:
                        return name, str(mount.get("mountPath", DEFAULT_MOUNT))
            return name, DEFAULT_MOUNT
    return None


def decide(
    pod: Mapping[str, Any],
    namespace: str,
    crs: Mapping[str, GatewaySync],
    settings: InjectionSettings = InjectionSettings(),
) -> Decision:
    """Decide what to do with a pod being created."""
    problem = _malformed(pod)
    if problem:  # never from the API server (it sends typed pods): admit untouched, say why
        return Decision(True, "malformed pod", warnings=(f"{problem}; admitted untouched",))
    meta = pod.get("metadata", {})
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    if annotations.get(Annotation.INJECT) != "true":
        return Decision(True, "injection not requested")
    spec = pod.get("spec", {})
    if any(c.get("name") == AGENT_CONTAINER for c in spec.get("initContainers") or []):
        return Decision(True, "already injected")
    picked = _pick_cr(pod, crs, namespace)
    if isinstance(picked, Decision):
        return picked
    gs = crs[picked]
    profile = annotations.get(Annotation.PROFILE) or DEFAULT_PROFILE
    if profile not in gs.spec.sync.profiles:
        return Decision(False, f"profile '{profile}' not found in GatewaySync '{picked}'")
    data = _data_volume(pod)
    if data is None:
        hint = (
            f"pod {_pod_label(meta)} has no Ignition data volume ('ignition-data' or 'data'); it "
            f"is admitted without the Stoker agent. Name the volume with the annotation "
            f"'{Annotation.DATA_VOLUME}' and recreate the pod"
        )
        return Decision(True, "no data volume", warnings=(hint,), event="NoDataVolume", cr=picked)
    notes: tuple[str, ...] = ()
    try:
        startup_timeout(annotations.get(Annotation.STARTUP_TIMEOUT), where="")
    except InvalidInput as e:  # never a denial: the agent starts with the default
        notes = (f"annotation {Annotation.STARTUP_TIMEOUT}: {e}; the default is used",)
        annotations = {k: v for k, v in annotations.items() if k != Annotation.STARTUP_TIMEOUT}
    taken = {v.get("name") for v in spec.get("volumes") or []}
    names = _volume_names(taken)
    volumes, mounts = _volumes(gs, picked, names, data)
    var_files = _var_volumes(resolve(gs.spec.sync, profile).vars_from, taken, volumes, mounts)
    data_path = _place_data(mounts, data[0])
    container = _container(gs, picked, profile, annotations, labels, settings, mounts, data_path)
    if var_files:
        container["env"].append(
            {"name": "STOKER_VAR_FILES", "value": json.dumps(var_files, sort_keys=True)}
        )
    secret_files = _secret_files(container, volumes, var_files.values())
    container["env"].append(
        {"name": "STOKER_SECRET_FILES", "value": json.dumps(secret_files, sort_keys=True)}
    )
    container["securityContext"].update(run_as(pod, data[0]))
    patch: list[dict[str, Any]] = []
    if spec.get("initContainers"):
        # After the pod's own init containers: a chart's seeding container fills an empty
        # data volume first, and the agent's first sync lands on top of it.
        patch.append({"op": "add", "path": "/spec/initContainers/-", "value": container})
    else:
        patch.append({"op": "add", "path": "/spec/initContainers", "value": [container]})
    if spec.get("volumes"):
        patch += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes]
    else:
        patch.append({"op": "add", "path": "/spec/volumes", "value": volumes})
    extra_annotations: dict[str, str] = {Annotation.INJECTED: "true"}
    if not annotations.get(Annotation.CR_NAME):
        extra_annotations[Annotation.CR_NAME] = picked
    patch += _map_ops("/metadata/annotations", meta.get("annotations"), extra_annotations)
    patch += _map_ops("/metadata/labels", meta.get("labels"), {Label.AGENT: "true"})
    warnings = ("GatewaySync is paused: the agent will idle",) if gs.spec.paused else ()
    return Decision(True, "injected", tuple(patch), warnings + notes)


def _strings(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _objects(value: Any, *named: str) -> bool:
    """A list of objects whose fields `named`, where present, are strings."""
    return isinstance(value, list) and all(
        isinstance(item, dict) and all(isinstance(item.get(n, ""), str) for n in named)
        for item in value
    )


def _malformed(pod: Mapping[str, Any]) -> str:
    """What is wrong with the shape of the pod parts `decide` reads ("" when nothing), so
    a hand-made review gets an answer, not a crash (H12)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return "the pod's metadata and spec must be objects"
    for key in ("annotations", "labels"):
        if not _strings(meta.get(key) or {}):
            return f"the pod's metadata.{key} must map strings to strings"
    for key, named in (
        ("containers", ("name",)),
        ("initContainers", ("name",)),
        ("volumes", ("name",)),
    ):
        if not _objects(spec.get(key) or [], *named):
            return f"the pod's spec.{key} must be a list of objects with string names"
    for container in spec.get("containers") or []:
        if not _objects(container.get("volumeMounts") or [], "name", "mountPath"):
            return "the pod's volumeMounts must be objects with string names and paths"
    return ""


def _place_data(mounts: list[dict[str, Any]], volume: str) -> str:
    """Where the agent mounts the data volume, and so its DATA_PATH: the gateway's own path
    when that is absolute and clear of the agent's other mounts, else DEFAULT_MOUNT. A data
    volume at /tmp, /repo or above /etc/stoker would otherwise give the agent two mounts at
    one path, or one inside the other: the pod would be invalid and never created (H12)."""
    [data] = [m for m in mounts if m["name"] == volume]
    path = posixpath.normpath(str(data["mountPath"]))
    own = [posixpath.normpath(m["mountPath"]) for m in mounts if m is not data]
    if not path.startswith("/") or any(_overlap(path, other) for other in own):
        path = DEFAULT_MOUNT
    data["mountPath"] = path
    return path


def _overlap(a: str, b: str) -> bool:
    """Tell whether two absolute, normalised paths are the same or one lies inside the other."""
    a_dir, b_dir = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a_dir.startswith(b_dir) or b_dir.startswith(a_dir)


def _map_ops(
    path: str, current: Mapping[str, str] | None, add: dict[str, str]
) -> list[dict[str, Any]]:
    if not current:
        return [{"op": "add", "path": path, "value": dict(add)}]
    return [{"op": "add", "path": f"{path}/{_escape(k)}", "value": v} for k, v in add.items()]


def _volume_names(taken: set[Any]) -> dict[str, str]:
    """Stoker's volume names, suffixed when the pod already uses one (B19)."""
    out = {}
    for role in (
        "repo",
        "tmp",
        "api-key",
        "api-access",
        "git-credentials",
        "git-token",
        "known-hosts",
    ):
        name, n = f"stoker-{role}", 2
        while name in taken:
            name, n = f"stoker-{role}-{n}", n + 1
        out[role] = name
    return out


def _var_volumes(
    sources: tuple[VarFrom, ...],
    taken: set[Any],
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> dict[str, str]:
    """Mount each Secret that varsFrom names (into the agent only); return var → file path."""
    files: dict[str, str] = {}
    used = taken | {v["name"] for v in volumes}
    by_secret: dict[str, str] = {}
    for source in sources:
        secret = source.secret_key_ref.name
        if secret not in by_secret:
            n, name = 0, "stoker-vars"
            while name in used:
                n += 1
                name = f"stoker-vars-{n}"
            used.add(name)
            by_secret[secret] = name
            volumes.append(_secret_volume(name, secret))
            mounts.append(
                {"name": name, "mountPath": f"/etc/stoker/vars/{secret}", "readOnly": True}
            )
        files[source.name] = f"/etc/stoker/vars/{secret}/{source.secret_key_ref.key}"
    return files


def _secret_volume(name: str, secret: str) -> dict[str, Any]:
    """Optional: a missing Secret must not hold the gateway in ContainerCreating; the agent
    reports which one it lacks and reads it once the kubelet mounts it (issue 15)."""
    return {"name": name, "secret": {"secretName": secret, "defaultMode": 0o444, "optional": True}}


def _secret_files(
    container: Mapping[str, Any], volumes: list[dict[str, Any]], var_files: Iterable[str]
) -> dict[str, str]:
    """Each Secret file the agent reads → the Secret it comes from, so that an agent missing
    one (the volumes are optional) can name the Secret to create."""
    secret_of = {v["name"]: v["secret"]["secretName"] for v in volumes if "secret" in v}
    dirs = {
        m["mountPath"]: secret_of[m["name"]]
        for m in container["volumeMounts"]
        if m["name"] in secret_of
    }
    files = [*(e["value"] for e in container["env"] if "value" in e), *var_files]
    return {f: dirs[posixpath.dirname(f)] for f in files if posixpath.dirname(f) in dirs}


def run_as(pod: Mapping[str, Any], volume: str) -> dict[str, int]:
    """The agent's user and group: those of the gateway container (the one mounting the data
    volume), else the pod's (group: then its fsGroup), else Ignition's own 2003, so the files
    the agent writes are owned like the gateway's. Root is never inherited: the Ignition image
    starts as root and drops to 2003, and the agent must run as non-root."""
    spec: Mapping[str, Any] = pod.get("spec") or {}
    gateway: Mapping[str, Any] = next(
        (
            c
            for c in spec.get("containers") or []
            if any(m.get("name") == volume for m in c.get("volumeMounts") or [])
        ),
        {},
    )
    own, shared = gateway.get("securityContext"), spec.get("securityContext")
    found = [c for c in (own, shared) if isinstance(c, dict)]
    fs_group = shared.get("fsGroup") if isinstance(shared, dict) else None
    user = _first_id(c.get("runAsUser") for c in found)
    group = _first_id([*(c.get("runAsGroup") for c in found), fs_group])
    return {"runAsUser": user or IGNITION_UID, "runAsGroup": group or IGNITION_UID}


def _first_id(values: Iterable[Any]) -> int | None:
    """The first value that is a non-root numeric id (a hand-made review may hold anything)."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
            return value
    return None


def _api_access_volume(name: str, cr: str) -> dict[str, Any]:
    """The agent's own API credentials: the token of the GatewaySync's agent ServiceAccount
    (kept fresh by the controller; optional, so a pod never waits for it) and the cluster CA.
    Mounted into the sidecar only: the gateway container holds just the pod's ServiceAccount,
    to which Stoker grants nothing (H15)."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 0o444,
            "sources": [
                {
                    "secret": {
                        "name": agent_token_for(cr),
                        "optional": True,
                        "items": [{"key": "token", "path": "token"}],
                    }
                },
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
            ],
        },
    }


def _volumes(
    gs: GatewaySync, cr: str, names: dict[str, str], data: tuple[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes = [
        {"name": names["repo"], "emptyDir": {}},
        {"name": names["tmp"], "emptyDir": {}},
        _secret_volume(names["api-key"], gs.spec.gateway.api.secret_name),
        _api_access_volume(names["api-access"], cr),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": names["repo"], "mountPath": "/repo"},
        {"name": names["tmp"], "mountPath": "/tmp"},
        {"name": names["api-key"], "mountPath": "/etc/stoker/api-key", "readOnly": True},
        {"name": names["api-access"], "mountPath": API_ACCESS_DIR, "readOnly": True},
        {"name": data[0], "mountPath": data[1]},
    ]
    auth = gs.spec.git.auth
    credential = (
        auth.ssh_key.secret_ref
        if auth and auth.ssh_key
        else auth.token.secret_ref
        if auth and auth.token
        else None
    )
    if credential is not None:
        volumes.append(_secret_volume(names["git-credentials"], credential.name))
        mounts.append(
            {
                "name": names["git-credentials"],
                "mountPath": "/etc/stoker/git-credentials",
                "readOnly": True,
            }
        )
    elif auth and auth.github_app:
        volumes.append(_secret_volume(names["git-token"], f"stoker-github-token-{cr}"))
        mounts.append(
            {"name": names["git-token"], "mountPath": "/etc/stoker/git-token", "readOnly": True}
        )
    if auth and auth.ssh_key and auth.ssh_key.known_hosts:
        volumes.append(
            _secret_volume(names["known-hosts"], auth.ssh_key.known_hosts.secret_ref.name)
        )
        mounts.append(
            {"name": names["known-hosts"], "mountPath": "/etc/stoker/known-hosts", "readOnly": True}
        )
    return volumes, mounts


def _image(gs: GatewaySync, annotations: Mapping[str, str], settings: InjectionSettings) -> str:
    if annotations.get(Annotation.AGENT_IMAGE):
        return annotations[Annotation.AGENT_IMAGE]
    image = gs.spec.agent.image if gs.spec.agent else None
    if image and image.repository:
        return f"{image.repository}:{image.tag or 'latest'}"
    return settings.default_image


def _env(
    gs: GatewaySync,
    cr: str,
    profile: str,
    annotations: Mapping[str, str],
    labels: Mapping[str, str],
    data_path: str,
) -> list[dict[str, Any]]:
    def field(path: str) -> dict[str, Any]:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    # The one gateway-name rule (D2); empty means "the pod name", resolved by the agent.
    gateway = gateway_name(annotations, labels, "")
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", **field("metadata.name")},
        {"name": "POD_NAMESPACE", **field("metadata.namespace")},
        {"name": "CR_NAME", "value": cr},
        {"name": "CR_NAMESPACE", **field("metadata.namespace")},
        {"name": "GATEWAY_NAME", "value": gateway},
        {"name": "PROFILE", "value": profile},
        {"name": "REPO_PATH", "value": "/repo"},
        {"name": "DATA_PATH", "value": data_path},
        {"name": "GATEWAY_PORT", "value": str(gs.spec.gateway.port)},
        {"name": "GATEWAY_TLS", "value": "true" if gs.spec.gateway.tls else "false"},
        {"name": "API_KEY_FILE", "value": f"/etc/stoker/api-key/{gs.spec.gateway.api.secret_key}"},
        {"name": "STOKER_API_TOKEN_FILE", "value": f"{API_ACCESS_DIR}/token"},
        {"name": "STOKER_API_CA_FILE", "value": f"{API_ACCESS_DIR}/ca.crt"},
    ]
    if annotations.get(Annotation.STARTUP_TIMEOUT):  # checked by `decide`
        env.append(
            {"name": "STOKER_STARTUP_TIMEOUT", "value": annotations[Annotation.STARTUP_TIMEOUT]}
        )
    auth = gs.spec.git.auth
    if auth and auth.ssh_key:
        env.append(
            {
                "name": "GIT_SSH_KEY_FILE",
                "value": f"/etc/stoker/git-credentials/{auth.ssh_key.secret_ref.key}",
            }
        )
        if auth.ssh_key.known_hosts:
            key = auth.ssh_key.known_hosts.secret_ref.key
            env.append({"name": "GIT_KNOWN_HOSTS_FILE", "value": f"/etc/stoker/known-hosts/{key}"})
    elif auth and auth.token:
        env.append(
            {
                "name": "GIT_TOKEN_FILE",
                "value": f"/etc/stoker/git-credentials/{auth.token.secret_ref.key}",
            }
        )
    elif auth and auth.github_app:
        env.append({"name": "GIT_TOKEN_FILE", "value": "/etc/stoker/git-token/token"})
    return env


def _container(
    gs: GatewaySync,
    cr: str,
    profile: str,
    annotations: Mapping[str, str],
    labels: Mapping[str, str],
    settings: InjectionSettings,
    mounts: list[dict[str, Any]],
    data_path: str,
) -> dict[str, Any]:
    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": settings.health_port},
            "periodSeconds": period,
            "failureThreshold": failures,
        }

    image = gs.spec.agent.image if gs.spec.agent else None
    return {
        "name": AGENT_CONTAINER,
        "image": _image(gs, annotations, settings),
        "imagePullPolicy": (image.pull_policy if image and image.pull_policy else "IfNotPresent"),
        "command": ["stoker", "agent"],
        "restartPolicy": "Always",
        "env": _env(gs, cr, profile, annotations, labels, data_path),
        "resources": (
            gs.spec.agent.resources
            if gs.spec.agent and gs.spec.agent.resources
            else DEFAULT_RESOURCES
        ),
        "ports": [{"name": "metrics", "containerPort": settings.health_port, "protocol": "TCP"}],
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "seccompProfile": {"type": "RuntimeDefault"},
            "capabilities": {"drop": ["ALL"]},
        },
        "startupProbe": probe("/startupz", STARTUP_PROBE_PERIOD, STARTUP_PROBE_FAILURES),
        "livenessProbe": probe("/healthz", 10, 3),
        "readinessProbe": probe("/readyz", 5, 3),
        "volumeMounts": mounts,
    }
