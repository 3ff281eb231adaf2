#!/usr/bin/env bash
# `make demo`: plan the bundled example for two gateways, then really sync gateway blue against
# the Ignition gateway simulator (and sync a second commit incrementally). No network needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
stoker="$python -m stoker_agent.cli"
work="$(mktemp -d -t stoker-demo-XXXXXX)"
trap 'rm -rf "$work"' EXIT

cp -r "$here/config-repo" "$work/repo"
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=Stoker -c user.email=demo@stoker.invalid commit -q -m "example config"

for gateway in blue red; do
  mkdir -p "$work/data-$gateway"
  echo
  echo "=== stoker plan for gateway ignition-$gateway (profile $gateway, empty data directory)"
  set +e
  $stoker plan --cr "$here/gatewaysyncs/multiple-profiles.yaml" --repo "$work/repo" \
    --data-dir "$work/data-$gateway" --gateway-name "ignition-$gateway" --profile "$gateway"
  code=$?
  set -e
  echo "(exit code $code: 2 means changes are pending)"
  [ "$code" -eq 2 ] || exit 1
done

"$python" "$here/demo.py"
