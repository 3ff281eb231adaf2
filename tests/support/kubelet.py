"""What a kubelet would do, for a control plane where none runs.

Pods are read and written as plain JSON dicts (``pod_dict``), so these helpers do not depend on
the generated model classes of a particular ``kubernetes`` client release.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kubernetes import client

STATEFULSET_POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def pod_dict(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    """The pod as the API serves it (camelCase JSON)."""
    return _json(core.read_namespaced_pod(name, namespace, _preload_content=False))


def _running(name: str, image: str, started_at: str, ready: bool) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imageID": f"{image}@sha256:{'0' * 64}",
        "containerID": f"containerd://{os.urandom(16).hex()}",
        "ready": ready,
        "started": True,
        "restartCount": 0,
        "state": {"running": {"startedAt": started_at}},
    }


def mark_pod_running(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    *,
    ready: bool = True,
    pod_ip: str = "127.0.0.1",
    node_name: str | None = None,
) -> dict[str, Any]:
    """Set the pod's status to Running (Ready when ``ready``) with a status per container.

    Native sidecars (init containers with ``restartPolicy: Always``) are reported running;
    other init containers as terminated with exit code 0. ``node_name`` binds the pod first
    (as the scheduler would); returns the updated pod.
    """
    if node_name:
        core.create_namespaced_pod_binding(
            name,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
            },
            _preload_content=False,
        )
    pod = pod_dict(core, namespace, name)
    now = _now()
    spec = pod["spec"]
    init_statuses = []
    for c in spec.get("initContainers", []):
        if c.get("restartPolicy") == "Always":
            init_statuses.append(_running(c["name"], c.get("image", ""), now, ready))
        else:
            status = _running(c["name"], c.get("image", ""), now, False)
            status["started"] = False
            status["state"] = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": now,
                    "finishedAt": now,
                }
            }
            init_statuses.append(status)
    flag = "True" if ready else "False"
    conditions = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastTransitionTime": now},
    ]
    status = {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "initContainerStatuses": init_statuses,
        "containerStatuses": [
            _running(c["name"], c.get("image", ""), now, ready) for c in spec["containers"]
        ],
    }
    # A JSON Patch (a list body) is the content type every client release picks for lists.
    patch = [{"op": "add", "path": "/status", "value": status}]
    return _json(core.patch_namespaced_pod_status(name, namespace, patch, _preload_content=False))


def delete_pod(core: client.CoreV1Api, namespace: str, name: str) -> None:
    """Delete the pod at once (grace period 0), as a kubelet confirming termination would."""
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _preload_content=False)


def statefulset_pod_labels(statefulset: str, ordinal: int) -> dict[str, str]:
    """The labels the StatefulSet controller puts on pod ``<statefulset>-<ordinal>``."""
    return {
        STATEFULSET_POD_NAME_LABEL: f"{statefulset}-{ordinal}",
        POD_INDEX_LABEL: str(ordinal),
    }


def label_statefulset_pod(
    core: client.CoreV1Api, namespace: str, name: str, ordinal: int | None = None
) -> dict[str, Any]:
    """Give an existing pod the StatefulSet ordinal labels.

    The ordinal defaults to the number after the last ``-`` of ``name``, as for
    ``<statefulset>-<ordinal>``. Returns the updated pod.
    """
    match = re.fullmatch(r"(.+)-(\d+)", name)
    if ordinal is None:
        if not match:
            raise ValueError(f"{name!r} is not <statefulset>-<ordinal>; pass ordinal")
        ordinal = int(match.group(2))
    labels = {STATEFULSET_POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
    if pod_dict(core, namespace, name)["metadata"].get("labels"):
        patch = [
            {"op": "add", "path": f"/metadata/labels/{_pointer(key)}", "value": value}
            for key, value in labels.items()
        ]
    else:
        patch = [{"op": "add", "path": "/metadata/labels", "value": labels}]
    return _json(core.patch_namespaced_pod(name, namespace, patch, _preload_content=False))


def _pointer(key: str) -> str:
    """Escape a map key for a JSON Pointer (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


# -- volumes ------------------------------------------------------------------------------


@dataclass
class LocalPod:
    """A pod's container materialised on the local filesystem.

    ``mounts`` maps each container mount path to its local directory or file; ``env`` is the
    container's resolved environment with values under a mount path rewritten to local paths.
    """

    root: Path
    container: str
    mounts: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, Path] = field(default_factory=dict)

    def local_path(self, container_path: str) -> Path:
        """Map an absolute path inside the container to its local path (longest mount wins)."""
        path = PurePosixPath(container_path)
        for mount in sorted(self.mounts, key=len, reverse=True):
            mount_path = PurePosixPath(mount)
            if path == mount_path or mount_path in path.parents:
                return self.mounts[mount].joinpath(*path.relative_to(mount_path).parts)
        raise KeyError(f"{container_path} is not under any volume mount of {self.container}")

    def remap(self, value: str) -> str:
        """``value`` with a leading container mount path replaced by the local path."""
        try:
            return str(self.local_path(value))
        except (KeyError, ValueError):
            return value


