"""One place for the names other systems see: annotations, labels, conditions, events, metrics.

Each entry says who writes it and who reads it. Values of the original project are kept where
they exist, so manifests and dashboards written for it keep working.
"""

from __future__ import annotations

import enum
from typing import Final

API_GROUP: Final = "stoker.io"
API_VERSION: Final = "v1alpha1"
KIND: Final = "GatewaySync"
PLURAL: Final = "gatewaysyncs"
SHORT_NAME: Final = "gs"
FINALIZER: Final = "stoker.io/finalizer"
AGENT_CONTAINER: Final = "stoker-agent"
DEFAULT_PROFILE: Final = "default"
# GatewaySync annotations under this prefix stay guarded by the validating webhook (the chart's
# matchConditions send their changes to it, refused while it is down): rollout approvals.
GUARDED_ANNOTATIONS: Final = "approval.stoker.io/"


class Annotation(enum.StrEnum):
    """Annotation keys (pod annotations unless noted)."""

    INJECT = "stoker.io/inject"  # user → webhook, controller: must be exactly "true"
    CR_NAME = "stoker.io/cr-name"  # user or webhook → webhook, agent
    PROFILE = "stoker.io/profile"  # user → webhook, agent; absent means "default"
    GATEWAY_NAME = "stoker.io/gateway-name"  # user → agent, controller
    AGENT_IMAGE = "stoker.io/agent-image"  # user → webhook
    INJECTED = "stoker.io/injected"  # webhook → people (informational)
    DATA_VOLUME = "stoker.io/data-volume"  # user → webhook: the Ignition data volume's name
    STARTUP_TIMEOUT = "stoker.io/startup-timeout"  # user → webhook → agent: pre-boot bound (s)
    REQUESTED_REF = "stoker.io/requested-ref"  # receiver → controller (CR annotation)
    REQUESTED_AT = "stoker.io/requested-at"  # receiver → people (CR annotation)
    REQUESTED_BY = "stoker.io/requested-by"  # receiver → people, status.history (CR)
    REQUESTED_DELIVERY = "stoker.io/requested-delivery"  # receiver → status.history (CR)
    REFRESH_REQUESTED_AT = "stoker.io/refresh-requested-at"  # receiver → controller (CR)
    REFRESH_REQUESTED_BY = "stoker.io/refresh-requested-by"  # receiver → status.history (CR)
    REFRESH_DELIVERY = "stoker.io/refresh-delivery"  # receiver → status.history (CR)
    DELIVERIES = "stoker.io/receiver-deliveries"  # receiver → receiver: recent deliveries (CR)


class Label(enum.StrEnum):
    """Label keys."""

    AGENT = "stoker.io/agent"  # webhook → PodMonitor selector (pod label)
    CR_NAME = "stoker.io/cr-name"  # controller, agent → controller (ConfigMaps, Secrets)
    MANAGED_BY = "app.kubernetes.io/managed-by"
    APP_NAME = "app.kubernetes.io/name"  # user → gateway-name rule
    APP_INSTANCE = "app.kubernetes.io/instance"  # Helm → gateway-name rule (Ignition chart)
    STATEFULSET_POD = "statefulset.kubernetes.io/pod-name"  # StatefulSet controller → ordinal
    POD_INDEX = "apps.kubernetes.io/pod-index"  # StatefulSet controller → PodOrdinal


class Condition(enum.StrEnum):
    """Condition types on GatewaySync status (controller writes, people and tools read)."""

    READY = "Ready"
    REF_RESOLVED = "RefResolved"
    PROFILES_VALID = "ProfilesValid"
    ALL_GATEWAYS_SYNCED = "AllGatewaysSynced"
    SIDECAR_INJECTED = "SidecarInjected"
    SSH_HOST_KEY_VERIFICATION = "SSHHostKeyVerification"
    GATEWAY_NAMES_UNIQUE = "GatewayNamesUnique"  # no two owners' pods share a gateway name
    # True is the abnormal state for these two (like a node's MemoryPressure): a gateway waits
    # for a restart; a gateway's files differ from Git and Stoker does not change them.
    RESTART_REQUIRED = "RestartRequired"
    DRIFTED = "Drifted"
    SECRETS_AVAILABLE = "SecretsAvailable"  # every Secret key the spec names exists (secretrefs)
    # Only with spec.rollout (issue 17), in the Deployment's shape: True moving or complete,
    # Unknown waiting on an approval or a pause, False halted (reasons: rollouts.Reason).
    PROGRESSING = "Progressing"


