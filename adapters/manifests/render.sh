#!/usr/bin/env bash
# Regenerate adapters/manifests/stoker.yaml (plain YAML install) from the Helm chart's defaults,
# and namespace-access.yaml: the controller's rights in one served namespace, for GATEWAY_NAMESPACE.
# A test fails when a committed file differs from a fresh rendering.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
helm="$(bash "$root/adapters/helm/build-helm.sh" | tail -n 1)"
{
  echo "# Generated from adapters/helm/stoker by adapters/manifests/render.sh; do not edit."
  echo "# Install: kubectl create namespace stoker-system && kubectl apply -f stoker.yaml"
  # No hooks: kubectl apply would run the uninstall hook's Job at once (kubectl has no uninstall).
  "$helm" template stoker "$root/adapters/helm/stoker" --namespace stoker-system --include-crds \
    --no-hooks
} > "$root/adapters/manifests/stoker.yaml"
{
  echo "# Generated from adapters/helm/stoker by adapters/manifests/render.sh; do not edit."
  echo "# The controller's rights in one namespace it serves (docs/install.md), for each namespace:"
  echo "#   sed 's/GATEWAY_NAMESPACE/plant/' namespace-access.yaml | kubectl apply -f -"
  echo "# and list it in the controller's STOKER_NAMESPACES."
  "$helm" template stoker "$root/adapters/helm/stoker" --namespace stoker-system \
    --show-only templates/namespaces.yaml --set 'namespaces={GATEWAY_NAMESPACE}'
} > "$root/adapters/manifests/namespace-access.yaml"
