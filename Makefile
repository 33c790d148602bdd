# k8s-llm-monitor. Everything needed is fetched by the go command itself.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version.Version=$(VERSION)
BIN := bin
PKGS := ./...
# go-nvml's header marks calls deprecated that it still binds; without this
# every cgo build prints pages of warnings.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: all build build-agent build-aggregator test e2e fault bench bench-fleet lint fmt tidy-check run run-once clean \
	images helm manifests manifests-check chart-lint chart-check promtool metrics-check actionlint workflow-lint

# Container images (make images): $(IMAGE_REGISTRY)/agent:$(IMAGE_TAG) and
# $(IMAGE_REGISTRY)/aggregator:$(IMAGE_TAG).
IMAGE_REGISTRY ?= ghcr.io/k8s-llm-monitor
IMAGE_TAG ?= $(VERSION)
DOCKER ?= docker

# helm, built from the Go module proxy into .cache/ (a few minutes the first
# time), with the version stamps its release builds carry: its own version,
# and the Kubernetes version of the client-go it is built with (1.37), which
# `helm lint` and `helm template` use as the cluster version.
HELM_VERSION := v3.22.0
HELM := $(CURDIR)/.cache/bin/helm-$(HELM_VERSION)
HELM_LDFLAGS := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/internal/version.metadata= \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37 \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37

# promtool, built from the Go module proxy into .cache/ like helm, checks
# the /metrics exposition of both binaries (make metrics-check).
PROMTOOL_VERSION := v0.316.0
PROMTOOL := $(CURDIR)/.cache/bin/promtool-$(PROMTOOL_VERSION)

# actionlint, built from the Go module proxy into .cache/ like helm, checks
# the GitHub Actions workflows (make workflow-lint).
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(CURDIR)/.cache/bin/actionlint-$(ACTIONLINT_VERSION)

all: build

build: build-agent build-aggregator ## build bin/agent and bin/aggregator

# The Dockerfiles run these two targets, so images and local builds share
# their flags.
build-agent: ## bin/agent: cgo, because go-nvml dlopens libnvidia-ml.so.1
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/agent ./agent

build-aggregator: ## bin/aggregator: static
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/aggregator ./aggregator

test: lint ## unit tests with the race detector
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

# End-to-end: a real kube-apiserver, etcd and metrics-server on loopback,
# built from the Go module proxy into .cache/e2e/bin on the first run (see
# docs/testing.md), with simulated kubelets, the aggregator and agents; the
# web view is driven in Debian's Chromium (installed once by chromium.sh);
# then the slow fault cases.
e2e: ## end-to-end tests against a real control plane (build tag e2e), the web view in headless Chromium, then the slow fault cases
	test/e2e/build.sh
	test/e2e/chromium.sh
	$(GO) test -tags e2e -count=1 -timeout 30m ./test/e2e/...
	$(MAKE) fault K8SMON_FAULT=slow

# Fault suite: real nats-server processes (built from the module proxy into
# .cache/fault/bin by test/fault/build.sh) and the real binaries on
# loopback, with NATS killed, paused and clustered and the aggregator
# killed. K8SMON_FAULT picks the cases: quick (CI), slow, or all.
K8SMON_FAULT ?= quick
fault: ## fault suite (build tag fault): K8SMON_FAULT=quick|slow|all
	FAULT_NATS_SERVER=$$(test/fault/build.sh)/nats-server K8SMON_FAULT=$(K8SMON_FAULT) \
		$(GO) test -tags fault -count=1 -timeout 20m ./test/fault/...

# The fleet benchmark: metrics-server and the aggregator side by side on
# NODES simulated nodes × PODS pods (real control plane as in e2e), CPU and
# RSS of each over the same window; see docs/benchmarks.md. Not part of CI.
NODES ?= 300
PODS ?= 30
bench-fleet: ## metrics-server vs the aggregator on a simulated fleet (NODES, PODS, FLEET_* in test/e2e/fleet_test.go)
	test/e2e/build.sh >/dev/null
	FLEET_NODES=$(NODES) FLEET_PODS=$(PODS) $(GO) test -tags 'e2e fleet' -run '^TestFleet$$' -count=1 -timeout 60m -v ./test/e2e/

