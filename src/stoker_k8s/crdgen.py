"""Write the GatewaySync CRD generated from the model: `python -m stoker_k8s.crdgen [--check]`.

`--check` exits 1 when the committed file differs from a fresh generation (CI runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from stoker_core.schema import crd

CRD_FILE = Path(__file__).resolve().parent / "crds" / "gatewaysync.yaml"
# The Helm chart ships the same file; both come from the model and are checked together.
CHART_CRD = Path(__file__).resolve().parents[2] / "adapters/helm/stoker/crds/gatewaysync.yaml"
HEADER = "# Generated from stoker_core.model by `python -m stoker_k8s.crdgen`; do not edit.\n"


def render() -> str:
    """The CRD as YAML text."""
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)


def main(argv: list[str]) -> int:
    """Write the CRD, or with --check compare it with the committed one."""
    text = render()
    targets = [CRD_FILE, *([CHART_CRD] if CHART_CRD.parent.is_dir() else [])]
    if "--check" in argv:
        stale = [t for t in targets if not t.exists() or t.read_text() != text]
        for target in stale:
            print(f"{target} is out of date: run `make crd`", file=sys.stderr)
        return 1 if stale else 0
    for target in targets:
        target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
