# edgegate — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
CACHE     := $(CURDIR)/.cache
BIN       := $(CACHE)/bin
PROTOS    := $(CACHE)/protos
TOOLS_MOD := -modfile=$(CURDIR)/tools/go.mod
#: CONFIG=FILE         make run: serve FILE (edgegate serve -c FILE); empty: the embedded default config
CONFIG    ?=
#: GATEWAY_ADDR=H:P    make run: the address the printed commands use; empty: the config's first
#:                     listener, as edgegate validate prints it (it must be that listener)
GATEWAY_ADDR ?=

.PHONY: help
help: ## list the targets and the variables
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo; echo "variables (make run CONFIG=my.yaml):"; sed -n 's/^#: /  /p' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/edgegate and bin/shopd (the example backends)
	$(GO) build -o bin/ ./cmd/edgegate ./cmd/shopd

.PHONY: run
run: build $(BIN)/grpcurl ## build and start the example backends and the gateway (CONFIG, default the embedded config)
	@CONFIG='$(CONFIG)' GATEWAY_ADDR='$(GATEWAY_ADDR)' ./scripts/run.sh

.PHONY: test
test: test-deps checkgenerate checkconsole lint ## install what the tests need, check generated code and lint, then run every test
	$(GO) test -count=1 -race -timeout 20m ./...

.PHONY: test-deps
test-deps: ## install the programs the tests use when missing (apt-get as root)
	@./scripts/test-deps.sh

.PHONY: cluster
cluster: build ## three gateway replicas, Redis, HAProxy (TCP) and the example backends on loopback; Ctrl-C stops all
	$(GO) run ./scripts/cluster up

.PHONY: cluster-check
cluster-check: build ## the same cluster under load on every door: one global limit, a rolling restart with 0 failed calls
	$(GO) run ./scripts/cluster check

.PHONY: bench
bench: bench-deps protos ## side by side with nginx, HAProxy and a bare grpc-gateway; table in bench/results/
	$(GO) run ./bench/harness -runs $${RUNS:-3} -duration $${DURATION:-5s}

.PHONY: soak
soak: ## 10 minutes at a fixed rate on all doors; RSS and goroutines to bench/results/soak.md
	$(GO) run ./bench/soak -duration $${DURATION:-10m}

.PHONY: bench-deps
bench-deps: ## install the benchmark peers and tools when missing (apt-get as root)
	@./scripts/test-deps.sh bench

.PHONY: bench-go
bench-go: ## Go micro-benchmarks of the hot paths (-benchmem)
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: fuzz
fuzz: ## run each fuzz test for 30s
	@set -e; for spec in config:FuzzLoad frontdoor:FuzzREST frontdoor:FuzzRESTDecoder frontdoor/grpcweb:FuzzGRPCWeb auth/jwt:FuzzVerify ratelimit:FuzzGCRA tlsconf:FuzzParseFiles internal/logline:FuzzSameAsSlog cache:FuzzEntryUnmarshal; do \
	  pkg=$${spec%%:*}; fn=$${spec##*:}; echo "== $$fn ($$pkg)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime 30s ./$$pkg; done

$(BIN)/%: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/ $$($(GO) list -f '{{.ImportPath}}' tool | grep '/$*$$')

# golangci-lint is pinned in a module of its own (tools/lint/go.mod) so that its
# dependencies do not move buf's and the protoc plugins' in tools/go.mod.
$(BIN)/golangci-lint: tools/lint/go.mod tools/lint/go.sum
	cd tools/lint && $(GO) build -o $(BIN)/ $$($(GO) list -f '{{.ImportPath}}' tool | grep '/golangci-lint$$')

# protoc-gen-edgegate is the repo's own plugin, built from the main module.
$(BIN)/protoc-gen-edgegate: go.mod go.sum $(filter-out %_test.go,$(wildcard cmd/protoc-gen-edgegate/*.go))
	$(GO) build -o $(BIN)/ ./cmd/protoc-gen-edgegate

.PHONY: tools
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway $(BIN)/protoc-gen-openapiv2 $(BIN)/protoc-gen-edgegate $(BIN)/grpcurl $(BIN)/golangci-lint ## build the pinned tools into .cache/bin

.PHONY: protos
protos: ## fetch third-party .proto sources into .cache/protos (from registry packages)
	./scripts/npm-ci.sh tools/npm
	rm -rf $(PROTOS) && mkdir -p $(PROTOS)/google/api $(PROTOS)/google/rpc
	cp tools/npm/node_modules/google-proto-files/google/api/{annotations,http,httpbody}.proto $(PROTOS)/google/api/
	cp tools/npm/node_modules/google-proto-files/google/rpc/{status,error_details,code}.proto $(PROTOS)/google/rpc/
	cd tools && $(GO) run ./protoprint $(PROTOS)

.PHONY: generate
generate: tools protos ## regenerate gen/ from proto/
	$(BIN)/buf generate
	$(BIN)/buf generate --template buf.openapi.gen.yaml
	$(BIN)/buf lint
	$(BIN)/buf format proto -d --exit-code

.PHONY: checkgenerate
checkgenerate: generate ## fail when gen/ differs from what proto/ generates
	@git diff --exit-code -- gen/ || (echo "gen/ is stale: run make generate and commit" && exit 1)
	@test -z "$$(git status --porcelain -- gen/)" || (git status --porcelain -- gen/ && echo "gen/ has untracked files: run make generate and commit" && exit 1)

.PHONY: lint
lint: tools protos ## go vet, gofmt, golangci-lint (.golangci.yml) and buf lint/format
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '^gen/') && exit 1)
	$(BIN)/golangci-lint run ./...
	$(BIN)/buf lint
	$(BIN)/buf format proto -d --exit-code

BROWSER := tools/browser
ESBUILD := $(BROWSER)/node_modules/.bin/esbuild

# The console's build and the browser tests' driver: npm packages pinned by
# tools/browser/package-lock.json (no install scripts, no browser download:
# the tests use the system Chromium).
$(ESBUILD): $(BROWSER)/package.json $(BROWSER)/package-lock.json
	./scripts/npm-ci.sh $(BROWSER)
	@touch $@

.PHONY: console
console: $(ESBUILD) ## rebuild the console's embedded assets (console/dist) from tools/browser/console
	$(ESBUILD) $(BROWSER)/console/console.js --bundle --minify --format=esm --target=es2022 --legal-comments=none --log-level=warning --outfile=console/dist/console.js
	cp $(BROWSER)/console/index.html $(BROWSER)/console/console.css console/dist/

.PHONY: checkconsole
checkconsole: console ## fail when console/dist differs from what tools/browser/console builds
	@git diff --exit-code -- console/dist/ || (echo "console/dist is stale: run make console and commit" && exit 1)
	@test -z "$$(git status --porcelain -- console/dist/)" || (git status --porcelain -- console/dist/ && echo "console/dist has untracked files: run make console and commit" && exit 1)

.PHONY: console-screenshot
console-screenshot: test-deps ## take docs/console.png: the console in headless Chromium, as TestConsole drives it
	EDGEGATE_CONSOLE_SCREENSHOT=$(CURDIR)/docs/console.png $(GO) test -count=1 -run '^TestConsole$$' ./test/

.PHONY: clean
clean: ## remove build outputs and caches
	rm -rf bin $(CACHE) tools/npm/node_modules $(BROWSER)/node_modules
