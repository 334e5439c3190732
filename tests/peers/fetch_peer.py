#!/usr/bin/env python3
"""confluent-kafka (librdkafka) peer for cafe's fetch-path tests (tests/fetch.rs).
Every subcommand prints one JSON line per record on stdout and exits non-zero
(with the reason on stderr) when something was not delivered or not read.

    fetch_peer.py events --bootstrap B --topic T --count N
                  [--compression none|gzip|snappy|lz4|zstd] [--linger-ms 100]
                  [--partitions 1,2] [--flush-each | --flush-every K]
                  [--timestamp-base MS]
        N cafe events (valid per schemas/cafe-event.schema.json), key =
        customer_name. With --partitions, records go round-robin to those
        partitions (once the metadata lists them). --flush-each waits for each
        delivery before the next send (one record per batch), --flush-every K
        after every K records; otherwise all N are queued, then flushed (with a
        linger longer than that, batches hold all that was queued: flush()
        sends at once). --timestamp-base gives record i the timestamp MS + i
        (else the producer's clock). Prints {"topic", "partition", "offset",
        "key", "value"} per delivered record (value: the JSON text sent).

    fetch_peer.py records --bootstrap B --topic T --spec JSON
        The records of JSON, a list of {"key": HEX|null, "value": HEX|null,
        "headers": [[NAME, HEX|null], ...], "partition": P (optional)}, sent in
        order, each flushed before the next. Prints {"partition", "offset"} per
        record, in the order of the spec.

    fetch_peer.py txn --bootstrap B --topic T --txn-id ID [--partition 0]
        A transactional producer: commits 5 records ("committed-1-0".."-4"),
        aborts 5 ("aborted-0".."-4"), commits 5 more ("committed-2-0".."-4"),
        all to one partition, null keys. Prints {"partition", "offset", "value",
        "outcome": "committed"|"aborted"} per record.

    fetch_peer.py txn-interleaved --bootstrap B --topic T --txn-id ID
        Two transactional producers (ID-a, ID-b) and a plain one write to
        partition 0 interleaved: a and b each open a transaction and alternate
        records ("a-0", "b-0", "a-1", ...; 4 each, each flushed before the next),
        a plain (idempotent, not transactional) record "plain-0" lands in
        between; then a aborts and b commits; then a commits 2 more ("a2-0",
        "a2-1"). Prints {"partition", "offset",
        "value", "outcome": "committed"|"aborted"} per record.

    fetch_peer.py txn-open --bootstrap B --topic T --txn-id ID --count N
                  --commit-when PATH [--timeout 90]
        Begins a transaction, writes N records ("open-0".."open-N-1") to
        partition 0 and prints {"produced": [offsets]} (flushed), then keeps the
        transaction open until PATH exists, commits it and prints
        {"committed": true}. Exits 1 if PATH does not appear within --timeout.

    fetch_peer.py ready --bootstrap B --topic T --partitions N [--timeout 60]
        Waits until the leader of every one of the N partitions answers
        ListOffsets without an error (just after a topic with many partitions
        is created, the metadata names leaders that do not serve yet: they
        answer NOT_LEADER_OR_FOLLOWER). Prints {"ready": N, "seconds": S}.

    fetch_peer.py read --bootstrap B --topic T [--isolation read_committed]
                  [--timeout 30]
        Reads every partition from the beginning to its end (the end in that
        isolation level: reading stops at each partition's EOF), without a
        group. Prints {"topic", "partition", "offset", "key", "value",
        "key_hex", "value_hex", "headers": [[NAME, HEX|null], ...]} (key/value
        as UTF-8 text with replacement, null when absent).
"""

import argparse
import json
import random
import sys
import time
import uuid
from datetime import datetime, timezone

CUSTOMERS = ["Aisha Khan", "Ben Carter", "Carlos Mendes", "Dana Levi", "Emma Novak", "Farid Haddad"]
MENU = [("Flat White", 420), ("Espresso", 250), ("Cappuccino", 390), ("Chai Latte", 410), ("Mocha", 450)]


