# Stoker: `make demo` and `make test` work on a fresh machine; both bootstrap .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv sysdeps lint typecheck contracts unit test testenv helm-bin promtool-bin crd demo bench clean

help:
	@echo "make demo   - set up, then plan the bundled example for two gateways"
	@echo "make test   - set up, then lint, type-check, layer contracts and the whole test suite"
	@echo "make bench  - benchmarks (speed and memory goals, measured as ratios in one run)"
	@echo "make e2e    - as root: build a single-node cluster with a real kubelet, run tests/e2e on real pods"
	@echo "make images - as root: build the container images offline as OCI tarballs in build/images"

# Debian packages the tests need (git servers, rsync for benchmarks). Skipped when present.
SYSDEPS := git rsync openssh-server openssh-client libnss-wrapper time
sysdeps:
	@missing=""; for p in $(SYSDEPS) $(EXTRA_SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: venv
	$(VENV)/bin/mypy

contracts: venv
	$(VENV)/bin/lint-imports

testenv:
	bash tests/testenv/build.sh

# The CRD is generated from stoker_core.model; a test fails when the committed file drifts.
# The CRD, the chart's copy and the plain-YAML install all come from the model.
crd: venv
	$(PY) -m stoker_k8s.crdgen
	bash adapters/manifests/render.sh

# pytest exits 5 when it collects nothing; that must fail loudly, never pass silently.
unit: venv
	$(VENV)/bin/pytest -q -m "not kube"

helm-bin:
	bash adapters/helm/build-helm.sh

# promtool, for `promtool test rules` on the chart's alerts (tests/test_alert_rules.py).
promtool-bin:
	nice -n 19 bash tests/promtool/build.sh

test: sysdeps venv lint typecheck contracts testenv helm-bin promtool-bin
	$(VENV)/bin/pytest -q

demo: venv
	bash examples/demo.sh

# Every benchmark runs and writes its results into BENCH_OUT; bench/report.py then writes
# docs/benchmarks.md and docs/benchmarks/*.png from that one run. Fails if any goal was missed.
BENCH_OUT ?= build/bench
BENCHMARKS := run apply_bench soak admission_bench receiver_bench abuse_bench latency_bench rollout_bench controller_bench
# The fleet benchmark judges the agents' CPU per sync against this commit's code (issue 18's
# starting point), measured in the same run: its src is extracted from the history.
FLEET_BASELINE ?= 24a3250
FLEET_BASELINE_DIR := build/bench-baseline
bench: venv sysdeps testenv
	@rm -rf $(BENCH_OUT) $(FLEET_BASELINE_DIR); status=0; start=$$(date +%s); \
	base=; mkdir -p $(FLEET_BASELINE_DIR); \
	if git archive --prefix=$(FLEET_BASELINE)/ $(FLEET_BASELINE) src | tar -x -C $(FLEET_BASELINE_DIR); \
	then base=$$PWD/$(FLEET_BASELINE_DIR)/$(FLEET_BASELINE)/src; \
	else echo "no commit $(FLEET_BASELINE) in the history: the fleet benchmark runs without its baseline"; fi; \
	for b in $(BENCHMARKS); do echo "== bench/$$b.py"; \
	  if [ $$b = latency_bench ] && [ -n "$$base" ]; then set -- STOKER_BENCH_BASELINE=$$base; else set --; fi; \
	  env "$$@" $(PY) bench/$$b.py --out $(BENCH_OUT) || status=1; done; \
	$(PY) bench/report.py $(BENCH_OUT) --docs docs || status=1; \
	echo "make bench took $$(( $$(date +%s) - start )) s"; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info

# --- The single-node test cluster (docs/testenv.md): `make cluster`, `make e2e`, `make cluster-down`.
# Only these targets install the container runtime and image tools; `make test` never needs them.
CLUSTER_SYSDEPS := containerd runc containernetworking-plugins umoci debootstrap skopeo iptables \
	iproute2 util-linux openssl jq gcc libc6-dev
.PHONY: cluster-sysdeps cluster-bins images cluster-images cluster cluster-down e2e
cluster-sysdeps:
	@$(MAKE) --no-print-directory sysdeps SYSDEPS= EXTRA_SYSDEPS="$(CLUSTER_SYSDEPS)"

cluster-bins:
	bash tests/cluster/build.sh

# The images of adapters/images/images.toml as OCI tarballs in build/images (as root, offline
# from Debian's mirror and PyPI: debootstrap + umoci); the cluster adds its pause image.
# IMAGES_REF=HEAD builds the project as committed instead of the work tree.
IMAGES_REF ?=
images: cluster-sysdeps venv
	$(PY) adapters/images/build.py $(if $(IMAGES_REF),--ref $(IMAGES_REF))

cluster-images: images
	$(PY) adapters/images/build.py pause tests/cluster/pause.c registry.k8s.io/pause:3.10

cluster: cluster-sysdeps testenv cluster-bins cluster-images
	bash tests/cluster/up.sh

cluster-down:
	bash tests/cluster/down.sh

# Starts a cluster of its own, runs tests/e2e on real pods, tears down, then fails if the host
# differs from the snapshot taken before the start. Everything is built first: inside the
# cluster's namespaces there is no network.
e2e: cluster-sysdeps venv testenv cluster-bins cluster-images helm-bin
	bash tests/cluster/e2e.sh