class Reason(enum.StrEnum):
    """Condition and event reasons."""

    PROFILES_VALID = "ProfilesValid"
    PROFILES_INVALID = "ProfilesInvalid"
    REF_RESOLVED = "RefResolved"
    REF_RESOLUTION_FAILED = "RefResolutionFailed"
    GITHUB_APP_EXCHANGE_FAILED = "GitHubAppExchangeFailed"
    NO_GATEWAYS_DISCOVERED = "NoGatewaysDiscovered"
    SYNC_SUCCEEDED = "SyncSucceeded"
    SYNC_IN_PROGRESS = "SyncInProgress"
    SIDECAR_MISSING = "SidecarMissing"
    SIDECAR_PRESENT = "SidecarPresent"
    HOST_KEY_VERIFICATION_ENABLED = "HostKeyVerificationEnabled"
    HOST_KEY_VERIFICATION_DISABLED = "HostKeyVerificationDisabled"
    PAUSED = "Paused"
    RECONCILING = "Reconciling"
    NAMESPACE_NOT_SERVED = "NamespaceNotServed"  # the installation does not serve the namespace
    GATEWAY_NAMES_UNIQUE = "GatewayNamesUnique"
    GATEWAY_NAME_CONFLICT = "GatewayNameConflict"  # two owners' pods resolve to one gateway name
    RESTART_PENDING = "RestartPending"  # a gateway applied what only a restart loads
    NO_RESTART_PENDING = "NoRestartPending"
    DRIFT_DETECTED = "DriftDetected"  # a dryRun (or drift-reporting) gateway differs from Git
    NO_DRIFT = "NoDrift"
    SECRETS_FOUND = "SecretsFound"
    SECRET_MISSING = "SecretMissing"  # a Secret (or key) the spec names does not exist
    SECRETS_NOT_CHECKED = "SecretsNotChecked"  # the controller may not read Secrets there
    CRD_OUTDATED = "CRDOutdated"  # event: the installed CRD lacks fields (crdfit)
    # The Progressing condition's reasons (stoker_core.rollouts.Reason holds the same values).
    ROLLOUT_PROGRESSING = "RolloutProgressing"
    ROLLOUT_PAUSED = "RolloutPaused"
    AWAITING_APPROVAL = "AwaitingApproval"
    ROLLOUT_HALTED = "RolloutHalted"  # also an event (Warning): a gateway failed the commit
    ROLLOUT_COMPLETE = "RolloutComplete"  # also an event: the commit reached every gateway
    # Rollout events (controller → people), one per change of status.rollout.
    ROLLOUT_STEP_STARTED = "RolloutStepStarted"
    ROLLOUT_STEP_DONE = "RolloutStepDone"
    ROLLOUT_APPROVED = "RolloutApproved"  # a gate approved, naming who approved it
    ROLLOUT_ROLLED_BACK = "RolloutRolledBack"  # onFailure: rollback sent gateways back
    APPROVAL_IGNORED = "ApprovalIgnored"  # Warning: an unstamped, forged or stale approval


class SyncStatus(enum.StrEnum):
    """Per-gateway sync state reported by agents and shown in CR status."""

    PENDING = "Pending"
    SYNCED = "Synced"
    ERROR = "Error"
    MISSING_SIDECAR = "MissingSidecar"
    REJECTED = "Rejected"
    RESTART_REQUIRED = "RestartRequired"
    SKIPPED = "Skipped"
    DRIFTED = "Drifted"  # at its commit, files differ from Git, the profile changes nothing


class Metric(enum.StrEnum):
    """Prometheus metric names (agent and controller), as in the original where they exist."""

    AGENT_SYNC_TOTAL = "stoker_agent_sync_total"
    AGENT_SYNC_DURATION = "stoker_agent_sync_duration_seconds"
    AGENT_LAST_SYNC_TIMESTAMP = "stoker_agent_last_sync_timestamp_seconds"
    AGENT_LAST_SYNC_SUCCESS = "stoker_agent_last_sync_success"
    AGENT_FILES_CHANGED = "stoker_agent_files_changed"
    AGENT_SCAN_TOTAL = "stoker_agent_scan_total"
    AGENT_SCAN_DURATION = "stoker_agent_scan_duration_seconds"
    AGENT_GIT_FETCH_DURATION = "stoker_agent_git_fetch_duration_seconds"
    AGENT_DESIGNER_SESSIONS_BLOCKED = "stoker_agent_designer_sessions_blocked"
    AGENT_DRIFT_FILES = "stoker_agent_drift_files"
    CONTROLLER_RECONCILE_TOTAL = "stoker_controller_reconcile_total"
    CONTROLLER_RECONCILE_DURATION = "stoker_controller_reconcile_duration_seconds"
    CONTROLLER_REF_RESOLVE_DURATION = "stoker_controller_ref_resolve_duration_seconds"
    CONTROLLER_REF_RESOLVE_ERRORS_TOTAL = "stoker_controller_ref_resolve_errors_total"
    CONTROLLER_STATUS_WRITES_TOTAL = "stoker_controller_status_writes_total"
    CONTROLLER_GATEWAYS_DISCOVERED = "stoker_controller_gateways_discovered"
    CONTROLLER_GATEWAYS_SYNCED = "stoker_controller_gateways_synced"
    CONTROLLER_GITHUB_APP_TOKEN_EXPIRY = (
        "stoker_controller_github_app_token_expiry_timestamp_seconds"
    )
    # Fleet rollouts (issue 17), per GatewaySync with spec.rollout.
    ROLLOUT_STEP = "stoker_rollout_step"  # the step in progress, from 1; steps + 2: complete
    ROLLOUT_GATEWAYS = "stoker_rollout_gateways"  # gateways per rollout phase
    ROLLOUT_DURATION = "stoker_rollout_duration_seconds"  # a commit's first pass to complete
    ROLLOUT_HALTED = "stoker_rollout_halted"  # 1 while a rollout is halted (an alert fires)
    RECEIVER_REQUESTS_TOTAL = "stoker_webhook_receiver_requests_total"
    WEBHOOK_INJECTIONS_TOTAL = "stoker_webhook_injector_injections_total"
