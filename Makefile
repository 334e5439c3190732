# cafe — developer entry points. `make help` lists them.
#
# The broker is real Apache Kafka 4.1.1 run from jars (no Docker): see
# scripts/kafka.sh for ports, files and environment variables.
#   single node : 127.0.0.1:9092            (make kafka-up / kafka-down)
#   3 nodes     : 127.0.0.1:19092,19093,19094 (make cluster-up / cluster-down)

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Shared download cache (Kafka jars, Python venv); the scripts use the same default.
export CAFE_CACHE ?= $(HOME)/.cache/cafe
# Where tests and demos find the broker.
export CAFE_BOOTSTRAP ?= 127.0.0.1:9092
CAFE_CLUSTER_BOOTSTRAP ?= 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094

KAFKA := scripts/kafka.sh
CARGO_TARGET_DIR ?= target
MUSL := x86_64-unknown-linux-musl

.PHONY: help kafka-fetch kafka-up kafka-down kafka-secure-up kafka-secure-down kafka-wipe kafka-restart kafka-logs kafka-status \
        cluster-up cluster-down down registry-up registry-down registry-logs peers static test \
        build produce consume topic demo bench bench-publish fuzz faults

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

# ---------------------------------------------------------------------------
# Broker

kafka-fetch: ## download the Kafka jars into $(CAFE_CACHE) (once)
	$(KAFKA) fetch

kafka-up: ## start the single-node broker on 127.0.0.1:9092 (keeps data; no-op if up)
	$(KAFKA) up

kafka-down: ## stop the single-node broker (data kept)
	$(KAFKA) down

kafka-wipe: ## stop the single-node broker and delete its data
	$(KAFKA) down --wipe

kafka-restart: ## graceful stop + start of the single-node broker
	$(KAFKA) restart

kafka-logs: ## last lines of the broker logs (single node and cluster)
	-@$(KAFKA) logs --nodes 1
	-@$(KAFKA) logs --nodes 3 2>/dev/null

kafka-status: ## which Kafka nodes run
	@$(KAFKA) status || true

kafka-secure-up: ## start the secured broker (TLS, SASL, ACLs) on 127.0.0.1:9392-9396 (see scripts/kafka.sh)
	$(KAFKA) up --secure

kafka-secure-down: ## stop the secured broker (data and certificates kept)
	$(KAFKA) down --secure

cluster-up: ## start the 3-node KRaft cluster on 127.0.0.1:19092-19094
	$(KAFKA) up --nodes 3

cluster-down: ## stop the 3-node cluster (data kept; scripts/kafka.sh down --nodes 3 --wipe deletes it)
	$(KAFKA) down --nodes 3

# Each stop is a no-op when that service is not running. The benchmark broker's data
# is wiped as bench.sh itself does on exit (it is only benchmark topics).
BENCH_BROKER := .run/bench/broker/scripts/kafka.sh
down: ## stop everything the project can start: broker, secured broker, 3-node cluster, registry, bench brokers
	$(KAFKA) down
	$(KAFKA) down --secure
	$(KAFKA) down --nodes 3
	scripts/registry.sh down
	@if [[ -x $(BENCH_BROKER) ]]; then echo "$(BENCH_BROKER) down --wipe"; $(BENCH_BROKER) down --wipe; \
		echo "$(BENCH_BROKER) down --secure --wipe"; $(BENCH_BROKER) down --secure --wipe; fi

# ---------------------------------------------------------------------------
# Schema Registry (Apicurio, Confluent-compatible API; see registry/README.md)

registry-up: ## start the schema registry on 127.0.0.1:8081 (first run builds it with Maven, ~2 min)
	scripts/registry.sh up

registry-down: ## stop the schema registry (in-memory: its schemas are gone)
	scripts/registry.sh down

registry-logs: ## the schema registry's log
	scripts/registry.sh logs

# ---------------------------------------------------------------------------
# Peers (Python clients for interop tests)

peers: ## create/reuse the Python venv with confluent-kafka, kafka-python, pytest
	scripts/py-peers.sh

# ---------------------------------------------------------------------------
# Build

CAFE := $(CARGO_TARGET_DIR)/release/cafe
# The pipeline uses the release binary; cargo rebuilds it only when sources change.
build: ## cargo build --release
	cargo build --release --quiet

