#!/usr/bin/env python3
"""Join a consumer group with confluent-kafka (librdkafka) and print one JSON line
per record on stdout: {"partition", "offset", "key", "value"} (key/value as UTF-8
text, key null when absent). Assignment changes go to stderr as JSON lines
{"assigned": [partitions]} / {"revoked": [partitions]}, flushed at once so a test
can wait for them.

Exits (closing the consumer: final commit, LeaveGroup) once it has been assigned
and no record arrived for --idle seconds, on SIGTERM or SIGINT, or after
--timeout seconds in all. A signal only sets a flag the loop checks between
records, so a record handed out by poll is always printed before the close
commits past it.

    group_consume.py --bootstrap 127.0.0.1:9092 --topic t --group g
                     [--strategy range] [--idle 6] [--timeout 120]
                     [--session-timeout-ms 6000] [--heartbeat-interval-ms 1000]
                     [--group-protocol classic|consumer]

With --group-protocol consumer (KIP-848) the broker assigns and sets the
timings, so the strategy and timing options are not sent.
"""

import argparse
import json
import signal
import sys
import time


def text(b):
    return None if b is None else b.decode("utf-8", errors="replace")


def note(obj):
    print(json.dumps(obj), file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--strategy", default="range")
    ap.add_argument("--idle", type=float, default=6.0)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--heartbeat-interval-ms", type=int, default=1000)
    ap.add_argument("--group-protocol", default="classic", choices=["classic", "consumer"])
    args = ap.parse_args()

    from confluent_kafka import Consumer, KafkaException

    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": "cafe-peer-group-consume",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "enable.partition.eof": False,
    }
    if args.group_protocol == "consumer":
        # librdkafka refuses the classic-only settings with the consumer protocol.
        config["group.protocol"] = "consumer"
    else:
        config.update({
            "partition.assignment.strategy": args.strategy,
            "session.timeout.ms": args.session_timeout_ms,
            "heartbeat.interval.ms": args.heartbeat_interval_ms,
        })
    c = Consumer(config)

    state = {"assigned": False, "last": time.monotonic(), "stop": False}

    def stop(signum, frame):
        state["stop"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def on_assign(consumer, partitions):
        state["assigned"] = True
        state["last"] = time.monotonic()
        note({"assigned": sorted(p.partition for p in partitions)})

    def on_revoke(consumer, partitions):
        note({"revoked": sorted(p.partition for p in partitions)})

    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    start = time.monotonic()
    count = 0
    try:
        while True:
            now = time.monotonic()
            if now - start > args.timeout:
                note({"error": "timed out after %.0f s" % args.timeout})
                return 1
            if state["stop"] or (state["assigned"] and now - state["last"] > args.idle):
                break
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            state["last"] = time.monotonic()
            count += 1
            print(json.dumps({"partition": m.partition(), "offset": m.offset(),
                              "key": text(m.key()), "value": text(m.value())}), flush=True)
    finally:
        c.close()
    note({"consumed": count})
    return 0


if __name__ == "__main__":
    sys.exit(main())
