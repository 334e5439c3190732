#!/usr/bin/env bash
# `make test`: everything the tests need, started if it is not up (the single
# broker on 127.0.0.1:9092, the secured broker of tests/security.rs on
# 127.0.0.1:9392-9396, the Python peers' venv, the schema registry), then
# `cargo build --examples`, `cargo test --all-targets --no-fail-fast` and the doctests
# (or `cargo test ARGS...` when given arguments, e.g.
# scripts/test.sh --test faults).
#
# On the way out -- pass, fail or Ctrl+C -- it stops exactly what this run
# started and nothing else: the single broker and the registry stay up if they
# were up before, and so does the 3-node cluster, which the short fault tests in
# tests/faults.rs start by themselves (three JVMs, about 1.5 GB, otherwise left
# running). Data is kept, as with `make kafka-down`; `make down` stops everything.
#
# With CAFE_BOOTSTRAP pointing at another broker, run cargo test directly.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
say() { echo "test.sh: $*" >&2; }

# What runs now. A node counts as running whether or not it listens yet: one that
# somebody else is starting is theirs to stop. (The status is read into a variable
# and parsed in bash, not piped into grep; see node_pid in kafka.sh.)
kafka_running() { # kafka_running single|cluster
    local status node addr state
    status="$(scripts/kafka.sh status 2>/dev/null)" || true
    while read -r node addr state; do
        [[ $state == running* ]] || continue
        case "$1:$node" in single:single | secure:secure | cluster:[123]) return 0 ;; esac
    done <<<"$status"
    return 1
}
registry_running() {
    local status
    status="$(scripts/registry.sh status 2>/dev/null)" || true
    [[ -n $status && $status != stopped ]]
}

single_before=0 cluster_before=0 registry_before=0 secure_before=0
kafka_running single && single_before=1
kafka_running secure && secure_before=1
kafka_running cluster && cluster_before=1
registry_running && registry_before=1

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((!cluster_before)) && kafka_running cluster; then
        say "stopping the 3-node cluster this run started"
        scripts/kafka.sh down --nodes 3 >&2 || rc=1
    fi
    if ((!secure_before)) && kafka_running secure; then
        say "stopping the secured broker this run started"
        scripts/kafka.sh down --secure >&2 || rc=1
    fi
    if ((!registry_before)) && registry_running; then
        say "stopping the schema registry this run started"
        scripts/registry.sh down || rc=1
    fi
    if ((!single_before)) && kafka_running single; then
        say "stopping the broker this run started"
        scripts/kafka.sh down >&2 || rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
# Ctrl+C / kill: exit with the usual status, which runs the EXIT trap above.
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/kafka.sh up
scripts/kafka.sh up --secure
CAFE_PEER_PYTHON="$(scripts/py-peers.sh)"
export CAFE_PEER_PYTHON
scripts/registry.sh up
# tests/examples.rs runs the library's examples as programs; `cargo test` builds
# examples only as test harnesses, so build the real binaries first.
cargo build --quiet --examples
if (($#)); then
    cargo test "$@"
else
    cargo test --all-targets --no-fail-fast
    # --all-targets leaves out doctests; the library's docs carry some.
    cargo test --workspace --doc
fi