# A fully static binary without any C toolchain: CC=/bin/false makes any crate that
# tries to compile C fail loudly, and rust-lld (shipped with rustup, found by rustc
# next to itself) links against the musl target's self-contained crt and libc.
# Verified: produces a "static-pie linked" ELF with no extra linker flags.
# (Outputs are tested from a variable or here-string, not `cmd | grep -q`: should the
# shell run with pipefail, grep exiting at its match can fail that pipeline with SIGPIPE.)
static: ## static musl binary, built with rust-lld and no C compiler
	@command -v rustup >/dev/null || { echo "static: rustup is needed to add the $(MUSL) target" >&2; exit 1; }
	@grep -qx '$(MUSL)' <<<"$$(rustup target list --installed)" || rustup target add $(MUSL)
	CC=/bin/false CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
		cargo build --release --target $(MUSL)
	@echo "static binary: $(CARGO_TARGET_DIR)/$(MUSL)/release/cafe"
	@out="$$(file $(CARGO_TARGET_DIR)/$(MUSL)/release/cafe)"; echo "$$out" >&2; \
		[[ $$out == *static* ]] || { echo "static: not statically linked" >&2; exit 1; }
	$(CARGO_TARGET_DIR)/$(MUSL)/release/cafe --help >/dev/null && echo "static: cafe --help runs"

# ---------------------------------------------------------------------------
# Using the pipeline (the seed's steps). N, TOPIC and GROUP can be overridden:
#   make produce N=20

N ?= 5
TOPIC ?= demo
GROUP ?= cafe-group-clean

produce: build ## send N (5) random cafe events to TOPIC (demo), acks=1
	$(CAFE) produce -t $(TOPIC) -n $(N)

consume: build ## consume TOPIC as group GROUP (cafe-group-clean) until Ctrl+C
	$(CAFE) consume -t $(TOPIC) -g $(GROUP)

topic: build ## recreate TOPIC with 3 partitions, replication factor 1
	$(CAFE) topic recreate $(TOPIC) --partitions 3 --replication-factor 1

demo: build kafka-up ## the whole pipeline: broker, topic, consumer first, produce 5, show the 5 events
	scripts/demo.sh $(CAFE) $(TOPIC) $(GROUP) $(N)

# ---------------------------------------------------------------------------
# Checks

# Everything the tests need, started if it is not up (each a no-op when it is; .ci/run
# starts the broker beforehand with --wipe): the broker, the Python peers' venv and the
# schema registry. At the end (pass, fail or Ctrl+C) scripts/test.sh stops whatever it
# or the tests started that was not running before (the fault tests' 3-node cluster, and
# the broker and registry if they were down). With CAFE_BOOTSTRAP pointing at another
# broker, run cargo test directly.
test: ## all tests: unit + integration against the real broker, registry and peers
	scripts/test.sh

# Own broker on 127.0.0.1:9192 (started and wiped by the script); see BENCHMARKS.md.
# Results go to the git-ignored bench/results/local/, so a run leaves the checkout clean;
# the native peers are built and cached in the git-ignored .run/bench/peers/.
bench: ## cafe vs Java, librdkafka (Python, C), franz-go, confluent-kafka/krafka (Rust), then rebalance (~22 min, ~23 on a machine that never built the Rust peers); see BENCHMARKS.md
	bench/bench.sh

# The tracked bench/results/latest.* back BENCHMARKS.md: replacing them is a choice,
# not a side effect of measuring. A scaled-down trial run (CAFE_BENCH_SCALE) is refused.
BENCH_LOCAL := bench/results/local
bench-publish: ## copy the last full `make bench` run into the tracked bench/results/latest.*
	@[[ -f $(BENCH_LOCAL)/latest.json ]] || { echo "bench-publish: no run in $(BENCH_LOCAL)/; run make bench first" >&2; exit 1; }
	@python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["settings"]["scale"] != 1)' $(BENCH_LOCAL)/latest.json \
		|| { echo "bench-publish: $(BENCH_LOCAL)/latest.json is a scaled-down run (CAFE_BENCH_SCALE); not publishing it" >&2; exit 1; }
	cp $(BENCH_LOCAL)/latest.txt $(BENCH_LOCAL)/latest.md $(BENCH_LOCAL)/latest.csv $(BENCH_LOCAL)/latest.json bench/results/
	@echo "bench-publish: copied; update BENCHMARKS.md from bench/results/latest.md, then commit both"

# Every target of `cargo fuzz list` but the excluded ones (see the script), from the
# committed seeds in fuzz/corpus/; .ci/run runs it after the tests.
fuzz: ## fuzz each fuzz/ target for a bounded time (about 2.5 min + build); fails on a crash
	scripts/fuzz.sh

# The fault suite can use: scripts/kafka.sh kill <1|2|3|single>, start <...>, restart,
# with the cluster from `make cluster-up` (bootstrap $(CAFE_CLUSTER_BOOTSTRAP)).
faults: ## the full fault suite on the 3-node cluster (tests/faults.rs via scripts/faults.sh)
	scripts/faults.sh
