# Payment gateway: one target per job. `make help` lists them.
SHELL := /bin/bash
NAME ?= BankA
BANKS ?= BankA BankB
CONFIG ?= config.json
CERTS ?= certs
RUN := data/run

.PHONY: help install gen lint typecheck certs seed gateway bank client demo up stop status test clean

help:
	@echo "make demo              install, generate, certs, start 2 banks + gateway, show a transfer"
	@echo "make test              install, generate, buf lint, tsc, all tests (what CI runs)"
	@echo "make up / make stop    start / stop the demo system in the background"
	@echo "make gateway           run the gateway in the foreground"
	@echo "make bank NAME=BankA   run one bank in the foreground"
	@echo "make client            interactive client (make client ARGS='balance')"
	@echo "make certs             local CA and mTLS certificates in $(CERTS)/"
	@echo "make seed              demo users at every bank in $(CONFIG)"

# npm ci only when the lock file changed; `prepare` runs buf generate.
node_modules/.install-stamp: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp

src/gen/.stamp: node_modules/.install-stamp $(shell find proto -name '*.proto') buf.gen.yaml
	npx buf generate
	@touch $@

gen: src/gen/.stamp

lint: install
	npx buf lint

typecheck: gen
	npx tsc --noEmit

certs:
	scripts/gen-certs.sh $(CERTS) $(BANKS)

seed: gen certs
	@for b in $(BANKS); do bin/bank seed --config $(CONFIG) --name $$b || exit 1; done

gateway: gen certs
	bin/gateway --config $(CONFIG)

bank: gen certs
	bin/bank --config $(CONFIG) --name $(NAME)

client: gen certs
	bin/client --config $(CONFIG) $(ARGS)

up: seed
	scripts/up.sh $(CONFIG) $(BANKS)

stop:
	scripts/stop.sh

status:
	@scripts/status.sh

demo: up
	scripts/demo.sh $(CONFIG)

test: gen lint typecheck
	npm test --silent

clean: stop
	rm -rf data logs src/gen
