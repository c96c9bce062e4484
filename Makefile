# Payment gateway: one target per job. `make help` lists them.
SHELL := /bin/bash
NAME ?= BankA
BANKS ?= BankA BankB
CONFIG ?= config.json
CERTS ?= certs
RUN := data/run

.PHONY: help install gen build lint typecheck test-run certs seed gateway bank client demo up stop status test clean consul consul-install consul-stop chaos sim postgres postgres-stop cluster demo-cluster chaos-cluster

help:
	@echo "make demo              install, generate, certs, start 2 banks + gateway, show a transfer"
	@echo "make test              install, generate, build, buf lint, eslint, tsc, all tests (what CI runs)"
	@echo "make lint              buf lint (protos) and npm run lint (ESLint, type-checked rules)"
	@echo "make build             compile to dist/ (tsc; the client bundled by esbuild); bin/* run it"
	@echo "make up / make stop    start / stop the demo system in the background"
	@echo "make demo-cluster      PostgreSQL + 2 banks + 2 gateways; kill one gateway, the other finishes its work"
	@echo "make cluster           start that cluster in the background (make stop stops it)"
	@echo "make postgres          a local PostgreSQL in data/postgres (scripts/pg-dev.sh), prints its URL"
	@echo "make gateway           run the gateway in the foreground"
	@echo "make bank NAME=BankA   run one bank in the foreground"
	@echo "make client            interactive client (make client ARGS='balance')"
	@echo "make certs             local CA and mTLS certificates in $(CERTS)/"
	@echo "make seed              demo users at every bank in $(CONFIG)"
	@echo "make bench             benchmark: launch 2 banks + gateway, C=32 for 10 s (BENCH_ARGS='-c 8 --json')"
	@echo "make bench-sweep       C = 1, 8, 32, 128; table into docs/benchmarks.md (BENCH_LABEL, BENCH_ARGS)"
	@echo "make bench-plot        throughput and p99 against C from bench JSON into $(BENCH_PLOT_OUT) (BENCH_PLOT_INPUTS='[LABEL=]FILE.json ...', BENCH_PLOT_ARGS='--x linear')"
	@echo "make chaos             the chaos test for CHAOS_SECONDS (default 600), seed CHAOS_SEED (default random)"
	@echo "make chaos-cluster     the same with 3 gateways on PostgreSQL (gateways and banks killed)"
	@echo "make sim               deterministic simulation: 2000 seeds (SIM_SEED=n one seed, SIM_SECONDS=N soak, SIM_SCENARIOS, SIM_JOBS)"
	@echo "make consul            install Consul into ./tools if missing, start a local dev agent (http $(CONSUL_HTTP_PORT))"
	@echo "make consul-stop       stop that agent"

# npm ci only when the lock file changed; `prepare` runs `npm run gen` (buf generate, and the descriptor set for reflection).
node_modules/.install-stamp: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp

src/gen/.stamp: node_modules/.install-stamp $(shell find proto -name '*.proto') buf.gen.yaml
	npm run gen --silent
	@touch $@

gen: src/gen/.stamp

# The compiled build every bin/* runs (tsc into dist/, the client bundled by esbuild), rebuilt when a
# source changes. `npm test` rebuilds it too (incrementally), so tests never run a stale dist/.
dist/.stamp: src/gen/.stamp tsconfig.json tsconfig.build.json scripts/bundle-client.mjs $(shell find src bin -name '*.ts' -not -path 'src/gen/*')
	npm run build --silent
	@touch $@

build: dist/.stamp

# buf lint (the protos) and ESLint with typescript-eslint's type-checked rules (the code; it reads the
# generated types, hence gen).
lint: gen
	npx buf lint
	npm run lint --silent

typecheck: gen
	npx tsc --noEmit

certs:
	scripts/gen-certs.sh $(CERTS) $(BANKS)

seed: build certs
	@for b in $(BANKS); do bin/bank seed --config $(CONFIG) --name $$b || exit 1; done

gateway: build certs
	bin/gateway --config $(CONFIG)

bank: build certs
	bin/bank --config $(CONFIG) --name $(NAME)

client: build certs
	bin/client --config $(CONFIG) $(ARGS)

# Consul when it can be had (installed into ./tools, dev agent started), else static discovery with a
# notice; data/run/discovery.env carries the choice to the nodes and the demo client.
up: seed
	scripts/consul-up.sh $(CERTS)
	env $$(cat $(RUN)/discovery.env 2>/dev/null) scripts/up.sh $(CONFIG) $(BANKS)

stop:
	scripts/stop.sh
	scripts/consul-dev.sh stop

CONSUL_HTTP_PORT ?= 18500
export CONSUL_HTTP_PORT

consul-install:
	scripts/install-consul.sh

consul: certs consul-install
	scripts/consul-dev.sh start $(CERTS)

consul-stop:
	scripts/consul-dev.sh stop

status:
	@scripts/status.sh

demo: up
	env $$(cat $(RUN)/discovery.env 2>/dev/null) scripts/demo.sh $(CONFIG)

postgres:
	scripts/pg-dev.sh start data/postgres >/dev/null
	scripts/pg-dev.sh url data/postgres

postgres-stop:
	scripts/pg-dev.sh stop data/postgres

# Several gateways over one PostgreSQL; data/run/cluster.env carries the settings.
cluster: seed
	scripts/consul-up.sh $(CERTS)
	scripts/up-cluster.sh $(CONFIG) $(BANKS)

demo-cluster: cluster
	scripts/demo-cluster.sh $(CONFIG)

test: lint test-run

# Everything `make test` does but lint (.ci/run runs lint on its own, then this, so a lint failure
# does not hide the test results).
test-run: build typecheck
	npm test --silent

# Benchmarks (docs/benchmarks.md). Each launches its own system in a temp folder.
BENCH_ARGS ?=
BENCH_LABEL ?= latest
# The picture of docs/bench.svg: one line per report (`bin/bench ... --json > FILE.json`), labelled from
# its setup or by LABEL=FILE.json, e.g. BENCH_PLOT_INPUTS='"before=a.json" b.json'.
BENCH_PLOT_INPUTS ?= $(sort $(wildcard docs/bench-data/*.json))
BENCH_PLOT_OUT ?= docs/bench.svg
BENCH_PLOT_ARGS ?=
.PHONY: bench bench-sweep bench-plot
bench: build
	bin/bench $(BENCH_ARGS)

bench-sweep: build
	bin/bench --sweep 1,8,32,128 --docs docs/benchmarks.md --label "$(BENCH_LABEL)" $(BENCH_ARGS)

bench-plot: build
	bin/bench-plot --out $(BENCH_PLOT_OUT) $(BENCH_PLOT_ARGS) $(BENCH_PLOT_INPUTS)

# The chaos test alone, longer than in `make test`: CHAOS_SECONDS=600 CHAOS_SEED=123 make chaos
chaos: build
	CHAOS_MODE=single CHAOS_SECONDS=$${CHAOS_SECONDS:-600} npx mocha test/integration/chaos.test.ts

# The cluster mode alone: 3 gateways on PostgreSQL, 3 banks, gateways and banks SIGKILLed.
chaos-cluster: build
	CHAOS_MODE=cluster CHAOS_CLUSTER_SECONDS=$${CHAOS_SECONDS:-600} npx mocha test/integration/chaos.test.ts

# One process per core, one seed per scenario; SIM_SEED=n replays one scenario and prints its trace hash.
sim: gen
	npx tsx test/simulation/run.ts

clean: stop
	rm -rf data logs src/gen dist
