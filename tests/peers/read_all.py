#!/usr/bin/env python3
"""Read every record of a topic with an independent client and print one JSON
line per record: {"partition", "offset", "key", "value"} (key/value as UTF-8
text, key null when absent).

It reads each partition from the beginning up to the high watermark it saw at
start, without a consumer group (nothing is committed), so the output is exactly
what the topic holds. With --expect N it exits 1 when the count differs.

    read_all.py --bootstrap 127.0.0.1:9092 --topic t [--expect N]
                [--client confluent|kafka-python] [--timeout 30]
                [-X key=value ...]   (librdkafka settings, confluent only:
                                      security.protocol, sasl.*, ssl.ca.location)
"""

import argparse
import json
import sys
import time


def text(b):
    return None if b is None else b.decode("utf-8", errors="replace")


def read_confluent(args):
    from confluent_kafka import Consumer, TopicPartition, KafkaException

    conf = {
        "bootstrap.servers": args.bootstrap,
        # No group is joined (assign, not subscribe), but librdkafka wants an id.
        "group.id": "cafe-read-all-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "client.id": "cafe-peer-read-all",
    }
    conf.update(kv.split("=", 1) for kv in args.X)
    c = Consumer(conf)
    try:
        md = c.list_topics(args.topic, timeout=args.timeout)
        t = md.topics.get(args.topic)
        if t is None or t.error is not None:
            raise SystemExit("topic %s: %s" % (args.topic, None if t is None else t.error))
        ends = {}
        for p in sorted(t.partitions):
            low, high = c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=args.timeout)
            ends[p] = (low, high)
        c.assign([TopicPartition(args.topic, p, low) for p, (low, _) in ends.items()])
        next_offset = {p: low for p, (low, _) in ends.items()}
        out = []
        deadline = time.monotonic() + args.timeout
        while any(next_offset[p] < ends[p][1] for p in ends):
            if time.monotonic() > deadline:
                raise SystemExit("timed out: read up to %s, ends %s" % (next_offset, ends))
            m = c.poll(0.5)
            # Transaction markers (and, read_committed, aborted records) are never
            # handed out; the position moves past them.
            for tp in c.position([TopicPartition(args.topic, p) for p in ends]):
                if tp.offset >= 0:
                    next_offset[tp.partition] = max(next_offset[tp.partition], tp.offset)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            p, o = m.partition(), m.offset()
            if o >= ends[p][1]:
                continue  # written after we started; not ours to report
            out.append({"partition": p, "offset": o, "key": text(m.key()), "value": text(m.value())})
            next_offset[p] = o + 1
        return out
    finally:
        c.close()


def read_kafka_python(args):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="cafe-peer-read-all",
        consumer_timeout_ms=int(args.timeout * 1000),
    )
    try:
        parts = c.partitions_for_topic(args.topic)
        deadline = time.monotonic() + args.timeout
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = c.partitions_for_topic(args.topic)
        if not parts:
            raise SystemExit("topic %s not found" % args.topic)
        tps = [TopicPartition(args.topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out = []
        remaining = {tp for tp in tps if c.position(tp) < ends[tp]}
        while remaining:
            if time.monotonic() > deadline:
                raise SystemExit("timed out; partitions not read to the end: %s" % remaining)
            batch = c.poll(timeout_ms=500)
            for tp, msgs in batch.items():
                for m in msgs:
                    if m.offset < ends[tp]:
                        out.append({"partition": m.partition, "offset": m.offset,
                                    "key": text(m.key), "value": text(m.value)})
                if c.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expect", type=int)
    ap.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("-X", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    read = read_confluent if args.client == "confluent" else read_kafka_python
    records = read(args)
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    for r in records:
        print(json.dumps(r))
    if args.expect is not None and len(records) != args.expect:
        print("expected %d records in %s, read %d" % (args.expect, args.topic, len(records)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
