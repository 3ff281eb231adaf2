"""The in-cluster agent's ports: metadata from the controller's ConfigMap, status to the pod's
own status ConfigMap. The sync loop itself is stoker_agent's, unchanged."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable

import attrs

from stoker_agent import logs
from stoker_agent.gateway import GatewaySettings
from stoker_agent.gitfetch import Credentials
from stoker_agent.loop import Metadata
from stoker_agent.standalone import Identity, SyncSettings
from stoker_core import metadata as formats
from stoker_core import preboot
from stoker_core.errors import InvalidInput, TemporaryError
from stoker_core.secretfiles import SecretFile
from stoker_core.status import SyncRecord, worth_writing
from stoker_core.vocabulary import AGENT_CONTAINER, Label
from stoker_k8s.agentapi import AgentApi, Pod

log = logging.getLogger("stoker.agent")
GITHUB_TOKEN_PREFIX = "stoker-github-token-"  # the controller's Secret for a GitHub App token


@attrs.frozen(slots=True, kw_only=True)
class AgentEnv:
    """The environment the webhook injects, read once at start; every path can be remapped so a
    test can run the agent as a local process."""

    pod_name: str
    pod_namespace: str
    cr_name: str
    cr_namespace: str
    gateway_name: str
    profile: str
    repo_path: str
    data_path: str
    gateway_url: str
    api_key_file: str | None
    token_file: str | None
    ssh_key_file: str | None
    known_hosts_file: str | None
    health_port: int
    startup_timeout: int = preboot.DEFAULT_TIMEOUT  # seconds; the first sync's bound in a pod
    var_files: dict[str, str] = attrs.field(factory=dict)  # varsFrom: var → mounted file
    # Each mounted Secret file → its Secret's name, to name it when it is missing.
    secret_names: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_environ(cls, env: dict[str, str]) -> AgentEnv:
        """Build from os.environ; raise InvalidInput naming every missing variable."""
        missing = [k for k in ("POD_NAME", "POD_NAMESPACE", "CR_NAME") if not env.get(k)]
        if missing:
            raise InvalidInput.one(
                f"required environment variables missing: {', '.join(missing)}", field="environment"
            )
        scheme = "https" if env.get("GATEWAY_TLS", "false").lower() in ("1", "true") else "http"
        host = env.get("GATEWAY_HOST", "localhost")
        return cls(
            pod_name=env["POD_NAME"],
            pod_namespace=env["POD_NAMESPACE"],
            cr_name=env["CR_NAME"],
            cr_namespace=env.get("CR_NAMESPACE") or env["POD_NAMESPACE"],
            gateway_name=env.get("GATEWAY_NAME") or env["POD_NAME"],
            profile=env.get("PROFILE") or "default",
            repo_path=env.get("REPO_PATH", "/repo"),
            data_path=env.get("DATA_PATH", "/ignition-data"),
            gateway_url=f"{scheme}://{host}:{env.get('GATEWAY_PORT', '8088')}",
            api_key_file=env.get("API_KEY_FILE") or None,
            token_file=env.get("GIT_TOKEN_FILE") or None,
            ssh_key_file=env.get("GIT_SSH_KEY_FILE") or None,
            known_hosts_file=env.get("GIT_KNOWN_HOSTS_FILE") or None,
            health_port=int(env.get("HEALTH_PORT", "8082")),
            startup_timeout=_startup_timeout(env.get("STOKER_STARTUP_TIMEOUT")),
            var_files=json.loads(env.get("STOKER_VAR_FILES") or "{}"),
            secret_names=json.loads(env.get("STOKER_SECRET_FILES") or "{}"),
        )

    def secret_files(self) -> tuple[SecretFile, ...]:
        """The credential files the webhook mounted, each with its purpose and Secret."""
        purposes = [
            (self.api_key_file, "the gateway API key", True),
            (self.token_file, self._token_purpose(), False),
            (self.ssh_key_file, "the Git SSH key", False),
            (self.known_hosts_file, "the Git known hosts", False),
            *((path, f"varsFrom {name}", False) for name, path in self.var_files.items()),
        ]
        return tuple(
            SecretFile(
                path=path,
                purpose=purpose,
                secret=self.secret_names.get(path, ""),
                gateway_only=gateway_only,
            )
            for path, purpose, gateway_only in purposes
            if path
        )

    def _token_purpose(self) -> str:
        """The Git token, or the GitHub App token the controller publishes (no user creates
        that Secret: what holds it back is in the GatewaySync's RefResolved condition)."""
        if self.secret_names.get(self.token_file or "", "").startswith(GITHUB_TOKEN_PREFIX):
            return "the GitHub App token the controller publishes (see RefResolved)"
        return "the Git token"

    def read_vars(self) -> dict[str, str]:
        """The varsFrom values, read from the mounted Secret files (and masked in logs). A file
        not there yet is left out: the sync names it and waits (its Secret volume is optional)."""
        out = {}
        for name, path in self.var_files.items():
            try:
                with open(path, encoding="utf-8") as handle:
                    out[name] = handle.read().rstrip("\n")
            except FileNotFoundError:
                continue
            except OSError as e:
                raise InvalidInput.one(
                    f"cannot read varsFrom {name} from {path}: {e.strerror}",
                    field=f"varsFrom.{name}",
                ) from None
            logs.register_secret(out[name])
        return out


def _startup_timeout(text: str | None) -> int:
    """STOKER_STARTUP_TIMEOUT, or the default when it is not usable: said, never fatal (an agent
    that would not start would keep its gateway from starting)."""
    try:
        return preboot.startup_timeout(text, where="STOKER_STARTUP_TIMEOUT")
    except InvalidInput as e:
        log.warning("%s; using %ds", e, preboot.DEFAULT_TIMEOUT)
        return preboot.DEFAULT_TIMEOUT


class ConfigMapMetadata:
    """Reads the controller's metadata ConfigMap (and the pod's labels when it changes)."""

    def __init__(self, api: AgentApi, env: AgentEnv) -> None:
        self._api = api
        self._env = env
        self._version = ""
        self._cached: Metadata | None = None
        self._paused = False

    @property
    def paused(self) -> bool:
        """Whether the last read found the GatewaySync paused (stoker_agent.loop.Pausable)."""
        return self._paused

    def read(self) -> Metadata | None:
        """The current metadata, or None (no commit yet, or the GatewaySync is paused)."""
        cm = self._api.read_config_map(
            self._env.cr_namespace,
            formats.name_for(self._env.cr_name),
            doing="reading the metadata ConfigMap",
        )
        if cm is None:
            return None
        version = cm.get("metadata", {}).get("resourceVersion", "")
        if version == self._version:
            return self._with_vars(self._cached)
        published = formats.decode(cm.get("data") or {})
        self._paused = published is not None and published.paused
        if published is None or published.paused:
            self._version, self._cached = version, None
            return None
        pod = _read_pod(self._api, self._env)
        env = self._env
        settings = SyncSettings(
            gatewaysync=published.gatewaysync,
            profile=env.profile,
            identity=Identity(
                gateway_name=env.gateway_name,
                pod_name=env.pod_name,
                namespace=env.cr_namespace,
                labels=dict(pod.get("metadata", {}).get("labels") or {}),
            ),
            repo=published.gatewaysync.spec.git.repo,
            ref=published.ref,
            # its own target while a rollout holds the fleet at different commits
            commit=published.commit_for(env.gateway_name),
            extra_vars=env.read_vars(),
            secret_files=env.secret_files(),
            data_dir=env.data_path,
            mirror_dir=os.path.join(env.repo_path, "mirror"),
            credentials=Credentials(
                token_file=env.token_file,
                ssh_key_file=env.ssh_key_file,
                known_hosts_file=env.known_hosts_file,
            ),
            gateway=GatewaySettings(
                url=env.gateway_url,
                token_file=env.api_key_file,
                insecure=env.gateway_url.startswith("https"),
            ),
        )
        self._cached = Metadata(settings=settings, health_window=published.health_window)
        self._version = version  # only once the whole read succeeded
        return self._cached

    def _with_vars(self, cached: Metadata | None) -> Metadata | None:
        """The cached metadata, with the varsFrom values read again while some are missing
        (their Secret may have been mounted since)."""
        if cached is None or len(cached.settings.extra_vars) == len(self._env.var_files):
            return cached
        settings = attrs.evolve(cached.settings, extra_vars=self._env.read_vars())
        self._cached = attrs.evolve(cached, settings=settings)
        return self._cached


def gateway_restarts(api: AgentApi, env: AgentEnv) -> Callable[[], int | None]:
    """The restart count of this pod's gateway container(s) (every container but the agent,
    which is a native sidecar among the init containers), read from the pod's status."""

    def count() -> int | None:
        pod = _read_pod(api, env)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        counts = [
            s.get("restartCount")
            for s in statuses
            if isinstance(s, dict) and s.get("name") != AGENT_CONTAINER
        ]
        known = [n for n in counts if isinstance(n, int) and not isinstance(n, bool)]
        return sum(known) if known else None

    return count


def _read_pod(api: AgentApi, env: AgentEnv) -> Pod:
    """This agent's own pod (its labels feed templates; its uid owns the status ConfigMap)."""
    return api.read_pod(env.pod_namespace, env.pod_name, doing=f"reading pod {env.pod_name}")


class ConfigMapStatus:
    """Writes this pod's status ConfigMap, owned by the pod (removed with it)."""

    def __init__(
        self, api: AgentApi, env: AgentEnv, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._api = api
        self._env = env
        self._clock = clock
        self._pod_uid: str | None = None  # this pod's; it never changes while the agent runs
        self._last: tuple[SyncRecord, float] | None = None

    def write(self, record: SyncRecord) -> None:
        """Create or replace the status ConfigMap, unless it would say nothing new."""
        # This agent syncs its own target (ConfigMapMetadata): the controller waits on it.
        record = attrs.evolve(record, reads_targets=True)
        now = self._clock()
        previous, written_at = self._last or (None, 0.0)
        if not worth_writing(previous, record, written_at=written_at, now=now):
            return
        self._publish(record)
        self._last = (record, now)

    def _publish(self, record: SyncRecord) -> None:
        env = self._env
        if self._pod_uid is None:
            self._pod_uid = _read_pod(self._api, env).get("metadata", {}).get("uid", "")
        name = formats.status_name_for(env.cr_name, env.pod_name)
        body = {
            "metadata": {
                "name": name,
                "labels": {Label.CR_NAME: env.cr_name, Label.MANAGED_BY: "stoker-agent"},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": env.pod_name,
                        "uid": self._pod_uid,
                    }
                ],
            },
            "data": {
                # Scrubbed here too: nothing that reaches the API may carry a secret.
                "status.json": json.dumps(logs.scrub_record(record).to_json(), sort_keys=True),
                "gateway": env.gateway_name,
                "pod": env.pod_name,
            },
        }
        # Replace only: the controller creates each discovered pod's status ConfigMap, and the
        # agent's identity may update exactly those (RBAC cannot limit `create` by name).
        what = f"writing the status ConfigMap {name}"
        if self._api.replace_config_map(env.cr_namespace, name, body, doing=what) is None:
            raise TemporaryError(
                f"{what}: it does not exist yet; the controller creates it once it has "
                "discovered this pod"
            )