bench: ## benchmarks of the hot paths (see docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(PKGS)

lint: fmt tidy-check ## gofmt, go vet, go mod tidy without diff, golangci-lint when present
	$(GO) vet $(PKGS)
	@if command -v golangci-lint >/dev/null; then golangci-lint run; fi

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

tidy-check:
	@cp go.mod /tmp/k8smon.go.mod.bak; cp go.sum /tmp/k8smon.go.sum.bak; \
	$(GO) mod tidy; \
	if ! git diff --quiet -- go.mod go.sum 2>/dev/null; then \
	  echo "go mod tidy changed go.mod/go.sum: commit the tidy result"; git diff -- go.mod go.sum | head -40; \
	  cp /tmp/k8smon.go.mod.bak go.mod; cp /tmp/k8smon.go.sum.bak go.sum; exit 1; fi

run: ## run the aggregator and an agent for this machine (HTTP_ADDR, NATS_ADDR, AGENT_ADDR, INTERVAL); prints the URLs
	@./scripts/run-local.sh

# Not echoed, so that `make run-once > report.json` is JSON; logs go to stderr.
run-once: ## print one node report of this machine as JSON on stdout and exit
	@$(GO) run ./agent --once --disable-kubelet

clean:
	rm -rf $(BIN)

images: ## build both container images with docker (VERSION, IMAGE_REGISTRY, IMAGE_TAG)
	$(DOCKER) build -f Dockerfile.agent --build-arg VERSION=$(VERSION) -t $(IMAGE_REGISTRY)/agent:$(IMAGE_TAG) .
	$(DOCKER) build -f Dockerfile.aggregator --build-arg VERSION=$(VERSION) -t $(IMAGE_REGISTRY)/aggregator:$(IMAGE_TAG) .

$(HELM):
	@mkdir -p $(@D) .cache/helm-build
	GOBIN=$(CURDIR)/.cache/helm-build $(GO) install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv .cache/helm-build/helm $@

helm: $(HELM) ## build the cached helm

manifests: $(HELM) ## render the chart into deploy/ and test/chart/testdata/
	scripts/render-manifests.sh $(HELM)

manifests-check: $(HELM) ## fail when deploy/ or test/chart/testdata/ differ from the chart
	HELM=$(HELM) scripts/chart-check.sh manifests

chart-lint: $(HELM) ## helm lint with the default values and each example
	HELM=$(HELM) scripts/chart-check.sh lint

chart-check: $(HELM) ## helm lint, template checks (bad values must fail), NOTES, manifests-check
	HELM=$(HELM) scripts/chart-check.sh all

$(PROMTOOL):
	@mkdir -p $(@D) .cache/promtool-build
	@echo "building promtool $(PROMTOOL_VERSION) from the Go module proxy into .cache/ (a few minutes the first time)"
	GOBIN=$(CURDIR)/.cache/promtool-build $(GO) install -tags remove_all_sd github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	mv .cache/promtool-build/promtool $@

promtool: $(PROMTOOL) ## build the cached promtool

metrics-check: $(PROMTOOL) ## promtool check metrics on both binaries' /metrics, check rules on the Grafana dashboard's queries
	@dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	K8SMON_EXPOSITION_DIR=$$dir $(GO) test -count=1 -run 'TestMetricsExposition|TestSnapshotSeriesLint|TestDashboardSeries' ./agent ./aggregator/api || exit 1; \
	for f in $$dir/agent.prom $$dir/aggregator.prom; do \
	  echo "promtool check metrics $$(basename $$f)"; $(PROMTOOL) check metrics < $$f || exit 1; done; \
	$(PROMTOOL) check rules $$dir/dashboard.rules.yml

$(ACTIONLINT):
	@mkdir -p $(@D) .cache/actionlint-build
	GOBIN=$(CURDIR)/.cache/actionlint-build $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	mv .cache/actionlint-build/actionlint $@

actionlint: $(ACTIONLINT) ## build the cached actionlint

workflow-lint: $(ACTIONLINT) ## actionlint on .github/workflows (the release workflow)
	$(ACTIONLINT) -no-color .github/workflows/*.yml
