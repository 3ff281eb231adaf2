"""The `GatewaySync` resource (stoker.io/v1alpha1): frozen attrs classes, the single source of
field names, types and defaults (the CRD schema is generated from these).

Python names are snake_case; the wire name is camelCase unless a field's metadata says `key`.
Defaults are the original CRD's, plus new optional fields (allowEmpty, driftPolicy,
rollbackOnFailure) whose defaults keep the original behaviour safe.

Annotations here are evaluated as the classes are built (no `from __future__ import
annotations`; each class names only classes above it): cattrs then reads each field's type as
it is, instead of compiling 60 strings into types on the first GatewaySync a process reads
(~2 ms of every `stoker sync`, issue 18).
"""

import enum
from collections.abc import Mapping as MappingABC
from typing import Any

import attrs

from stoker_core.fieldwise import FIELDWISE  # not compiled for each class (issue 18)

DEFAULT_EXCLUDES: tuple[str, ...] = ("**/.git/", "**/.gitkeep", "**/.resources/**")


def key(name: str) -> dict[str, str]:
    """Field metadata giving a wire name that plain camelCase would not produce."""
    return {"key": name}


# A repository or ref reaches git's command line: never a word git could read as an option.
GIT_WORD = r"^[^-\s]\S*$"
# The longest ref Stoker deploys (refs.ref_problem checks it, for spec.git.ref and a requested
# ref alike): git allows longer names, but no branch or tag anyone deploys is that long, and a
# requested ref is written into an annotation.
MAX_REF = 255

# Size bounds on everything a user writes in a GatewaySync (H10). The CRD carries them as
# maxLength / maxItems / maxProperties (map keys: a CEL rule) and the validator names the field
# that breaks one, so an oversized CR is refused by the API server and by `stoker validate`
# alike. Each is far above any real GatewaySync; they keep megabytes out of git's command line,
# annotations, ConfigMaps and every agent's memory.
MAX_NAME = 253  # a Kubernetes object name or a Secret key (a DNS subdomain at most)
MAX_URL = 2048  # a repository URL, an API base URL
MAX_PATH = 1024  # a mapping source or destination, a glob
MAX_VALUE = 4096  # a template variable's value, a patch value
MAX_SHORT = 64  # a duration, a pull policy
MAX_IDENTIFIER = 128  # a template variable name, a profile name
MAX_ITEMS = 256  # excludePatterns, mappings, variables, varsFrom and profiles, each
MAX_PATCHES = 64  # patches of one mapping, and paths set by one patch


