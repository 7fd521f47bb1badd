# edgegate — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
CACHE     := $(CURDIR)/.cache
BIN       := $(CACHE)/bin
PROTOS    := $(CACHE)/protos
TOOLS_MOD := -modfile=$(CURDIR)/tools/go.mod
CONFIG    ?=
GATEWAY_ADDR ?= 127.0.0.1:8080

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/edgegate and bin/shopd (the example backends)
	$(GO) build -o bin/ ./cmd/edgegate ./cmd/shopd

.PHONY: run
run: build $(BIN)/grpcurl ## build and start the example backends and the gateway (embedded default config)
	@./scripts/run.sh

.PHONY: test
test: test-deps checkgenerate lint ## install what the tests need, check generated code and lint, then run every test
	$(GO) test -count=1 -race -timeout 45m ./...

.PHONY: test-deps
test-deps: ## install the programs the tests use when missing (apt-get as root)
	@./scripts/test-deps.sh

.PHONY: bench
bench: ## Go micro-benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: fuzz
fuzz: ## run each fuzz test for 30s
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s ./config

$(BIN)/%: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/ $$($(GO) list -f '{{.ImportPath}}' tool | grep '/$*$$')

.PHONY: tools
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway $(BIN)/protoc-gen-openapiv2 $(BIN)/grpcurl ## build the pinned tools into .cache/bin

.PHONY: protos
protos: ## fetch third-party .proto sources into .cache/protos (from registry packages)
	cd tools/npm && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(PROTOS) && mkdir -p $(PROTOS)/google/api $(PROTOS)/google/rpc
	cp tools/npm/node_modules/google-proto-files/google/api/{annotations,http,httpbody}.proto $(PROTOS)/google/api/
	cp tools/npm/node_modules/google-proto-files/google/rpc/{status,error_details,code}.proto $(PROTOS)/google/rpc/
	cd tools && $(GO) run ./protoprint $(PROTOS)

.PHONY: generate
generate: tools protos ## regenerate gen/ from proto/
	$(BIN)/buf generate
	$(BIN)/buf lint
	$(BIN)/buf format proto -d --exit-code

.PHONY: checkgenerate
checkgenerate: generate ## fail when gen/ differs from what proto/ generates
	@git diff --exit-code -- gen/ || (echo "gen/ is stale: run make generate and commit" && exit 1)
	@test -z "$$(git status --porcelain -- gen/)" || (git status --porcelain -- gen/ && echo "gen/ has untracked files: run make generate and commit" && exit 1)

.PHONY: lint
lint: tools protos ## go vet, gofmt and buf lint/format
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '^gen/') && exit 1)
	$(BIN)/buf lint
	$(BIN)/buf format proto -d --exit-code

.PHONY: clean
clean: ## remove build outputs and caches
	rm -rf bin $(CACHE) tools/npm/node_modules
