# pgwarden — the two commands a newcomer needs are `make run` and `make test`.
#
#   make setup   install PostgreSQL 15 + pgvector 0.8 (scripts/setup.sh), the Go
#                modules, the real clients of the compatibility suite, Chromium for
#                the UI test, SimpleSAMLphp + php-cli for the SAML test, the Vault
#                and Hydra servers the tests run and the helm client the deploy/
#                checks run (built once into .tools/bin);
#                idempotent: installs nothing twice
#   make build   bin/pgwarden
#   make test    go vet, then every test (real PostgreSQL/Vault servers started by the tests)
#   make run     build and start `pgwarden dev` (the local stack); ARGS='--data DIR' to pass flags
#   make fuzz    run every Fuzz target for FUZZTIME (default 30000x, executions) each
#   make bench   pgwarden vs direct PostgreSQL vs pgbouncer in one run (bench/cmd/pgwbench,
#                ~8 min on 2 cores; PROFILE=1 writes pgwarden profiles, BENCH_DURATION=8s, 2 rounds)
#   make bench-micro  the Go micro-benchmarks (go test -bench, allocations reported)
#   make manifest  render deploy/kubernetes/pgwarden.yaml from the Helm chart (docs/deploy.md)
#
# PKGS narrows test/fuzz/bench to some packages, e.g. make fuzz PKGS=./credentials/... FUZZTIME=5000x

GO       ?= go
BIN      := bin/pgwarden
# An execution count, not a duration: go1.26's fuzz coordinator can report a
# bare "context deadline exceeded" failure when a -fuzztime duration expires
# while a worker is mid-call (go.dev/issue/75804, fixed in go1.27); a count
# has no deadline to race. A duration (FUZZTIME=30s) still works.
# 30000 executions: about 2 s (13000 execs/s) to 30 s (FuzzClassify, 1000/s) a target here.
FUZZTIME ?= 30000x
ARGS     ?=
PKGS     ?= ./...

.PHONY: setup setup-pg setup-clients build test chaos lint race run fuzz bench bench-micro manifest clean

# PostgreSQL + pgvector and the Go modules: all `make run` needs.
setup-pg:
	@scripts/setup.sh
	@$(GO) mod download

# The real clients the compatibility suite and the example notebook drive
# (psycopg 3/2, SQLAlchemy, nbconvert + ipykernel from Debian; node-postgres + pgvector via npm ci).
setup-clients:
	@scripts/setup-clients.sh

setup: setup-pg setup-clients
	@scripts/setup-browser.sh
	@scripts/setup-saml.sh
	@scripts/vault-tool.sh
	@scripts/hydra-tool.sh
	@scripts/helm-tool.sh

build:
	$(GO) build -o $(BIN) ./cmd/pgwarden

test: setup
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)

# Static checks CI runs before the tests: vet, staticcheck (pinned; the go
# command caches it), go.mod/go.sum tidy, and the race detector on the
# packages that own goroutines (relay, recorder, approvals and their stores, the shared store, credentials,
# OIDC key refresh, gateway sessions, MCP sessions).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
RACE_PKGS   ?= ./pgwire ./sessions ./approvals/... ./internal/sharedstore ./credentials ./identity ./internal/gateway ./mcp
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	$(GO) mod tidy -diff

race: setup
	$(GO) test -race -count=1 -timeout 10m $(RACE_PKGS)

# The long chaos test (docs/recording.md): PGWARDEN_CHAOS_DURATION=10m by default.
chaos: setup
	PGWARDEN_CHAOS=long $(GO) test -count=1 -timeout 60m -run '^TestChaos$$' -v ./integration/

run: setup-pg build
	$(BIN) dev $(ARGS)

# Every FuzzXxx in every package that has tests, one at a time (go test -fuzz
# takes one target in one package).
fuzz:
	@set -e; \
	for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' $(PKGS)); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# One table (stdout) + bench/results/latest.json; see docs/performance.md.
BENCH_DURATION ?= 8s
bench: setup-pg build
	@scripts/setup-bench.sh
	$(GO) run ./bench/cmd/pgwbench -duration $(BENCH_DURATION) -out bench/results/latest.json $(if $(PROFILE),-profile bench/results/profiles)

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# The plain Kubernetes manifest: the chart rendered with its default values
# (deploy's test fails when the committed file differs from a fresh render).
manifest:
	@scripts/helm-tool.sh
	@scripts/render-manifest.sh

clean:
	rm -rf bin
