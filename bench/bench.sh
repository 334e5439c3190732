#!/usr/bin/env bash
# `make bench`: cafe against the Java perf tools, librdkafka (from Python and from C),
# franz-go, confluent-kafka (Rust) and krafka on one broker.
#
# Builds cafe (release), fetches the Kafka jars and the Python peers, builds the
# native peers (bench/peers/build.sh, cached in .run/bench/peers/), starts a
# dedicated single-node broker for the benchmark (so other work on the shared
# 127.0.0.1:9092 broker neither disturbs the figures nor fills with 2 GB of
# benchmark data) and, for the SASL_SSL rows, a secured one beside it, runs
# bench/harness.py, and stops them again.
# Results go to bench/results/local/ (git-ignored, so the checkout stays clean);
# `make bench-publish` copies a run into the tracked bench/results/latest.*.
#
# Environment:
#   CAFE_BENCH_PORT        port of the benchmark broker (default 9192; controller +1)
#   CAFE_BENCH_BOOTSTRAP   use this running broker instead of starting one
#   CAFE_BENCH_RUNS        repetitions of the throughput workloads (default 5; at least 3
#                          always, more only while the harness stays within
#                          CAFE_BENCH_BUDGET_S)
#   CAFE_BENCH_TOTAL_S     what the whole `make bench` may take, builds included (default
#                          1440 s): the harness's budget is what the builds and the broker
#                          start left of it, so a fresh clone (long builds) runs fewer
#                          rounds and a cached one all of them
#   CAFE_BENCH_BUDGET_S    the harness's own budget instead (seconds)
#   CAFE_BENCH_BROKER_PID_FILE  with CAFE_BENCH_BOOTSTRAP: that broker's pid file, for the
#                          broker CPU columns (they stay empty without it)
#   CAFE_BENCH_REBALANCE_RUNS  repetitions of the harness's rebalance runs, and the most
#                          rounds bench/rebalance.py runs (default 3)
#   CAFE_BENCH_HEARTBEATS  heartbeat.interval.ms values for the rebalance runs (default 3000,500)
#   CAFE_BENCH_SCALE       fraction of the record counts, for trying the harness (default 1)
#   CAFE_BENCH_KEEP_BROKER=1  leave the benchmark broker running afterwards
#   CAFE_BENCH_BASELINE    another cafe binary (e.g. a build from before a change): an extra
#                          client "cafe-before" in every produce workload and in the
#                          uncompressed consume workload
#   CAFE_BENCH_ONLY=consume  only the consume workloads (uncompressed, zstd, lz4): no
#                          produce workloads, no rebalance (default: all)
#   CAFE_BENCH_ONLY=latency  only the fixed-rate latency workloads (1k, 50k, 200k rec/s)
#   CAFE_BENCH_ONLY=security  only produce-100B and consume over PLAINTEXT and the same over
#                          SASL_SSL + SCRAM-SHA-512 (sasl-produce-100B, sasl-consume), for
#                          cafe, java and librdkafka-c, on a secured broker of its own
#   CAFE_BENCH_ONLY=transactions  only idempotent produce (5 in flight; cafe also with 1)
#                          and transactional produce (a commit every 100 ms)
#                          (`all` runs both kinds in its first 3 rounds)
#   CAFE_BENCH_SECURE_PORT  first port of the secured benchmark broker, started for `all`
#                          and `security` (default CAFE_BENCH_PORT + 300: SSL, SASL_SSL at +1,
#                          SASL_PLAINTEXT +2, controller +3, mTLS +4)
#   CAFE_BENCH_ONLY=rebalance  only bench/rebalance.py (3 members, 12 partitions, every
#                          rebalance mode), all CAFE_BENCH_REBALANCE_RUNS rounds unless
#                          CAFE_BENCH_REBALANCE_S is set; no native peers are built
#   CAFE_BENCH_NO_REBALANCE=1  every workload but bench/rebalance.py
#   CAFE_BENCH_REBALANCE_S what to keep of CAFE_BENCH_TOTAL_S for bench/rebalance.py after
#                          the harness (default 150 s: one round of its 5 modes, ~120 s).
#                          It always runs one round, and further rounds (up to
#                          CAFE_BENCH_REBALANCE_RUNS) while they fit in what the harness
#                          left of the total; CAFE_BENCH_REBALANCE_S=400 keeps room for 3
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
say() { echo "bench.sh: $*" >&2; }

PORT="${CAFE_BENCH_PORT:-9192}"
TARGET="${CARGO_TARGET_DIR:-target}"

say "building cafe (release)"
cargo build --release --quiet
scripts/kafka.sh fetch >/dev/null 2>&1 || scripts/kafka.sh fetch
PY="$(scripts/py-peers.sh)"
ONLY="${CAFE_BENCH_ONLY:-all}"
# The native peers' build (minutes from a fresh clone, the Rust ones most) runs in
# the background while the broker starts, and is waited for before the harness: no
# measurement runs beside it. bench/rebalance.py runs none of them.
PEERS_PID=
if [[ $ONLY != rebalance ]]; then
    say "building the native peers in the background (cached in .run/bench/peers)"
    bench/peers/build.sh "$PY" &
    PEERS_PID=$!
fi
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' kafka/pom.xml)"
LIBS="${CAFE_CACHE:-$HOME/.cache/cafe}/kafka-$VERSION/libs"

