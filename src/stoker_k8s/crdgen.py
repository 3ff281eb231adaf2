"""Write the GatewaySync CRD generated from the model: `python -m stoker_k8s.crdgen [--check]`.

`--check` exits 1 when the committed file differs from a fresh generation (CI runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from stoker_core.schema import crd

CRD_FILE = Path(__file__).resolve().parent / "crds" / "gatewaysync.yaml"
HEADER = "# Generated from stoker_core.model by `python -m stoker_k8s.crdgen`; do not edit.\n"


def render() -> str:
    """The CRD as YAML text."""
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)


def main(argv: list[str]) -> int:
    """Write the CRD, or with --check compare it with the committed one."""
    text = render()
    if "--check" in argv:
        if not CRD_FILE.exists() or CRD_FILE.read_text() != text:
            print(f"{CRD_FILE} is out of date: run `python -m stoker_k8s.crdgen`", file=sys.stderr)
            return 1
        return 0
    CRD_FILE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
