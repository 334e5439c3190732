#!/usr/bin/env bash
# Create (or reuse) the Python virtualenv with the peer Kafka clients
# (confluent-kafka, kafka-python) and pytest, then print its python path.
#
#   scripts/py-peers.sh            -> prints e.g. /root/.cache/cafe/venv/bin/python
#   PY="$(scripts/py-peers.sh)"; "$PY" -m pytest tests/peers
#
# The venv lives in the shared cache (${CAFE_CACHE:-$HOME/.cache/cafe}/venv) so
# every clone and every CI run reuses it. pip only runs when the pins in
# scripts/requirements-peers.txt (or the interpreter) changed: a marker file holds
# a hash of both, so a second run is instant and needs no network.
#
# Environment:
#   CAFE_CACHE    cache root (default $HOME/.cache/cafe)
#   CAFE_PYTHON   interpreter to build the venv from (default python3, needs >= 3.9)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$REPO/scripts/requirements-peers.txt"
CACHE="${CAFE_CACHE:-$HOME/.cache/cafe}"
VENV="$CACHE/venv"
PYTHON="${CAFE_PYTHON:-python3}"
MARKER="$VENV/.cafe-peers.sha256"

say() { echo "py-peers.sh: $*" >&2; }
die() { echo "py-peers.sh: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (install python3 and python3-venv)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    die "$PYTHON is older than 3.9"

# The wanted state: the pins plus the exact interpreter version (a venv built
# from another Python must be rebuilt, not patched).
want="$( { cat "$REQS"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [[ -x "$VENV/bin/python" && -f "$MARKER" && "$(cat "$MARKER")" == "$want" ]]; then
    echo "$VENV/bin/python"
    exit 0
fi

# A venv from another interpreter (or a half-built one) is cheaper to recreate
# than to repair.
if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$VENV"
fi
if [[ -x "$VENV/bin/python" ]] && [[ "$("$VENV/bin/python" -c 'import sys; print(sys.version)')" != "$("$PYTHON" -c 'import sys; print(sys.version)')" ]]; then
    say "interpreter changed, recreating $VENV"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating venv $VENV from $("$PYTHON" -V 2>&1)"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$VENV" || die "python -m venv failed (on Debian: apt-get install -y python3-venv)"
fi

say "installing peers from $REQS"
# pip's chatter goes to stderr: stdout carries only the python path for callers.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS" >&2
# Prove the packages import (confluent-kafka's wheel bundles librdkafka; a
# platform without a wheel would have tried and failed to compile it).
"$VENV/bin/python" - >&2 <<'PY'
import confluent_kafka, kafka, pytest, jsonschema
from confluent_kafka.schema_registry.json_schema import JSONSerializer  # noqa: F401
print("py-peers.sh: confluent-kafka %s (librdkafka %s), kafka-python %s, pytest %s"
      % (confluent_kafka.__version__, confluent_kafka.libversion()[0], kafka.__version__, pytest.__version__))
PY
echo "$want" >"$MARKER"
echo "$VENV/bin/python"
