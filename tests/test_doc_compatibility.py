"""docs/migration.md's compatibility audit covers every end-to-end case and every annotation or
label row of the original operator's behaviour reference (its §9.1 checklist and §2.6 table),
and every test it names exists. The ids are copied here once from the reference, which a fresh
clone does not have."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIGRATION = ROOT / "docs" / "migration.md"

# The original's Chainsaw e2e cases, `<suite>/<case>` (reference §9.1).
E2E_CASES = [
    *(f"controller/{c}" for c in (
        "01-crd-validation", "02-finalizer-cleanup", "03-paused-cr",
        "04-ref-resolution-branch", "05-ref-resolution-tag", "06-ref-resolution-invalid",
        "07-metadata-configmap", "08-public-repo-no-auth", "09-missing-api-key-secret",
        "10-missing-git-token-secret", "11-missing-git-ssh-secret", "12-webhook-triggered-ref",
        "13-polling-disabled",
    )),
    *(f"discovery/{c}" for c in (
        "01-no-annotated-pods", "02-annotated-pod-running", "03-pod-not-running",
        "04-gateway-name-annotation", "05-gateway-name-label", "06-gateway-name-podname",
        "07-missing-sidecar-detection", "08-multiple-gateways",
    )),
    *(f"webhook/{c}" for c in (
        "01-non-annotated-pod", "02-basic-injection", "03-already-injected", "04-cr-not-found",
        "05-cr-paused-denied", "06-profile-not-found", "07-auto-discover-single-cr",
        "08-auto-discover-zero-crs", "09-auto-discover-multiple-crs",
        "10-agent-image-annotation", "11-agent-image-cr-spec", "12-data-volume-ignition-data",
        "13-data-volume-data", "14-public-repo-no-git-creds", "15-gateway-port-tls-defaults",
    )),
    *(f"receiver/{c}" for c in (
        "01-github-release", "02-argocd-notification", "03-kargo-promotion",
        "04-generic-payload", "05-invalid-payload", "06-idempotent-ref",
    )),
]  # fmt: skip

# The original's annotation and label table (reference §2.6), one row each.
ANNOTATION_ROWS = [
    "`stoker.io/inject` (pod annotation)",
    "`stoker.io/cr-name` (pod annotation)",
    "`stoker.io/profile` (pod annotation)",
    "`stoker.io/gateway-name` (pod annotation)",
    "`stoker.io/agent-image` (pod annotation)",
    "`stoker.io/injected` (pod annotation)",
    "`stoker.io/agent` (pod label)",
    "`stoker.io/ref-override` (pod annotation)",
    "`stoker.io/requested-ref` (GatewaySync annotation)",
    "`stoker.io/requested-at` (GatewaySync annotation)",
    "`stoker.io/requested-by` (GatewaySync annotation)",
    "`stoker.io/injection=enabled` (namespace label)",
    "`stoker.io/cr-name` (label on ConfigMaps and the token Secret)",
    "`stoker.io/secret-type` (token Secret annotation)",
    "`app.kubernetes.io/managed-by` (label)",
    "`stoker.io/gatewaysync` (RoleBinding label)",
]
TEST_REF = re.compile(r"`((?:core|k8s|agent|e2e)/[\w/]+\.py)::(test_\w+)`")


def audit_rows() -> dict[str, str]:
    """The audit table's rows: first cell → the whole row."""
    text = MIGRATION.read_text(encoding="utf-8")
    section = text.split("## Compatibility audit", 1)[1]
    _header, *lines = [line for line in section.splitlines() if line.startswith("| ")]
    return {
        line.split(" | ", 1)[0].removeprefix("| ").strip(): line
        for line in lines
        if not line.startswith("| ---")
    }


def test_every_original_e2e_case_and_annotation_row_has_a_line_in_the_migration_audit() -> None:
    rows = audit_rows()
    wanted = [f"`{case}`" for case in E2E_CASES] + ANNOTATION_ROWS
    missing = [key for key in wanted if key not in rows]
    assert not missing, f"docs/migration.md#compatibility-audit has no line for {missing}"
    for key in wanted:
        cells = [c.strip() for c in rows[key].strip("| ").split(" | ")]
        assert len(cells) == 3, f"{key}: a test (or none) and a difference (or —)"
        if cells[1] == "none":
            assert len(cells[2]) > 20, f"{key} has no test: say why"


def test_every_test_the_migration_audit_names_exists() -> None:
    for key, row in audit_rows().items():
        named = TEST_REF.findall(row)
        assert named or "| none |" in row, f"{key}: name its test as `file::function`"
        for path, function in named:
            source = (ROOT / "tests" / path).read_text(encoding="utf-8")
            assert re.search(rf"^def {function}\(", source, re.M), f"{key}: {path}::{function}"
