#!/usr/bin/env bash
# Regenerate adapters/manifests/stoker.yaml (plain YAML install) from the Helm chart's defaults.
# A test fails when the committed file differs from a fresh rendering.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
helm="$(bash "$root/adapters/helm/build-helm.sh" | tail -n 1)"
{
  echo "# Generated from adapters/helm/stoker by adapters/manifests/render.sh; do not edit."
  echo "# Install: kubectl create namespace stoker-system && kubectl apply -f stoker.yaml"
  "$helm" template stoker "$root/adapters/helm/stoker" --namespace stoker-system --include-crds
} > "$root/adapters/manifests/stoker.yaml"
