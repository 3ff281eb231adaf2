#!/usr/bin/env bash
# `make demo`: plan the bundled example for two gateways, then sync gateway blue against the
# Ignition gateway simulator: a change, a deletion, a refusal and a rejected commit rolled back.
# Everything is left in build/demo (or --work DIR). No network needed. See examples/demo.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
exec "${STOKER_PYTHON:-.venv/bin/python}" examples/demo.py "$@"
