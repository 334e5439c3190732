#!/usr/bin/env bash
# The full fault suite (`make faults`): every scenario of tests/faults.rs at full
# size against the 3-node KRaft cluster (started if needed, and then stopped again;
# the shared single broker on 9092 is never touched), one scenario at a time,
# figures printed.
#
# Usage: scripts/faults.sh [test-name-filter]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# Stop the cluster on the way out if this run started it (as `make test` does);
# one that was up before stays up. (Status read into a variable, not piped into grep.)
cluster_was_up=0
status="$(scripts/kafka.sh status 2>/dev/null)" || true
while read -r node _ state; do
    [[ $node == [123] && $state == running* ]] && cluster_was_up=1
done <<<"$status"
if ((!cluster_was_up)); then
    trap 'echo "faults.sh: stopping the 3-node cluster this run started" >&2; scripts/kafka.sh down --nodes 3 >&2 || true' EXIT
fi
scripts/kafka.sh up --nodes 3
t0=$SECONDS
# Build first so the scenarios' time bounds do not include compiling.
cargo test --test faults --no-run --quiet
set +e
CAFE_FAULTS_FULL=1 cargo test --quiet --test faults -- --include-ignored --test-threads=1 --nocapture "$@" 2>&1 |
    tee .run/faults.log
rc=${PIPESTATUS[0]}
set -e
echo
echo "== fault suite figures ($((SECONDS - t0)) s) =="
grep '^.*FAULTS [0-9]' .run/faults.log | sed 's/^.*\(FAULTS [0-9]\)/\1/' || true
exit "$rc"
