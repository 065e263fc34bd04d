# Skiff build and test targets. `make test` is the command CI and the README use.
GO ?= go
PKGS ?= ./...

.PHONY: build test test-short bench fuzz vet fmt

build:
	CGO_ENABLED=0 $(GO) build -o bin/skiff ./cmd/skiff

# Full suite with the race detector. Long property/recovery loops have a
# -short variant (make test-short) for quick iterations.
test:
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

# Benchmarks quoted in the README (medians of -count runs).
bench:
	$(GO) test -run XXX -bench . -benchtime 2s -count 3 ./log ./record ./partition

fuzz:
	$(GO) test ./record -run XXX -fuzz FuzzDecode -fuzztime 60s

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')
