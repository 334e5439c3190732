#!/usr/bin/env python3
"""confluent-kafka's Schema Registry JSON serializer and deserializer as a peer
for cafe's registry tests (tests/registry.rs). One JSON line per record on
stdout; exit 1 (with the reason on stderr) when something does not decode.

    registry_peer.py decode  --bootstrap B --topic T --registry URL --expect N
        Read the topic from the start (no group) and decode every value with
        JSONDeserializer, which looks the schema up by the id in each value.
        Prints {"partition", "offset", "schema_id", "value"} per record.
    registry_peer.py produce --bootstrap B --topic T --registry URL --count N --schema FILE
        Produce N cafe events with JSONSerializer (schema FILE registered under
        T-value) to partition 0; prints each event as sent.
    registry_peer.py send-raw --bootstrap B --topic T HEX...
        Produce each HEX string's bytes as one value to partition 0 (for framed
        values with an unknown id, or that break the schema).
"""

import argparse
import json
import random
import sys
import time
import uuid
from datetime import datetime, timezone

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def producer(bootstrap):
    return Producer({"bootstrap.servers": bootstrap, "client.id": "cafe-peer-registry", "acks": "all"})


def flush(p):
    left = p.flush(30)
    if left:
        raise SystemExit("%d records not delivered" % left)


def cmd_produce(args):
    client = SchemaRegistryClient({"url": args.registry})
    with open(args.schema, encoding="utf-8") as f:
        schema = f.read()
    ser = JSONSerializer(schema, client)
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    p = producer(args.bootstrap)
    errors = []
    rnd = random.Random(args.seed)
    for i in range(args.count):
        quantity = rnd.randint(1, 4)
        event = {
            "event_id": str(uuid.uuid4()),
            "customer_name": ["Zoë Python", "Ravi Peer", "Ana Serializer"][i % 3],
            "drink_name": ["Matcha Latte", "Espresso", "Chai"][i % 3],
            "quantity": quantity,
            "amount": round(quantity * 3.85, 2),
            "is_member": i % 2 == 0,
            "ts_utc": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        value = ser(event, ctx)
        p.produce(args.topic, value=value, key=event["customer_name"].encode(), partition=0,
                  on_delivery=lambda err, msg: err and errors.append(str(err)))
        print(json.dumps(event, ensure_ascii=False), flush=True)
    flush(p)
    if errors:
        raise SystemExit("delivery failed: %s" % errors)


def cmd_send_raw(args):
    p = producer(args.bootstrap)
    for h in args.hex:
        p.produce(args.topic, value=bytes.fromhex(h), partition=0)
    flush(p)


def cmd_decode(args):
    client = SchemaRegistryClient({"url": args.registry})
    de = JSONDeserializer(None, schema_registry_client=client)
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "cafe-peer-registry-unused",
                  "enable.auto.commit": False, "client.id": "cafe-peer-registry"})
    try:
        md = c.list_topics(args.topic, timeout=30)
        t = md.topics.get(args.topic)
        if t is None or t.error is not None:
            raise SystemExit("topic %s: %s" % (args.topic, None if t is None else t.error))
        ends = {p: c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=30) for p in t.partitions}
        c.assign([TopicPartition(args.topic, p, low) for p, (low, _) in ends.items()])
        nxt = {p: low for p, (low, _) in ends.items()}
        seen = 0
        deadline = time.monotonic() + 60
        while any(nxt[p] < ends[p][1] for p in ends):
            if time.monotonic() > deadline:
                raise SystemExit("timed out at %s, ends %s" % (nxt, ends))
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                raise SystemExit("consume error: %s" % m.error())
            raw = m.value()
            value = de(raw, ctx)  # raises on an unknown id or a value the schema refuses
            print(json.dumps({"partition": m.partition(), "offset": m.offset(),
                              "schema_id": int.from_bytes(raw[1:5], "big"), "value": value},
                             ensure_ascii=False), flush=True)
            nxt[m.partition()] = m.offset() + 1
            seen += 1
        if args.expect is not None and seen != args.expect:
            raise SystemExit("decoded %d records, expected %d" % (seen, args.expect))
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("decode", "produce", "send-raw"):
        s = sub.add_parser(name)
        s.add_argument("--bootstrap", required=True)
        s.add_argument("--topic", required=True)
        if name != "send-raw":
            s.add_argument("--registry", required=True)
    sub.choices["decode"].add_argument("--expect", type=int)
    sub.choices["produce"].add_argument("--count", type=int, default=3)
    sub.choices["produce"].add_argument("--schema", required=True)
    sub.choices["produce"].add_argument("--seed", type=int, default=1)
    sub.choices["send-raw"].add_argument("hex", nargs="+")
    args = ap.parse_args()
    {"decode": cmd_decode, "produce": cmd_produce, "send-raw": cmd_send_raw}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