def doc(text: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: a description for the generated schema, plus schema constraints."""
    return {"doc": text, **extra}


_GLOBS = {"maxItems": MAX_ITEMS, "items": {"maxLength": MAX_PATH}}
_VARS = {
    "maxProperties": MAX_ITEMS,
    "keyMaxLength": MAX_IDENTIFIER,
    "values": {"maxLength": MAX_VALUE},
}


class MappingType(enum.StrEnum):
    """What a mapping's source is: a directory tree or a single file."""

    DIR = "dir"
    FILE = "file"


class DesignerPolicy(enum.StrEnum):
    """What to do when Designer sessions are open on the gateway."""

    PROCEED = "proceed"
    WAIT = "wait"
    FAIL = "fail"


class DriftPolicy(enum.StrEnum):
    """What to do when managed files changed behind Stoker's back."""

    REPORT = "report"
    RESTORE = "restore"


@attrs.frozen(slots=True, kw_only=True)
class SecretKeyRef:
    """A key inside a Secret in the CR's namespace."""

    __eq__, __hash__, __repr__ = FIELDWISE

    name: str = attrs.field(metadata=doc("Secret name.", minLength=1, maxLength=MAX_NAME))
    key: str = attrs.field(metadata=doc("Key inside the Secret.", minLength=1, maxLength=MAX_NAME))


@attrs.frozen(slots=True, kw_only=True)
class SecretRefHolder:
    """An object holding only a `secretRef` (the original's shape for knownHosts and token)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    secret_ref: SecretKeyRef


@attrs.frozen(slots=True, kw_only=True)
class SSHKeyAuth:
    """SSH private key auth, with optional strict host key checking."""

    __eq__, __hash__, __repr__ = FIELDWISE

    secret_ref: SecretKeyRef
    known_hosts: SecretRefHolder | None = None


@attrs.frozen(slots=True, kw_only=True)
class GitHubAppAuth:
    """GitHub App installation tokens minted by the controller."""

    __eq__, __hash__, __repr__ = FIELDWISE

    app_id: int
    installation_id: int
    private_key_secret_ref: SecretKeyRef
    api_base_url: str = attrs.field(
        default="https://api.github.com",
        metadata={
            **key("apiBaseURL"),
            **doc("GitHub API base URL; set for GitHub Enterprise.", maxLength=MAX_URL),
        },
    )


@attrs.frozen(slots=True, kw_only=True)
class GitAuth:
    """Credentials for the repository; exactly one method may be set."""

    __eq__, __hash__, __repr__ = FIELDWISE

    ssh_key: SSHKeyAuth | None = None
    token: SecretRefHolder | None = None
    github_app: GitHubAppAuth | None = None

    def methods(self) -> list[str]:
        """Return the names of the methods that are set."""
        pairs = (("sshKey", self.ssh_key), ("token", self.token), ("githubApp", self.github_app))
        return [name for name, value in pairs if value is not None]


@attrs.frozen(slots=True, kw_only=True)
class GitSpec:
    """Which repository and ref to follow."""

    __eq__, __hash__, __repr__ = FIELDWISE

    repo: str = attrs.field(
        metadata=doc(
            "Repository URL (https, ssh, git or a path); no spaces, not starting with -.",
            minLength=1,
            maxLength=MAX_URL,
            pattern=GIT_WORD,
        )
    )
    ref: str = attrs.field(
        metadata=doc(
            "Branch, tag or full commit SHA; no spaces, not starting with -.",
            minLength=1,
            maxLength=MAX_REF,
            pattern=GIT_WORD,
        )
    )
    auth: GitAuth | None = None
    sparse: bool = attrs.field(
        default=False,
        metadata=doc(
            "Fetch only the files under the gateway's mapped sources (a blobless partial "
            "fetch), for large repositories. A server without partial-clone support sends "
            "the whole commit instead."
        ),
    )


@attrs.frozen(slots=True, kw_only=True)
class Polling:
    """How often the controller re-resolves the ref."""

    __eq__, __hash__, __repr__ = FIELDWISE

    enabled: bool = True
    interval: str = attrs.field(
        default="60s", metadata=doc("Go duration, e.g. 60s or 5m.", maxLength=MAX_SHORT)
    )


@attrs.frozen(slots=True, kw_only=True)
class GatewayAPI:
    """Where the gateway's API token is stored."""

    __eq__, __hash__, __repr__ = FIELDWISE

    secret_name: str = attrs.field(
        metadata=doc("Secret holding the API token.", minLength=1, maxLength=MAX_NAME)
    )
    secret_key: str = attrs.field(default="apiKey", metadata={"maxLength": MAX_NAME})


@attrs.frozen(slots=True, kw_only=True)
class GatewaySpec:
    """How the agent reaches the gateway next to it."""

    __eq__, __hash__, __repr__ = FIELDWISE

    port: int = attrs.field(default=8088, metadata=doc("Gateway HTTP(S) port.", minimum=1))
    tls: bool = False
    api: GatewayAPI


@attrs.frozen(slots=True, kw_only=True)
class Patch:
    """JSON values to set in the files a glob selects (sjson paths → template values)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    file: str = attrs.field(
        default="", metadata=doc("Glob relative to the mapping destination.", maxLength=MAX_PATH)
    )
    set_: dict[str, str] = attrs.field(
        metadata={
            **key("set"),
            **doc(
                "sjson path → value.",
                maxProperties=MAX_PATCHES,
                keyMaxLength=MAX_PATH,
                # No CEL rule for these keys: its estimated cost (profiles × mappings × patches)
                # is over the API server's budget, so only the validator checks them.
                keyRule=False,
                values={"maxLength": MAX_VALUE},
            ),
        }
    )


@attrs.frozen(slots=True, kw_only=True)
class Mapping:
    """One source in the repository delivered to one destination in the data directory."""

    __eq__, __hash__, __repr__ = FIELDWISE

    source: str = attrs.field(
        metadata=doc("Repository path (Go template).", minLength=1, maxLength=MAX_PATH)
    )
    destination: str = attrs.field(
        metadata=doc("Data-directory path (Go template).", minLength=1, maxLength=MAX_PATH)
    )
    type: MappingType | None = None
    required: bool = False
    template: bool = False
    patches: tuple[Patch, ...] = attrs.field(default=(), metadata={"maxItems": MAX_PATCHES})
    allow_empty: bool = attrs.field(
        default=False, metadata=doc("Allow a sync that would delete every file under this root.")
    )


@attrs.frozen(slots=True, kw_only=True)
class VarFrom:
    """A template variable whose value comes from a Secret key, mounted into the agent only
    (never copied into a ConfigMap, an event or a status)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    name: str = attrs.field(
        metadata=doc(
            "Template variable name: {{.Vars.<name>}}.", minLength=1, maxLength=MAX_IDENTIFIER
        )
    )
    secret_key_ref: SecretKeyRef


@attrs.frozen(slots=True, kw_only=True)
class Defaults:
    """Settings every profile inherits."""

    __eq__, __hash__, __repr__ = FIELDWISE

    exclude_patterns: tuple[str, ...] = attrs.field(default=DEFAULT_EXCLUDES, metadata=_GLOBS)
    vars: dict[str, str] = attrs.field(factory=dict, metadata=_VARS)
    vars_from: tuple[VarFrom, ...] = attrs.field(default=(), metadata={"maxItems": MAX_ITEMS})
    sync_period: int = attrs.field(default=30, metadata=doc("Seconds.", minimum=5, maximum=3600))
    designer_session_policy: DesignerPolicy = DesignerPolicy.PROCEED
    dry_run: bool = False
    paused: bool = False
    drift_policy: DriftPolicy = DriftPolicy.REPORT
    rollback_on_failure: bool = True
    apply_on_backup: bool = attrs.field(
        default=False,
        metadata=doc("Sync a redundancy backup too (normally the master replicates to it)."),
    )


@attrs.frozen(slots=True, kw_only=True)
class Profile:
    """A named set of mappings; unset fields inherit from the defaults."""

    __eq__, __hash__, __repr__ = FIELDWISE

    mappings: tuple[Mapping, ...] = attrs.field(
        metadata=doc("Applied in order.", minItems=1, maxItems=MAX_ITEMS)
    )
    exclude_patterns: tuple[str, ...] = attrs.field(default=(), metadata=_GLOBS)
    vars: dict[str, str] = attrs.field(factory=dict, metadata=_VARS)
    vars_from: tuple[VarFrom, ...] = attrs.field(default=(), metadata={"maxItems": MAX_ITEMS})
    sync_period: int | None = attrs.field(
        default=None, metadata=doc("Seconds.", minimum=5, maximum=3600)
    )
    dry_run: bool | None = None
    designer_session_policy: DesignerPolicy | None = None
    paused: bool | None = None
    drift_policy: DriftPolicy | None = None
    rollback_on_failure: bool | None = None
    apply_on_backup: bool | None = None


@attrs.frozen(slots=True, kw_only=True)
class SyncSpec:
    """Defaults and named profiles."""

    __eq__, __hash__, __repr__ = FIELDWISE

    defaults: Defaults = attrs.field(factory=Defaults)
    profiles: dict[str, Profile] = attrs.field(
        metadata=doc(
            "Profile name → profile.",
            minProperties=1,
            maxProperties=MAX_ITEMS,
            keyMaxLength=MAX_IDENTIFIER,
        )
    )


@attrs.frozen(slots=True, kw_only=True)
class AgentImage:
    """Agent image override."""

    __eq__, __hash__, __repr__ = FIELDWISE

    repository: str = attrs.field(default="", metadata={"maxLength": MAX_URL})
    tag: str = attrs.field(default="", metadata={"maxLength": MAX_IDENTIFIER})
    pull_policy: str = attrs.field(default="", metadata={"maxLength": MAX_SHORT})


@attrs.frozen(slots=True, kw_only=True)
class AgentSpec:
    """Agent sidecar settings."""

    __eq__, __hash__, __repr__ = FIELDWISE

    image: AgentImage | None = None
    resources: dict[str, Any] | None = None


@attrs.frozen(slots=True, kw_only=True)
class ReceiverSpec:
    """How push events for this GatewaySync are authenticated."""

    __eq__, __hash__, __repr__ = FIELDWISE

    secret_name: str = attrs.field(
        metadata=doc(
            "Secret with key `hmac` (GitHub/GitLab signature key) and/or `token`.",
            minLength=1,
            maxLength=MAX_NAME,
        )
    )


class OnFailure(enum.StrEnum):
    """What a rollout does when a gateway fails: stop, or stop and move the finished back."""

    HALT = "halt"
    ROLLBACK = "rollback"


class Approval(enum.StrEnum):
    """Whether a commit (or a step) waits for someone to approve it."""

    NONE = "none"
    REQUIRED = "required"


MAX_STEPS = 32  # rollout steps: far above any plant's waves
DEFAULT_HISTORY = 10  # status.history entries kept without spec.historyLimit
MAX_HISTORY = 100  # spec.historyLimit at most (the bytes are bounded too: fleethistory)
MAX_LABEL_KEY = 317  # a label key: a 253-character prefix, "/", a 63-character name
MAX_LABEL_VALUE = 63
PERCENT = r"^([1-9][0-9]?|100)%$"  # maxUnavailable as a percent: 1% to 100%


@attrs.frozen(slots=True, kw_only=True)
class StepSelector:
    """Which gateways a rollout step holds; every criterion given must match (an AND)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    match_labels: dict[str, str] = attrs.field(
        factory=dict,
        metadata=doc(
            "Pod labels the gateway's pod must carry.",
            maxProperties=MAX_ITEMS,
            keyMaxLength=MAX_LABEL_KEY,
            values={"maxLength": MAX_LABEL_VALUE},
        ),
    )
    gateways: tuple[str, ...] = attrs.field(
        default=(),
        metadata=doc(
            "Gateway names (the gateway-name rule).",
            maxItems=MAX_ITEMS,
            items={"maxLength": MAX_NAME},
        ),
    )
    profiles: tuple[str, ...] = attrs.field(
        default=(),
        metadata=doc("Profile names.", maxItems=MAX_ITEMS, items={"maxLength": MAX_IDENTIFIER}),
    )


@attrs.frozen(slots=True, kw_only=True)
class Pause:
    """A wait after a step is done, before the next starts: a duration or an approval."""

    __eq__, __hash__, __repr__ = FIELDWISE

    duration: str = attrs.field(
        default="", metadata=doc("Go duration, e.g. 30m.", maxLength=MAX_SHORT)
    )
    until_approved: bool = attrs.field(
        default=False, metadata=doc("Wait until someone approves the commit past this step.")
    )


@attrs.frozen(slots=True, kw_only=True)
class RolloutStep:
    """One wave of a rollout."""

    __eq__, __hash__, __repr__ = FIELDWISE

    name: str = attrs.field(
        default="",
        metadata=doc("A DNS label naming the step (default: step-N).", maxLength=MAX_IDENTIFIER),
    )
    selector: StepSelector
    max_unavailable: int | str = attrs.field(
        default="100%",
        metadata=doc(
            "How many of the step's gateways may be applying or in their health window at "
            "once: a count or a percent (rounded down, at least 1).",
            maxLength=MAX_SHORT,
            rules=[
                {
                    "rule": f"type(self) == int ? self >= 1 : self.matches('{PERCENT}')",
                    "message": 'must be a count of at least 1 or a percent from "1%" to "100%"',
                }
            ],
        ),
    )
    pause: Pause | None = None
    approval: Approval = attrs.field(
        default=Approval.NONE, metadata=doc("required: the step waits for an approval.")
    )


@attrs.frozen(slots=True, kw_only=True)
class Rollout:
    """How a new commit reaches the gateways: in steps, each gated on the last one's health."""

    __eq__, __hash__, __repr__ = FIELDWISE

    steps: tuple[RolloutStep, ...] = attrs.field(
        default=(),
        metadata=doc(
            "Ordered waves; gateways matched by no step move last, as one more step.",
            maxItems=MAX_STEPS,
        ),
    )
    health_window: str = attrs.field(
        default="30s",
        metadata=doc(
            "How long a gateway must stay healthy at the commit to count as done.",
            maxLength=MAX_SHORT,
        ),
    )
    on_failure: OnFailure = OnFailure.HALT
    approval: Approval = attrs.field(
        default=Approval.NONE, metadata=doc("required: a new commit waits for an approval.")
    )


@attrs.frozen(slots=True, kw_only=True)
class GatewaySyncSpec:
    """The desired state: repository, gateway access and profiles."""

    __eq__, __hash__, __repr__ = FIELDWISE

    git: GitSpec
    polling: Polling = attrs.field(factory=Polling)
    gateway: GatewaySpec
    sync: SyncSpec
    agent: AgentSpec | None = None
    receiver: ReceiverSpec | None = None
    paused: bool = False
    rollout: Rollout | None = attrs.field(
        default=None,
        metadata=doc(
            "Fleet rollout in steps: each gateway moves to a new commit in its wave, once the "
            "wave before has held (without it, every gateway at once; see docs/rollouts.md)."
        ),
    )
    history_limit: int | None = attrs.field(
        default=None,
        metadata=doc(
            f"How many published commits status.history keeps, 1-{MAX_HISTORY} (default "
            f"{DEFAULT_HISTORY}).",
            minimum=1,
            maximum=MAX_HISTORY,
        ),
    )


@attrs.frozen(slots=True, kw_only=True)
class Condition:
    """A Kubernetes-style condition."""

    __eq__, __hash__, __repr__ = FIELDWISE

    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int | None = None


@attrs.frozen(slots=True, kw_only=True)
class DiscoveredGateway:
    """One gateway pod as the controller sees it."""

    __eq__, __hash__, __repr__ = FIELDWISE

    name: str
    namespace: str
    pod_name: str
    service_account_name: str = ""
    profile: str = ""
    sync_status: str = ""
    target_commit: str = attrs.field(
        default="", metadata=doc("The commit this gateway should be at (syncStatus compares).")
    )
    last_sync_time: str = ""
    last_sync_duration: str = ""
    synced_commit: str = ""
    synced_ref: str = ""
    agent_version: str = ""
    last_scan_result: str = ""
    files_changed: int = 0
    projects_synced: tuple[str, ...] = ()


@attrs.frozen(slots=True, kw_only=True)
class Requester:
    """Who or what asked for a commit (status.history; stoker_core.fleethistory)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    via: str = attrs.field(default="", metadata=doc("receiver, polling, requested-ref or spec."))
    source: str = attrs.field(default="", metadata=doc("The receiver's source (github...)."))
    delivery: str = attrs.field(default="", metadata=doc("The receiver's delivery id."))
    user: str = ""
    at: str = attrs.field(default="", metadata=doc("When it was requested (RFC 3339)."))


@attrs.frozen(slots=True, kw_only=True)
class HistoryStep:
    """One step of a commit's rollout: when it started and when it was done."""

    __eq__, __hash__, __repr__ = FIELDWISE

    name: str = ""
    started_at: str = ""
    finished_at: str = ""


@attrs.frozen(slots=True, kw_only=True)
class Approver:
    """Who approved a gate of a commit (as the admission webhook stamped it)."""

    __eq__, __hash__, __repr__ = FIELDWISE

    gate: str = ""
    user: str = ""


@attrs.frozen(slots=True, kw_only=True)
class GatewayOutcome:
    """Where one gateway given a commit stands with it, and since when."""

    __eq__, __hash__, __repr__ = FIELDWISE

    name: str = ""
    outcome: str = ""
    at: str = ""


@attrs.frozen(slots=True, kw_only=True)
class HistoryEntry:
    """One published commit: who asked for it, its steps and its outcome per gateway."""

    __eq__, __hash__, __repr__ = FIELDWISE

    commit: str = ""
    ref: str = ""
    requested_by: Requester = attrs.field(factory=Requester)
    published_at: str = ""
    steps: tuple[HistoryStep, ...] = ()
    outcome: str = attrs.field(
        default="",
        metadata=doc("Progressing, AwaitingApproval, Halted, Complete or Superseded."),
    )
    approved_by: tuple[Approver, ...] = ()
    gateways: tuple[GatewayOutcome, ...] = ()
    gateways_not_shown: int = attrs.field(
        default=0, metadata=doc("Gateways left out to keep the history within its bytes.")
    )


@attrs.frozen(slots=True, kw_only=True)
class RolloutHalt:
    """Why a rollout stopped: the gateway that failed the commit, and its error."""

    __eq__, __hash__, __repr__ = FIELDWISE

    gateway: str = ""
    commit: str = ""
    error: str = attrs.field(default="", metadata=doc("At most 200 characters."))
    at: float = attrs.field(default=0.0, metadata=doc("When (epoch seconds)."))
    rolled_back: bool = attrs.field(
        default=False,
        metadata=doc("onFailure: rollback sent back the gateways the rollout had moved."),
    )


@attrs.frozen(slots=True, kw_only=True)
class RolloutStatus:
    """Where the rollout of a commit is (docs/rollouts.md): the controller's persisted state."""

    __eq__, __hash__, __repr__ = FIELDWISE

    commit: str = attrs.field(default="", metadata=doc("The commit being rolled out."))
    baseline: str = attrs.field(
        default="", metadata=doc("Where gateways not yet moved are held (metadata `commit`).")
    )
    held: dict[str, str] = attrs.field(
        factory=dict, metadata=doc("Gateways held at another commit (an older rollout's).")
    )
    moved: tuple[str, ...] = attrs.field(
        default=(), metadata=doc("Gateways this rollout gave the commit, in order.")
    )
    step: int = attrs.field(
        default=0, metadata=doc("The step in progress, from 0; 1073741824: complete.")
    )
    started: tuple[float, ...] = attrs.field(
        default=(), metadata=doc("When each step started (epoch seconds).")
    )
    finished: tuple[float, ...] = attrs.field(
        default=(), metadata=doc("When each step was done (epoch seconds).")
    )
    approvals: tuple[str, ...] = attrs.field(
        default=(), metadata=doc("The gates approved for the commit.")
    )
    halted: RolloutHalt | None = None
    plan: str = attrs.field(default="", metadata=doc("A digest of the steps it follows."))
    awaiting: str = attrs.field(
        default="", metadata=doc("The gate an approval of the commit must name (rollout, ...).")
    )
    pending_commit: str = attrs.field(
        default="", metadata=doc("The commit still on its way; empty once complete or halted.")
    )
    approved_by: dict[str, str] = attrs.field(
        factory=dict, metadata=doc("Gate to the user the admission webhook stamped.")
    )
    ignored: tuple[str, ...] = attrs.field(
        default=(), metadata=doc("Approvals not counted, one sentence each (at most 10).")
    )
    since: float = attrs.field(
        default=0.0, metadata=doc("When the controller first saw the commit (epoch seconds).")
    )


@attrs.frozen(slots=True, kw_only=True)
class GatewaySyncStatus:
    """What the controller observed."""

    __eq__, __hash__, __repr__ = FIELDWISE

    observed_generation: int = 0
    last_sync_time: str = ""
    last_sync_ref: str = ""
    last_sync_commit: str = ""
    last_sync_commit_short: str = ""
    ref_resolution_status: str = ""
    profile_count: int = 0
    discovered_gateways: tuple[DiscoveredGateway, ...] = ()
    conditions: tuple[Condition, ...] = ()
    rollout: RolloutStatus | None = attrs.field(
        default=None, metadata=doc("The fleet rollout (with spec.rollout only).")
    )
    history: tuple[HistoryEntry, ...] = attrs.field(
        default=(),
        metadata=doc("The last spec.historyLimit published commits, oldest first."),
    )


@attrs.frozen(slots=True, kw_only=True)
class ObjectMeta:
    """The parts of Kubernetes metadata Stoker reads; the rest is kept as given."""

    __eq__, __hash__, __repr__ = FIELDWISE

    name: str = ""
    namespace: str = ""
    labels: dict[str, str] = attrs.field(factory=dict)
    annotations: dict[str, str] = attrs.field(factory=dict)
    generation: int = 0
    extra: MappingABC[str, Any] = attrs.field(factory=dict, metadata={"passthrough": True})


@attrs.frozen(slots=True, kw_only=True)
class GatewaySync:
    """A whole GatewaySync object."""

    __eq__, __hash__, __repr__ = FIELDWISE

    api_version: str = "stoker.io/v1alpha1"
    kind: str = "GatewaySync"
    metadata: ObjectMeta = attrs.field(factory=ObjectMeta)
    spec: GatewaySyncSpec
    status: GatewaySyncStatus | None = None
