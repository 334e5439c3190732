#!/usr/bin/env bash
# Builds the native benchmark peers into .run/bench/peers/ (git-ignored) and
# caches them there: a driver is rebuilt only when its sources (or, for C, the
# librdkafka it links) change. Called by bench/bench.sh before the harness.
#
#   bench/peers/build.sh PY      PY: the peers venv's python (scripts/py-peers.sh)
#
# For every driver it leaves either the executable or NAME.skip, one line saying
# why it could not be built here; the harness prints that line and leaves the
# client out of the table (never silently). Build logs: .run/bench/peers/NAME.log.
#
#   rdkafka_peer   C on librdkafka: the shared library bundled in the venv's
#                  confluent-kafka wheel (the same librdkafka the Python peer runs),
#                  compiled with Debian's librdkafka-dev headers (installed here with
#                  apt-get when missing and we are root). Its C API is stable across
#                  versions, so the older headers serve the newer library.
#   franz_peer     Go on franz-go, the version go.sum pins (Go modules).
#   confluent_peer, krafka_peer
#                  Rust, the separate cargo project bench/peers/rust (not a member of
#                  the main workspace). Its target dir is in the shared cache
#                  (${CAFE_CACHE:-$HOME/.cache/cafe}/bench-peers/rust-target), like
#                  the jars, the peers venv and Go's build cache: the cold build
#                  (confluent-kafka and krafka, minutes) is paid once per machine, and
#                  another clone rebuilds only the two small drivers. Cargo locks the
#                  directory, so clones building at once wait for each other.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$REPO/bench/peers"
OUT="$REPO/.run/bench/peers"
PY="${1:?usage: build.sh PY}"
mkdir -p "$OUT"
say() { echo "peers/build.sh: $*" >&2; }

# ok NAME... / skip NAME... REASON: record the outcome the harness reads.
ok() { for n in "$@"; do rm -f "$OUT/$n.skip"; done; }
skip() {
    local reason="${*: -1}"
    for n in "${@:1:$#-1}"; do
        rm -f "$OUT/$n"
        echo "$reason" >"$OUT/$n.skip"
        say "SKIPPING $n: $reason"
    done
}
# fresh NAME STAMP: true when NAME exists and was built from the same inputs.
fresh() { [[ -x "$OUT/$1" && -f "$OUT/$1.stamp" && "$(cat "$OUT/$1.stamp")" == "$2" ]]; }

build_c() {
    local lib stamp
    lib="$("$PY" -c 'import confluent_kafka, glob, os
d = os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir, "confluent_kafka.libs")
print(os.path.realpath((glob.glob(os.path.join(d, "librdkafka*.so*")) or [""])[0]))' 2>/dev/null)"
    if [[ -z "$lib" || ! -f "$lib" ]]; then
        skip rdkafka_peer "no librdkafka shared library in the peers venv's confluent-kafka wheel"
        return
    fi
    command -v cc >/dev/null || { skip rdkafka_peer "no C compiler (cc)"; return; }
    if [[ ! -f /usr/include/librdkafka/rdkafka.h ]]; then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
            say "installing Debian's librdkafka-dev for the C driver's headers"
            apt-get install -y -qq librdkafka-dev >"$OUT/rdkafka_peer.log" 2>&1 ||
                { apt-get update -qq && apt-get install -y -qq librdkafka-dev; } >>"$OUT/rdkafka_peer.log" 2>&1
        fi
        [[ -f /usr/include/librdkafka/rdkafka.h ]] ||
            { skip rdkafka_peer "no librdkafka headers (apt-get install librdkafka-dev failed or needs root)"; return; }
    fi
    stamp="$(cat "$SRC/c/rdkafka_peer.c" /usr/include/librdkafka/rdkafka.h | sha256sum | cut -c1-16) $lib"
    fresh rdkafka_peer "$stamp" && { ok rdkafka_peer; return; }
    say "building rdkafka_peer (C) against $lib"
    # The full path links the wheel's library by its soname; the rpath finds it at run time.
    if cc -O2 -Wall -o "$OUT/rdkafka_peer" "$SRC/c/rdkafka_peer.c" "$lib" -Wl,-rpath,"$(dirname "$lib")" \
        >"$OUT/rdkafka_peer.log" 2>&1; then
        echo "$stamp" >"$OUT/rdkafka_peer.stamp"
        ok rdkafka_peer
    else
        skip rdkafka_peer "the C driver did not compile (see $OUT/rdkafka_peer.log)"
    fi
}

build_go() {
    local stamp
    command -v go >/dev/null || { skip franz_peer "no Go toolchain (go)"; return; }
    stamp="$(cat "$SRC"/go/go.mod "$SRC"/go/go.sum "$SRC"/go/*.go | sha256sum | cut -c1-16) $(go version)"
    fresh franz_peer "$stamp" && { ok franz_peer; return; }
    say "building franz_peer (Go, franz-go $(sed -n 's:.*twmb/franz-go \(v[^ ]*\)$:\1:p' "$SRC/go/go.mod"))"
    if (cd "$SRC/go" && go build -mod=readonly -trimpath -o "$OUT/franz_peer" .) >"$OUT/franz_peer.log" 2>&1; then
        echo "$stamp" >"$OUT/franz_peer.stamp"
        ok franz_peer
    else
        skip franz_peer "the Go driver did not build (see $OUT/franz_peer.log)"
    fi
}

build_rust() {
    local bins=(confluent_peer krafka_peer) b
    command -v cargo >/dev/null || { skip "${bins[@]}" "no cargo"; return; }
    local target="${CAFE_CACHE:-$HOME/.cache/cafe}/bench-peers/rust-target"
    say "building the Rust peers (cargo, target $target; quick when built before on this machine)"
    # Its own target dir: never the main workspace's, whatever CARGO_TARGET_DIR says.
    if (cd "$SRC/rust" && CARGO_TARGET_DIR="$target" cargo build --release --locked --quiet) \
        >"$OUT/rust.log" 2>&1; then
        for b in "${bins[@]}"; do
            cp "$target/release/$b" "$OUT/$b"
        done
        ok "${bins[@]}"
    else
        skip "${bins[@]}" "the Rust peers did not build (see $OUT/rust.log)"
    fi
}

build_c
build_go
build_rust
exit 0
