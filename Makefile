# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs
# (Node 24, npm dependencies, the test bed's components, cached outside the repo by version).
SHELL := /bin/bash
NODE_ENV_SH := . scripts/node-env.sh
LIVY_SH := . scripts/livy-availability.sh

.PHONY: setup system-deps demo test test-kind test-unit lint build testbed-build bench clean

node_modules/.install-stamp: package.json package-lock.json
	@$(NODE_ENV_SH) && npm ci --no-audit --no-fund --loglevel=error && touch $@

setup: node_modules/.install-stamp

# Debian packages the test bed needs (container engine, the real node's runtime and CNI plugins, debootstrap)
system-deps:
	@bash scripts/system-deps.sh

testbed-build: setup system-deps
	@$(NODE_ENV_SH) && $(LIVY_SH) && npm run --silent testbed -- build

demo: setup system-deps
	@$(NODE_ENV_SH) && $(LIVY_SH) && npm run --silent testbed -- build && npm run --silent demo

# the test bed is built first, in the open (about 15 min on 2 cores when the cache is cold), so the test
# run itself only starts processes
test: setup system-deps
	@$(NODE_ENV_SH) && $(LIVY_SH) && npm run --silent testbed -- build && npm test

# The end-to-end suite on a new kind cluster (docs/kind.md): kind and its node image are built here when
# missing (KIND_NODE_IMAGE=kindest/node:... uses kind's own), then the suite runs with TEST_CLUSTER=kind.
# Not part of `make test` (CI): run before each release, its result recorded in docs/kind.md.
test-kind: setup system-deps
	@$(NODE_ENV_SH) && $(LIVY_SH) && npm run --silent testbed -- build && node test/kind/node-image.ts && \
	  TEST_CLUSTER=kind npx vitest run --project kind

test-unit: setup
	@$(NODE_ENV_SH) && npm run test:unit

lint: setup
	@$(NODE_ENV_SH) && npm run lint

build: setup
	@$(NODE_ENV_SH) && npm run build

bench: setup
	@$(NODE_ENV_SH) && npm run bench

clean:
	rm -rf dist node_modules
