"""librdkafka (through confluent-kafka) as a benchmark peer: the same workloads as
`cafe bench produce|consume`, reporting the same figures as one JSON object.

    python peer_librdkafka.py produce  --topic T -n 1000000 --record-size 100
    python peer_librdkafka.py produce  --topic T -n 1000000 --events pool.tsv
    python peer_librdkafka.py consume  --topic T -n 1000000
    python peer_librdkafka.py member   --topic T --group G   (rebalance timing)

Python stays off the hot path as far as the binding allows: records come from a
pre-built pool, only one record in --sample-every gets a delivery callback (its
send->ack latency), and the rest are checked by the harness through the topic's
end offsets. CPU is reported twice: the whole process while the workload ran
(includes the Python loop calling produce()), and only librdkafka's own threads
(rdk:*), a lower bound for the C library's share.
"""

import argparse
import functools
import json
import os
import resource
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer

USER_HZ = os.sysconf("SC_CLK_TCK")


def cpu_of_threads(prefix=None):
    """user+sys seconds of this process's threads (those whose name starts with prefix)."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            if prefix and not name.startswith(prefix):
                continue
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue  # the thread ended meanwhile
    return total / USER_HZ


def process_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def report(mode, topic, records, nbytes, elapsed, cpu, cpu_rdk, **extra):
    out = {
        "client": "librdkafka",
        "mode": mode,
        "topic": topic,
        "records": records,
        "bytes": nbytes,
        "elapsed_s": elapsed,
        "records_per_s": records / elapsed,
        "mib_per_s": nbytes / elapsed / 1048576,
        "cpu_s": cpu,
        "cpu_s_per_1m": cpu * 1e6 / records if records else None,
        "cpu_rdk_threads_s": cpu_rdk,
        "peak_rss_mib": peak_rss_mib(),
    }
    out.update(extra)
    print(json.dumps(out), flush=True)


def extra_conf(args):
    return dict(kv.split("=", 1) for kv in args.extra)


def percentile_ms(sorted_s, q):
    if not sorted_s:
        return None
    return sorted_s[round((len(sorted_s) - 1) * q)] * 1000


def produce(args):
    if args.events:
        with open(args.events, "rb") as f:
            pool = [tuple(line.rstrip(b"\n").split(b"\t", 1)) for line in f if line.strip()]
    else:
        value = bytes(65 + i % 26 for i in range(args.record_size))
        pool = [(None, value)]
    conf = {
        "bootstrap.servers": args.bootstrap,
        "client.id": "bench-librdkafka",
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "batch.size": args.batch_size,
        "compression.type": args.compression,
        "error_cb": lambda err: print(f"librdkafka error: {err}", file=sys.stderr),
        **extra_conf(args),
    }
    p = Producer(conf)
    # Connect before the clock starts (cafe bench connects before it too); a few ms.
    p.list_topics(args.topic, timeout=10)

    latencies = []
    failed = [0]

    def sampled(sent, err, _msg):
        if err is not None:
            failed[0] += 1
        latencies.append(time.perf_counter() - sent)

    topic, n, every = args.topic, args.num_records, args.sample_every
    produce_ = p.produce
    poll = p.poll
    perf = time.perf_counter
    plen = len(pool)
    cpu0 = process_cpu()
    start = perf()
    rate = args.throughput
    for i in range(n):
        if rate > 0:
            # Like the Java tool's throttler: sleep when more than 1 ms ahead of schedule.
            # poll() returns as soon as it served a delivery report, so poll until due
            # (checking only every 64 records let 1k/s run at 8k/s in bursts).
            ahead = start + i / rate - perf()
            while ahead > 0.001:
                poll(ahead)
                ahead = start + i / rate - perf()
        key, value = pool[i % plen]
        cb = functools.partial(sampled, perf()) if i % every == 0 else None
        while True:
            try:
                produce_(topic, value, key, on_delivery=cb)
                break
            except BufferError:
                poll(0.001)  # queue full: let deliveries drain
        if i & 4095 == 0:
            poll(0)
    remaining = p.flush(120)
    elapsed = perf() - start
    cpu = process_cpu() - cpu0
    cpu_rdk = cpu_of_threads("rdk:")
    sizes = [(len(k) if k else 0) + len(v) for k, v in pool]
    nbytes = sum(sizes) * (n // plen) + sum(sizes[: n % plen])
    latencies.sort()
    report("produce", topic, n - remaining, nbytes, elapsed, cpu, cpu_rdk,
           failed=failed[0] + remaining, p50_ms=percentile_ms(latencies, 0.5),
           p99_ms=percentile_ms(latencies, 0.99),
           p999_ms=percentile_ms(latencies, 0.999),
           max_ms=latencies[-1] * 1000 if latencies else None)
    return 0 if remaining == 0 and failed[0] == 0 else 5


def consume(args):
    cpu0 = process_cpu()
    start = time.perf_counter()
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "client.id": "bench-librdkafka",
        "group.id": args.group or f"bench-rdk-{os.getpid()}-{int(time.time() * 1000)}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "partition.assignment.strategy": "range",
        **extra_conf(args),
    })
    c.subscribe([args.topic])
    n, count, nbytes, first = args.num_records, 0, 0, None
    idle_deadline = time.monotonic() + args.idle_timeout
    # The first record through poll(): consume(num_messages) would wait to fill a batch.
    while first is None:
        m = c.poll(0.01)
        if m is None:
            if time.monotonic() > idle_deadline:
                print("no record within the idle timeout", file=sys.stderr)
                return 1
            continue
        if m.error():
            raise KafkaException(m.error())
        first = time.perf_counter() - start
        count, nbytes = 1, len(m)
    while count < n:
        msgs = c.consume(num_messages=min(10000, n - count), timeout=1.0)
        if not msgs:
            if time.monotonic() > idle_deadline:
                print(f"stalled after {count} of {n} records", file=sys.stderr)
                break
            continue
        idle_deadline = time.monotonic() + args.idle_timeout
        for m in msgs:
            if m.error():
                raise KafkaException(m.error())
            nbytes += len(m)
        count += len(msgs)
    elapsed = time.perf_counter() - start
    cpu = process_cpu() - cpu0
    cpu_rdk = cpu_of_threads("rdk:")
    c.close()
    report("consume", args.topic, count, nbytes, elapsed, cpu, cpu_rdk,
           first_record_ms=first * 1000,
           fetch_records_per_s=count / max(elapsed - first, 1e-9))
    return 0 if count >= n else 1


def member(args):
    """A group member that reports every assignment change and leaves the group
    cleanly (close) on SIGTERM: the harness times rebalances from it. Text lines
    (`assigned [...]`, `revoked [...]`) by default; with --json the lines
    bench/rebalance.py reads: {"event": "assigned"|"revoked", "partitions": [...]}
    and, per poll that returned records, {"records": {"<partition>": count}}."""
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))

    def say(kind, parts):
        ps = sorted(p.partition for p in parts)
        if not args.json:
            print(f"{kind} {ps}", flush=True)
        elif ps:
            print(json.dumps({"event": kind, "partitions": ps}), flush=True)

    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": args.offset_reset,
    }
    if args.group_protocol == "consumer":
        # librdkafka refuses the classic-only settings with the consumer protocol.
        config["group.protocol"] = "consumer"
    else:
        config.update({"partition.assignment.strategy": "range",
                       "heartbeat.interval.ms": args.heartbeat_interval_ms})
    c = Consumer(config)
    c.subscribe([args.topic], on_assign=lambda _c, ps: say("assigned", ps),
                on_revoke=lambda _c, ps: say("revoked", ps), on_lost=lambda _c, ps: say("revoked", ps))
    while not stop[0]:
        msgs = c.consume(num_messages=1000, timeout=0.05)
        if args.json and msgs:
            counts = {}
            for m in msgs:
                if not m.error():
                    counts[str(m.partition())] = counts.get(str(m.partition()), 0) + 1
            if counts:
                print(json.dumps({"records": counts}), flush=True)
    c.close()  # LeaveGroup
    if not args.json:
        print("left", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["produce", "consume", "member"])
    ap.add_argument("--bootstrap", "-b", default=os.environ.get("CAFE_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--topic", "-t", required=True)
    ap.add_argument("--num-records", "-n", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--events", help="key<TAB>json lines (cafe bench events)")
    ap.add_argument("--acks", default="1")
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16384)
    ap.add_argument("--compression", default="none")
    ap.add_argument("--sample-every", type=int, default=8)
    ap.add_argument("--throughput", type=float, default=0, help="records/s cap (0: none)")
    ap.add_argument("--group", "-g")
    ap.add_argument("--heartbeat-interval-ms", type=int, default=3000)
    ap.add_argument("--group-protocol", choices=["classic", "consumer"], default="classic")
    ap.add_argument("--offset-reset", default="earliest", help="member: auto.offset.reset")
    ap.add_argument("--json", action="store_true", help="member: JSON lines with per-poll record counts")
    ap.add_argument("--idle-timeout", type=float, default=30)
    ap.add_argument("-X", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="extra librdkafka setting (repeatable)")
    args = ap.parse_args()
    return {"produce": produce, "consume": consume, "member": member}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