# scripts/kafka.sh keeps a node's files under <its repo>/.run/kafka/single, so a
# second single node needs a second "repo": a directory whose scripts/ and kafka/
# link to ours. Its data lives in .run/bench/broker/.run/kafka/single.
BROKER_HOME="$REPO/.run/bench/broker"
broker() { CAFE_KAFKA_PORT="$PORT" "$BROKER_HOME/scripts/kafka.sh" "$@"; }
SECURE_PORT="${CAFE_BENCH_SECURE_PORT:-$((PORT + 300))}"
secure_broker() { CAFE_KAFKA_SECURE_PORT="$SECURE_PORT" "$BROKER_HOME/scripts/kafka.sh" "$@"; }
STOP=() # the brokers this script started, stopped at exit
stop_brokers() {
    ((${#STOP[@]})) || return 0
    say "stopping the benchmark broker(s)"
    for args in "${STOP[@]}"; do $args >&2 || true; done
}
trap stop_brokers EXIT
mkdir -p "$BROKER_HOME/scripts"
ln -sfn "$REPO/scripts/kafka.sh" "$BROKER_HOME/scripts/kafka.sh"
ln -sfn "$REPO/kafka" "$BROKER_HOME/kafka"

if [[ -n "${CAFE_BENCH_BOOTSTRAP:-}" ]]; then
    BOOTSTRAP="$CAFE_BENCH_BOOTSTRAP"
    BROKER_PID_FILE="${CAFE_BENCH_BROKER_PID_FILE:-}"
    say "using the broker at $BOOTSTRAP"
else
    BOOTSTRAP="127.0.0.1:$PORT"
    BROKER_PID_FILE="$BROKER_HOME/.run/kafka/single/pid"
    say "starting a fresh benchmark broker on $BOOTSTRAP"
    [[ "${CAFE_BENCH_KEEP_BROKER:-0}" == 1 ]] || STOP+=("broker down --wipe")
    broker up --wipe >&2
fi
# The sasl-* rows: a secured broker beside the plaintext one (its SASL_SSL listener,
# SCRAM-SHA-512), started and stopped the same way.
SECURE=()
if [[ $ONLY == all || $ONLY == security ]]; then
    say "starting a fresh secured benchmark broker (SASL_SSL on 127.0.0.1:$((SECURE_PORT + 1)))"
    [[ "${CAFE_BENCH_KEEP_BROKER:-0}" == 1 ]] || STOP+=("secure_broker down --secure --wipe")
    secure_broker up --secure --wipe >&2
    SECURE=(--secure-bootstrap "127.0.0.1:$((SECURE_PORT + 1))" --secure-tls-dir "$BROKER_HOME/.run/kafka/secure/tls"
        --secure-broker-pid-file "$BROKER_HOME/.run/kafka/secure/pid")
fi

if [[ -n $PEERS_PID ]]; then
    say "waiting for the native peers' build"
    wait "$PEERS_PID"
fi

# The builds above take minutes in a fresh clone and seconds once cached; 30 s are
# kept for stopping the broker, and CAFE_BENCH_REBALANCE_S for bench/rebalance.py.
RESERVE=30
REBALANCE=0
[[ $ONLY == rebalance || ( $ONLY == all && ${CAFE_BENCH_NO_REBALANCE:-0} != 1 ) ]] && REBALANCE=1
((!REBALANCE)) || [[ $ONLY == rebalance ]] || RESERVE=$(( RESERVE + ${CAFE_BENCH_REBALANCE_S:-150} ))
BUDGET="${CAFE_BENCH_BUDGET_S:-$(( ${CAFE_BENCH_TOTAL_S:-1440} - SECONDS - RESERVE ))}"
[[ $ONLY == rebalance ]] || say "$SECONDS s spent on builds and the broker; the harness's budget is $BUDGET s"
[[ $ONLY == rebalance ]] || "$PY" bench/harness.py --bootstrap "$BOOTSTRAP" --kafka-libs "$LIBS" --target-dir "$TARGET" \
    --runs "${CAFE_BENCH_RUNS:-5}" --budget-s "$BUDGET" --rebalance-runs "${CAFE_BENCH_REBALANCE_RUNS:-3}" \
    --heartbeats "${CAFE_BENCH_HEARTBEATS:-3000,500}" --scale "${CAFE_BENCH_SCALE:-1}" \
    --only "$ONLY" ${CAFE_BENCH_BASELINE:+--baseline "$CAFE_BENCH_BASELINE"} \
    --peers-dir "$REPO/.run/bench/peers" ${BROKER_PID_FILE:+--broker-pid-file "$BROKER_PID_FILE"} "${SECURE[@]}"
if ((REBALANCE)); then
    # One round of every mode always, more (up to CAFE_BENCH_REBALANCE_RUNS) while they
    # fit: after the harness, in what it left of the total (the reserve, more if the
    # harness stopped early, less if it overran); alone
    # (CAFE_BENCH_ONLY=rebalance), in CAFE_BENCH_REBALANCE_S if set, else all of them.
    RB_BUDGET=()
    if [[ $ONLY != rebalance ]]; then
        RB_BUDGET=(--budget-s "$(( ${CAFE_BENCH_TOTAL_S:-1440} - SECONDS - 30 ))")
    elif [[ -n ${CAFE_BENCH_REBALANCE_S:-} ]]; then
        RB_BUDGET=(--budget-s "$CAFE_BENCH_REBALANCE_S")
    fi
    "$PY" bench/rebalance.py --bootstrap "$BOOTSTRAP" --kafka-libs "$LIBS" --target-dir "$TARGET" \
        --runs "${CAFE_BENCH_REBALANCE_RUNS:-3}" "${RB_BUDGET[@]}"
fi
