#!/usr/bin/env bash
# make e2e: snapshot the host, start the cluster, run tests/e2e inside the cluster's namespaces,
# tear down, then fail when the host differs from the snapshot. The last line is pytest's summary.
#
#   bash tests/cluster/e2e.sh [pytest arguments]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
py="$repo/.venv/bin/python"
mkdir -p "$repo/build"
snapshot="$repo/build/e2e-host-before.json"
report="$repo/build/e2e-pytest.log"
t0=$(date +%s)

holder_pid > /dev/null && die "a cluster is already running: run 'make cluster-down' first"
rm -f "$report"  # a summary line left by an earlier run must never pass for this one's
"$py" "$here/hoststate.py" snapshot "$snapshot" || die "could not snapshot the host"
trap 'bash "$here/down.sh"' EXIT INT TERM
status=0
if bash "$here/up.sh"; then
  # pytest runs inside the namespaces: the API server, the pods and the tests' own servers
  # share the node's address there (docs/testenv.md, "Network plan").
  # Its own --basetemp: /tmp/pytest-of-root is shared with every other root pytest on the
  # machine, whose clean-up of old directories races this session's (a crash at exit).
  inside env STOKER_CLUSTER_STATE="$S" STOKER_E2E_NODE_IP="$NODE_IP" "$py" -m pytest -q -p no:cacheprovider \
    --basetemp "$S/pytest" "$repo/tests/e2e" "$@" \
    2>&1 | tee "$report"
  status=${PIPESTATUS[0]}
else
  say "the cluster did not start: see $S/logs"; status=1
fi
trap - EXIT INT TERM
bash "$here/down.sh" || status=1
"$py" "$here/hoststate.py" compare "$snapshot" || status=1
say "make e2e took $(( $(date +%s) - t0 ))s"
# CI reads the last line: repeat pytest's summary there.
[ -s "$report" ] && tail -n 1 "$report"
exit "$status"