def text(b):
    return None if b is None else b.decode("utf-8", errors="replace")


def hexs(b):
    return None if b is None else b.hex()


def unhex(s):
    return None if s is None else bytes.fromhex(s)


def fail(msg):
    print(msg, file=sys.stderr, flush=True)
    raise SystemExit(1)


def event():
    drink, cents = random.choice(MENU)
    qty = random.randint(1, 4)
    now = datetime.now(timezone.utc)
    return {
        "event_id": str(uuid.uuid4()),
        "customer_name": random.choice(CUSTOMERS),
        "drink_name": drink,
        "quantity": qty,
        "amount": cents * qty / 100.0,
        "is_member": random.random() < 0.5,
        "ts_utc": now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000),
    }


def producer(args, **extra):
    from confluent_kafka import Producer

    conf = {
        "bootstrap.servers": args.bootstrap,
        "client.id": "cafe-peer-fetch",
        "acks": "all",
        "message.timeout.ms": 30000,
    }
    conf.update(extra)
    return Producer(conf)


def wait_partitions(client, topic, count, timeout=30.0):
    """Waits until the metadata shows `topic` with at least `count` partitions (just
    after they were added, the broker may not list them yet)."""
    deadline = time.monotonic() + timeout
    while True:
        t = client.list_topics(topic, timeout=10).topics.get(topic)
        have = 0 if t is None or t.error is not None else len(t.partitions)
        if have >= count:
            return
        if time.monotonic() > deadline:
            fail("topic %s has %d partitions after %.0f s, expected %d" % (topic, have, timeout, count))
        time.sleep(0.2)


class Reports:
    """Delivery callbacks collected in send order."""

    def __init__(self):
        self.got = {}
        self.errors = []

    def callback(self, i):
        def cb(err, msg):
            if err is not None:
                self.errors.append("record %d: %s" % (i, err))
            else:
                self.got[i] = msg
        return cb


