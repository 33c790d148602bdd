# k8s-llm-monitor. Everything needed is fetched by the go command itself.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version.Version=$(VERSION)
BIN := bin
PKGS := ./...

.PHONY: all build test bench lint fmt tidy-check run clean

all: build

build: ## build bin/agent and bin/aggregator
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/agent ./agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/aggregator ./aggregator

test: lint ## unit tests with the race detector
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

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

run: ## run the agent once on this machine and print its report
	$(GO) run ./agent --once --disable-kubelet

clean:
	rm -rf $(BIN)
