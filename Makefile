# Skiff build and test targets. `make test` is the command CI and the README use.
GO ?= go
PKGS ?= ./...

.PHONY: build test test-go test-python test-short bench fuzz vet fmt proto python-proto

build:
	CGO_ENABLED=0 $(GO) build -o bin/skiff ./cmd/skiff

# Full suite with the race detector. Long property/recovery loops have a
# -short variant (make test-short) for quick iterations.
test: test-go test-python test-alerts

test-go:
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

# The Python client's tests, against a `skiff dev` cluster they start.
# Debian's python3-grpcio, python3-protobuf and python3-pytest (the system
# interpreter, where apt installs them).
PYTHON ?= /usr/bin/python3
test-python: build
	@$(PYTHON) -c 'import grpc, google.protobuf, pytest' 2>/dev/null || { \
		echo "test-python: needs grpcio, protobuf and pytest for $(PYTHON): apt-get install python3-grpcio python3-protobuf python3-pytest"; exit 1; }
	cd clients/python && SKIFF_BIN=$(CURDIR)/bin/skiff $(PYTHON) -m pytest -q -p no:cacheprovider tests

# The alert rules' unit tests (deploy/prometheus/alerts_test.yml) with
# promtool from Debian's prometheus package.
PROMTOOL ?= promtool
.PHONY: test-alerts
test-alerts:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { echo "test-alerts: promtool missing: apt-get install prometheus"; exit 1; }
	cd deploy/prometheus && $(PROMTOOL) check rules alerts.yml && $(PROMTOOL) test rules alerts_test.yml

test-short:
	$(GO) test -short -count=1 $(PKGS)

# Benchmarks quoted in the README (medians of -count runs).
bench:
	$(GO) test -run XXX -bench . -benchtime 2s -count 3 ./log ./record ./partition

fuzz:
	$(GO) test ./record -run XXX -fuzz FuzzDecode -fuzztime 60s
	$(GO) test ./consumergroup -run XXX -fuzz '^FuzzDecodeEntry$$' -fuzztime 60s
	$(GO) test ./consumergroup -run XXX -fuzz '^FuzzShareStateApply$$' -fuzztime 60s

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# Regenerate rpc/skiffpb from rpc/proto (protoc from Debian's
# protobuf-compiler; plugins pinned here).
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
proto:
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/bin:$$PATH protoc -I rpc/proto \
		--go_out=rpc/skiffpb --go_opt=paths=source_relative \
		--go-grpc_out=rpc/skiffpb --go-grpc_opt=paths=source_relative \
		skiff/v1/skiff.proto
	mv rpc/skiffpb/skiff/v1/*.go rpc/skiffpb/ && rm -r rpc/skiffpb/skiff

# Containers: a static bin/skiff in an image FROM scratch (no registry
# needed) and a compose cluster of it (docker-compose.yml; NODES=5 adds
# docker-compose.5.yml). scripts/cluster.sh does the work, with either
# `docker compose` or `docker-compose`; faults: scripts/faults.sh.
IMAGE ?= skiff:dev
NODES ?= 3

.PHONY: image cluster-up cluster-down

image: build
	docker build -q -t $(IMAGE) .

# SECURE=1: TLS and encrypted gossip (scripts/cluster.sh up --secure).
cluster-up:
	SKIFF_IMAGE=$(IMAGE) scripts/cluster.sh up --nodes $(NODES) $(if $(SECURE),--secure)

cluster-down:
	SKIFF_IMAGE=$(IMAGE) scripts/cluster.sh down

# Chaos scenarios on the compose cluster (scripts/chaos.sh): one with
# `make chaos SCENARIO=leader-kill`, the whole suite with `make chaos-all`,
# the short CI suite with `make chaos-ci`. Any checker anomaly fails. They
# run on the secure cluster; CHAOS_ARGS=--insecure for the plaintext one.
SCENARIO ?= leader-kill
CHAOS_ARGS ?=

.PHONY: chaos chaos-all chaos-ci

chaos:
	scripts/chaos.sh $(SCENARIO) $(CHAOS_ARGS)

chaos-all:
	scripts/chaos.sh all $(CHAOS_ARGS)

chaos-ci:
	scripts/chaos.sh ci --steady 10s --duration 30s --recovery 10s $(CHAOS_ARGS)

# Regenerate the Python client's stubs from the same proto: messages with
# protoc (Debian's protobuf-compiler), services with grpc_tools (Debian's
# python3-grpc-tools; its bundled protoc is too old for the messages).
python-proto:
	protoc -I rpc/proto --python_out=clients/python skiff/v1/skiff.proto
	$(PYTHON) -m grpc_tools.protoc -I rpc/proto --grpc_python_out=clients/python skiff/v1/skiff.proto