def cmd_events(args):
    p = producer(args, **{
        "compression.type": args.compression,
        "linger.ms": args.linger_ms,
        "batch.num.messages": 10000,
    })
    parts = [int(x) for x in args.partitions.split(",")] if args.partitions else None
    if parts:
        wait_partitions(p, args.topic, max(parts) + 1)
    reports = Reports()
    sent = []
    for i in range(args.count):
        ev = event()
        value = json.dumps(ev, separators=(",", ":"))
        kw = {"key": ev["customer_name"].encode(), "value": value.encode(), "on_delivery": reports.callback(i)}
        if parts:
            kw["partition"] = parts[i % len(parts)]
        if args.timestamp_base is not None:
            kw["timestamp"] = args.timestamp_base + i
        p.produce(args.topic, **kw)
        sent.append((ev["customer_name"], value))
        every = 1 if args.flush_each else args.flush_every
        if every and (i + 1) % every == 0:
            if p.flush(30) != 0:
                fail("record %d not delivered within 30 s" % i)
    if p.flush(30) != 0:
        fail("records not delivered within 30 s")
    if reports.errors or len(reports.got) != args.count:
        fail("delivery failed: %s (%d of %d delivered)" % (reports.errors, len(reports.got), args.count))
    for i in range(args.count):
        m = reports.got[i]
        print(json.dumps({"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                          "key": sent[i][0], "value": sent[i][1]}))
    return 0


def cmd_records(args):
    spec = json.loads(args.spec)
    p = producer(args, **{"linger.ms": 0})
    wanted = [r["partition"] for r in spec if r.get("partition") is not None]
    if wanted:
        wait_partitions(p, args.topic, max(wanted) + 1)
    reports = Reports()
    for i, r in enumerate(spec):
        kw = {"key": unhex(r.get("key")), "value": unhex(r.get("value")), "on_delivery": reports.callback(i)}
        headers = r.get("headers")
        if headers:
            kw["headers"] = [(name, unhex(v)) for name, v in headers]
        if r.get("partition") is not None:
            kw["partition"] = r["partition"]
        p.produce(args.topic, **kw)
        if p.flush(30) != 0:
            fail("record %d not delivered within 30 s" % i)
    if reports.errors or len(reports.got) != len(spec):
        fail("delivery failed: %s" % reports.errors)
    for i in range(len(spec)):
        m = reports.got[i]
        print(json.dumps({"partition": m.partition(), "offset": m.offset()}))
    return 0


def txn_producer(args, txn_id, linger_ms):
    """An idempotent transactional producer with transactions initialised."""
    p = producer(args, **{"transactional.id": txn_id, "enable.idempotence": True, "linger.ms": linger_ms})
    p.init_transactions(30)
    return p


def print_txn_reports(reports, sent):
    """Fails unless every record of `sent` ((value, outcome) pairs) was delivered;
    prints one JSON line per record: partition, offset, value, outcome."""
    if reports.errors or len(reports.got) != len(sent):
        fail("delivery failed: %s" % reports.errors)
    for i, (value, outcome) in enumerate(sent):
        m = reports.got[i]
        print(json.dumps({"partition": m.partition(), "offset": m.offset(), "value": value, "outcome": outcome}))


def cmd_txn(args):
    p = txn_producer(args, args.txn_id, 5)
    reports = Reports()
    plan = [("committed-1", "committed"), ("aborted", "aborted"), ("committed-2", "committed")]
    sent = []
    for prefix, outcome in plan:
        p.begin_transaction()
        for j in range(5):
            i = len(sent)
            value = "%s-%d" % (prefix, j)
            p.produce(args.topic, value=value.encode(), partition=args.partition, on_delivery=reports.callback(i))
            sent.append((value, outcome))
        # Deliver first, so the aborted records really are in the log.
        if p.flush(30) != 0:
            fail("transaction %s: records not delivered within 30 s" % prefix)
        if outcome == "committed":
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    print_txn_reports(reports, sent)
    return 0


def cmd_txn_interleaved(args):
    pa = txn_producer(args, args.txn_id + "-a", 0)
    pb = txn_producer(args, args.txn_id + "-b", 0)
    # Idempotent: its batches carry a producer id too, but are in no transaction.
    plain = producer(args, **{"linger.ms": 0, "enable.idempotence": True})
    reports = Reports()
    sent = []

    def send(p, value, outcome):
        i = len(sent)
        p.produce(args.topic, value=value.encode(), partition=0, on_delivery=reports.callback(i))
        if p.flush(30) != 0:
            fail("%s not delivered within 30 s" % value)
        sent.append((value, outcome))

    pa.begin_transaction()
    pb.begin_transaction()
    for j in range(4):
        send(pa, "a-%d" % j, "aborted")
        send(pb, "b-%d" % j, "committed")
        if j == 1:
            send(plain, "plain-0", "committed")
    pa.abort_transaction(30)
    pb.commit_transaction(30)
    pa.begin_transaction()
    for j in range(2):
        send(pa, "a2-%d" % j, "committed")
    pa.commit_transaction(30)
    print_txn_reports(reports, sent)
    return 0


def cmd_txn_open(args):
    import os

    p = txn_producer(args, args.txn_id, 5)
    reports = Reports()
    p.begin_transaction()
    for i in range(args.count):
        p.produce(args.topic, value=("open-%d" % i).encode(), partition=0, on_delivery=reports.callback(i))
    if p.flush(30) != 0 or reports.errors or len(reports.got) != args.count:
        fail("open transaction: records not delivered: %s" % reports.errors)
    print(json.dumps({"produced": [reports.got[i].offset() for i in range(args.count)]}), flush=True)
    deadline = time.monotonic() + args.timeout
    while not os.path.exists(args.commit_when):
        if time.monotonic() > deadline:
            p.abort_transaction(30)
            fail("%s did not appear within %.0f s; transaction aborted" % (args.commit_when, args.timeout))
        time.sleep(0.1)
    p.commit_transaction(30)
    print(json.dumps({"committed": True}), flush=True)
    return 0


def cmd_ready(args):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": args.bootstrap, "client.id": "cafe-peer-fetch-ready"})
    start = time.monotonic()
    pending = set(range(args.partitions))
    last = {}
    while pending:
        if time.monotonic() - start > args.timeout:
            fail("partitions of %s not serving after %.0f s: %d, e.g. %s" % (
                args.topic, args.timeout, len(pending), sorted(last.items())[:5]))
        futures = admin.list_offsets({TopicPartition(args.topic, p): OffsetSpec.earliest() for p in pending},
                                     request_timeout=10)
        for tp, f in futures.items():
            try:
                f.result()
                pending.discard(tp.partition)
            except Exception as e:  # not ready yet: ask again
                last[tp.partition] = str(e)
        if pending:
            time.sleep(0.3)
    print(json.dumps({"ready": args.partitions, "seconds": round(time.monotonic() - start, 2)}))
    return 0


def cmd_read(args):
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        # assign(), not subscribe(): no group is joined, but librdkafka wants an id.
        "group.id": "cafe-peer-fetch-read-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": args.isolation,
        "client.id": "cafe-peer-fetch-read",
    })
    try:
        md = c.list_topics(args.topic, timeout=args.timeout)
        t = md.topics.get(args.topic)
        if t is None or t.error is not None:
            fail("topic %s: %s" % (args.topic, None if t is None else t.error))
        parts = sorted(t.partitions)
        c.assign([TopicPartition(args.topic, p, 0) for p in parts])
        pending = set(parts)
        out = []
        deadline = time.monotonic() + args.timeout
        while pending:
            if time.monotonic() > deadline:
                fail("timed out; partitions not read to the end: %s" % sorted(pending))
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(m.partition())
                    continue
                raise KafkaException(m.error())
            headers = [[k, hexs(v)] for k, v in (m.headers() or [])]
            out.append({"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                        "key": text(m.key()), "value": text(m.value()),
                        "key_hex": hexs(m.key()), "value_hex": hexs(m.value()), "headers": headers})
        out.sort(key=lambda r: (r["partition"], r["offset"]))
        for r in out:
            print(json.dumps(r))
        return 0
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    e = sub.add_parser("events")
    e.add_argument("--count", type=int, required=True)
    e.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    e.add_argument("--linger-ms", type=int, default=100)
    e.add_argument("--partitions")
    e.add_argument("--flush-each", action="store_true")
    e.add_argument("--flush-every", type=int)
    e.add_argument("--timestamp-base", type=int)

    r = sub.add_parser("records")
    r.add_argument("--spec", required=True)

    t = sub.add_parser("txn")
    t.add_argument("--txn-id", required=True)
    t.add_argument("--partition", type=int, default=0)

    ti = sub.add_parser("txn-interleaved")
    ti.add_argument("--txn-id", required=True)

    to = sub.add_parser("txn-open")
    to.add_argument("--txn-id", required=True)
    to.add_argument("--count", type=int, default=3)
    to.add_argument("--commit-when", required=True)
    to.add_argument("--timeout", type=float, default=90.0)

    rdy = sub.add_parser("ready")
    rdy.add_argument("--partitions", type=int, required=True)
    rdy.add_argument("--timeout", type=float, default=60.0)

    rd = sub.add_parser("read")
    rd.add_argument("--isolation", default="read_committed", choices=["read_committed", "read_uncommitted"])
    rd.add_argument("--timeout", type=float, default=30.0)

    for s in (e, r, t, ti, to, rdy, rd):
        s.add_argument("--bootstrap", required=True)
        s.add_argument("--topic", required=True)

    args = ap.parse_args()
    cmds = {"events": cmd_events, "records": cmd_records, "txn": cmd_txn, "txn-open": cmd_txn_open,
            "txn-interleaved": cmd_txn_interleaved,
            "ready": cmd_ready, "read": cmd_read}
    return cmds[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