def _write_file(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _project_keys(
    target: Path,
    data: dict[str, bytes],
    items: list[dict[str, Any]] | None,
    default_mode: int,
    optional: bool,
    what: str,
) -> None:
    if items:
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise KeyError(f"{what} has no key {item['key']!r}")
            _write_file(target / item["path"], data[item["key"]], item.get("mode", default_mode))
    else:
        for key, value in data.items():
            _write_file(target / key, value, default_mode)


class _Materialiser:
    def __init__(self, core: client.CoreV1Api, pod: dict[str, Any], audience: str | None):
        self.core = core
        self.pod = pod
        self.namespace = pod["metadata"]["namespace"]
        self.audience = audience

    def _read(self, kind: str, name: str, optional: bool) -> dict[str, bytes] | None:
        reader = (
            self.core.read_namespaced_secret
            if kind == "secret"
            else self.core.read_namespaced_config_map
        )
        try:
            obj = _json(reader(name, self.namespace, _preload_content=False))
        except client.ApiException as exc:
            if exc.status == 404 and optional:
                return None
            raise
        if kind == "secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def token(self, source: dict[str, Any]) -> bytes:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        audience = source.get("audience") or self.audience
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else None,
                "expirationSeconds": source.get("expirationSeconds", 3600),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.pod["metadata"]["name"],
                    "uid": self.pod["metadata"]["uid"],
                },
            },
        }
        response = self.core.create_namespaced_service_account_token(
            sa, self.namespace, body, _preload_content=False
        )
        return str(_json(response)["status"]["token"]).encode()

    def field_ref(self, path: str) -> str:
        meta = self.pod["metadata"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": self.pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "default"),
            "status.podIP": self.pod.get("status", {}).get("podIP", ""),
            "status.hostIP": self.pod.get("status", {}).get("hostIP", ""),
        }
        if path in simple:
            return str(simple[path])
        match = re.fullmatch(r"metadata\.(labels|annotations)(?:\['(.+)'\])?", path)
        if match:
            values = meta.get(match.group(1)) or {}
            if match.group(2) is not None:
                return str(values.get(match.group(2), ""))
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        raise ValueError(f"unsupported fieldRef {path!r}")

    def volume(self, volume: dict[str, Any], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        if "secret" in volume or "configMap" in volume:
            kind = "secret" if "secret" in volume else "configMap"
            src = volume[kind]
            name = src.get("secretName") if kind == "secret" else src.get("name")
            data = self._read(kind, name, src.get("optional", False))
            if data is not None:
                _project_keys(
                    target,
                    data,
                    src.get("items"),
                    src.get("defaultMode", 0o644),
                    src.get("optional", False),
                    f"{kind} {name}",
                )
        elif "projected" in volume:
            default_mode = volume["projected"].get("defaultMode", 0o644)
            for source in volume["projected"].get("sources", []):
                self.projection(source, target, default_mode)
        elif "downwardAPI" in volume:
            self.projection(volume, target, volume["downwardAPI"].get("defaultMode", 0o644))
        elif "emptyDir" not in volume:
            raise ValueError(f"volume {volume['name']!r}: unsupported type {sorted(volume)}")

    def projection(self, source: dict[str, Any], target: Path, default_mode: int) -> None:
        if "serviceAccountToken" in source:
            src = source["serviceAccountToken"]
            _write_file(target / src["path"], self.token(src), default_mode)
        elif "secret" in source or "configMap" in source:
            kind = "secret" if "secret" in source else "configMap"
            src = source[kind]
            data = self._read(kind, src["name"], src.get("optional", False))
            if data is not None:
                _project_keys(
                    target,
                    data,
                    src.get("items"),
                    default_mode,
                    src.get("optional", False),
                    f"{kind} {src['name']}",
                )
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items", []):
                if "fieldRef" not in item:
                    raise ValueError("only fieldRef downwardAPI items are supported")
                value = self.field_ref(item["fieldRef"]["fieldPath"]).encode()
                _write_file(target / item["path"], value, item.get("mode", default_mode))
        else:
            raise ValueError(f"unsupported projection {sorted(source)}")

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            kind = "secret" if "secretRef" in source else "configMap"
            ref = source["secretRef" if kind == "secret" else "configMapRef"]
            data = self._read(kind, ref["name"], ref.get("optional", False)) or {}
            env.update({prefix + k: v.decode() for k, v in data.items()})
        for var in container.get("env", []):
            if "valueFrom" not in var:
                env[var["name"]] = _expand(var.get("value", ""), env)
                continue
            ref = var["valueFrom"]
            if "fieldRef" in ref:
                env[var["name"]] = self.field_ref(ref["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
                kind = "secret" if "secretKeyRef" in ref else "configMap"
                key_ref = ref["secretKeyRef" if kind == "secret" else "configMapKeyRef"]
                data = self._read(kind, key_ref["name"], key_ref.get("optional", False)) or {}
                if key_ref["key"] in data:
                    env[var["name"]] = data[key_ref["key"]].decode()
            else:
                raise ValueError(f"env {var['name']!r}: unsupported valueFrom {sorted(ref)}")
        return env


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion; ``$$`` escapes a dollar."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, value)


def materialize_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    container: str,
    root: Path,
    *,
    audience: str | None = None,
) -> LocalPod:
    """Write the pod's volumes under ``root`` and resolve one container's mounts and env.

    Secret, ConfigMap, projected (serviceAccountToken via TokenRequest bound to the pod,
    secret, configMap, downwardAPI fieldRefs), downwardAPI and emptyDir volumes are supported.
    The container may be a regular or an init container (e.g. a native sidecar the webhook
    injected). ``audience`` is used for token projections that name none.
    """
    pod = pod_dict(core, namespace, name)
    spec = pod["spec"]
    candidates = spec.get("containers", []) + spec.get("initContainers", [])
    found = [c for c in candidates if c["name"] == container]
    if not found:
        raise KeyError(f"pod {namespace}/{name} has no container {container!r}")
    spec_container = found[0]
    work = _Materialiser(core, pod, audience)
    local = LocalPod(root=root, container=container)
    for volume in spec.get("volumes", []):
        target = root / "volumes" / volume["name"]
        work.volume(volume, target)
        local.volumes[volume["name"]] = target
    for mount in spec_container.get("volumeMounts", []):
        base = local.volumes[mount["name"]]
        local.mounts[mount["mountPath"]] = base / mount["subPath"] if mount.get("subPath") else base
    env = work.env(spec_container)
    local.env = {k: local.remap(v) if v.startswith("/") else v for k, v in env.items()}
    return local
