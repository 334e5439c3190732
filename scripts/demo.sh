#!/usr/bin/env bash
# The seed's pipeline end to end: recreate the topic, start the consumer first,
# run the producer, and show that the consumer printed exactly the new events.
# Usage: scripts/demo.sh CAFE_BINARY [TOPIC] [GROUP] [N]
set -euo pipefail
cafe=${1:?path to the cafe binary}
topic=${2:-demo}
group=${3:-cafe-group-clean}
n=${4:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== recreate topic $topic"
"$cafe" topic recreate "$topic" --partitions 3 --replication-factor 1

echo "== start the consumer (group $group)"
# --max-messages ends it once the N events are in; --idle-exit bounds the wait.
CAFE_LOG=info "$cafe" consume -t "$topic" -g "$group" --max-messages "$n" --idle-exit 30s \
    >"$out/events" 2>"$out/consumer.log" &
consumer=$!
# Produce only once the consumer owns the partitions, so it sees the events live.
for _ in $(seq 1 100); do
    grep -q 'assigned' "$out/consumer.log" && break
    sleep 0.1
done

echo "== produce $n events"
"$cafe" produce -t "$topic" -n "$n" | tee "$out/reports"

wait "$consumer"
echo "== the consumer printed"
cat "$out/events"
printed=$(wc -l <"$out/events")
delivered=$(grep -c '^delivered ' "$out/reports" || true)
echo "== $delivered delivered, $printed consumed"
[[ "$printed" -eq "$n" && "$delivered" -eq "$n" ]] || { echo "demo: expected $n and $n" >&2; cat "$out/consumer.log" >&2; exit 1; }
