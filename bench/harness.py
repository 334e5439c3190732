"""The `make bench` driver: runs every workload for cafe, the Java perf tools and
librdkafka back to back on one broker, repeats, and writes one table.

Each produce run gets a fresh topic (3 partitions), checked afterwards through its
end offsets, then deleted so the disk stays small. CPU seconds and peak RSS come
from /usr/bin/time around the whole client process, the same way for every
client; the clients' own reports give rates and latencies. See BENCHMARKS.md.

Run it through bench/bench.sh (make bench), which builds cafe, starts the broker
and passes --bootstrap.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone

from confluent_kafka import Consumer, TopicPartition

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Native peers (bench/peers/, built and cached by bench/peers/build.sh in .run/bench/peers/):
# client name -> executable. They take the same flags and print the same JSON line.
NATIVE = {"librdkafka-c": "rdkafka_peer", "franz-go": "franz_peer",
          "confluent-rust": "confluent_peer", "krafka": "krafka_peer"}
CLIENTS = ["cafe", "java", "librdkafka", "librdkafka-best"] + list(NATIVE)
# librdkafka-best: a reference row outside the same-settings rule, with the
# settings that make librdkafka fastest here: its own default batch.size
# (1,000,000; it sends one partition per Produce request, so 16 KB batches cost
# it more than the others) and fetch.queue.backoff.ms=10 (the 1 s default
# stalls fetching whenever its local queue is full).
RDK_BEST_PRODUCE = ["--batch-size", "1000000"]
RDK_BEST_CONSUME = ["-X", "fetch.queue.backoff.ms=10"]
# name, records, record size (None: keyed cafe events), description, records/s cap (0: none)
PRODUCE_WORKLOADS = [
    ("produce-100B", 1_000_000, 100, "1M x 100 B, acks=1", 0),
    ("produce-1KB", 200_000, 1024, "200k x 1 KB, acks=1", 0),
    ("produce-events", 1_000_000, None, "1M keyed cafe events (JSON), acks=1", 0),
    # Latency at full speed mostly measures how deep each client lets its queue
    # grow; at a fixed, easy rate it measures batching and round trips. Each runs
    # a few seconds: long enough for thousands of samples, short enough for 5 rounds.
    ("latency-1k/s", 4_000, 100, "4k x 100 B offered at 1k records/s, acks=1", 1_000),
    ("latency-50k/s", 150_000, 100, "150k x 100 B offered at 50k records/s, acks=1", 50_000),
    ("latency-200k/s", 400_000, 100, "400k x 100 B offered at 200k records/s, acks=1", 200_000),
]
# Latency with no lingering at all (issue #14: p50 within 1 ms of the best peer's),
# every client with linger.ms=0: run by --only latency, not in every round of all.
LATENCY_LINGER0 = ("latency-50k/s-linger0", 150_000, 100,
                   "150k x 100 B offered at 50k records/s, linger.ms=0, acks=1", 50_000)
# Records timed from hand-over to acknowledgement: one in 8 (cafe's default), every
# one at 1k/s so its p99.9 rests on 4,000 samples rather than 500.
SAMPLE_EVERY = {"latency-1k/s": 1}
CONSUME = ("consume", 1_000_000, 100, "consume 1M x 100 B from earliest, new group")
# The same records (cafe's printable A-Z filler, so they compress well) on topics
# written once with these codecs: the consume-<codec> workloads.
CONSUME_CODECS = ["zstd", "lz4"]
# With --baseline (CAFE_BENCH_BASELINE): another cafe binary, e.g. a build from before a
# change, as an extra client of the uncompressed consume workload only (a build from
# before the fetch rewrite cannot read lz4/zstd batches: it would retry forever).
BASELINE = "cafe-before"
PARTITIONS = 3
# Same producer settings for every client (Kafka names).
PRODUCER = {"acks": "1", "batch.size": "16384", "linger.ms": "5", "compression.type": "none"}

# The security rows (--only security, issue #12): produce-100B and the uncompressed
# consume again, over SASL_SSL with SCRAM-SHA-512 on a secured broker of the benchmark's
# own (scripts/kafka.sh up --secure; its super user), beside the same plaintext rows.
SASL_PRODUCE = ("sasl-produce-100B", 1_000_000, 100, "1M x 100 B, acks=1, SASL_SSL + SCRAM-SHA-512", 0)
SASL_CONSUME = "sasl-consume"
SECURE_USER, SECURE_PASSWORD, SECURE_MECHANISM = "admin", "admin-secret", "SCRAM-SHA-512"
# The exactly-once rows (--only transactions, issue #13), 100 B records as produce-100B.
IDEMPOTENT = ("idempotent-100B", 1_000_000, 100, "1M x 100 B, acks=all, idempotent, 5 in flight", 0)
TRANSACTIONAL = ("transactional-100B", 1_000_000, 100,
                 "1M x 100 B, acks=all, a transaction committed every 100 ms", 0)
TRANSACTION_MS = 100
IDEMPOTENCE = {"acks": "all", "enable.idempotence": "true", "max.in.flight.requests.per.connection": "5"}
# cafe with one batch in flight per connection: what idempotent cafe sent before issue #13.
INFLIGHT1 = "cafe-inflight1"
# Who runs these rows; everyone else in CLIENTS is listed as left out, with the reason.
EXTRA_CLIENTS = {SASL_PRODUCE[0]: ["cafe", "java", "librdkafka-c"],
                 SASL_CONSUME: ["cafe", "java", "librdkafka-c"],
                 IDEMPOTENT[0]: ["cafe", INFLIGHT1, "java", "librdkafka-c"],
                 TRANSACTIONAL[0]: ["cafe", "java", "librdkafka-c"]}
LEFT_OUT = {
    "librdkafka": "librdkafka-c measures librdkafka in these rows (the Python loop would measure Python)",
    "librdkafka-best": "a reference for the plaintext throughput rows only",
    "franz-go": "its driver (bench/peers/go) has no SASL/TLS or transaction options and turns idempotence off",
    "confluent-rust": "its driver has no SASL/TLS, idempotence or transaction options",
    "krafka": "its driver has no SASL/TLS, idempotence or transaction options",
}
# In a full run (--only all) these rows run in the first rounds only, to keep the budget.
EXTRA_ROUNDS = 3


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args):
        self.a = args
        self.cafe = os.path.join(REPO, args.target_dir, "release", "cafe")
        self.baseline = args.baseline and os.path.abspath(args.baseline)
        if self.baseline and not os.access(self.baseline, os.X_OK):
            raise SystemExit(f"--baseline {args.baseline}: not an executable")
        self.py = sys.executable
        self.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.tag = uuid.uuid4().hex[:6]
        self.tmp = tempfile.mkdtemp(prefix="cafe-bench-")
        self.logdir = os.path.join(REPO, ".run", "bench", "logs", self.stamp)
        os.makedirs(self.logdir, exist_ok=True)
        self.rows = []  # one dict per client run
        self.scale = args.scale
        self.peers, self.skipped = find_native_peers(args.peers_dir)
        for client, why in self.skipped.items():
            log(f"NOTE: {client} is left out of this run: {why}")
        self.failures = []  # (label, error) of client runs that failed; the rest go on
        self.left_out = []  # (workload, client, why) of clients a workload does not run
        self.broker_pid = read_pid(args.broker_pid_file)
        if not self.broker_pid:
            log("NOTE: no broker pid (--broker-pid-file): the broker CPU columns stay empty")
        self.secure = args.secure_bootstrap and SecureBroker(args.secure_bootstrap, args.secure_tls_dir,
                                                             read_pid(args.secure_broker_pid_file), self.tmp)
        if args.only in ("all", "security") and not self.secure:
            self.left_out.append((f"{SASL_PRODUCE[0]}, {SASL_CONSUME}", "all",
                                  "no secured broker (--secure-bootstrap)"))
        if self.secure and not self.secure.pid:
            log("NOTE: no secured broker pid (--secure-broker-pid-file): its broker CPU columns stay empty")

    # ---------------------------------------------------------------- helpers

    def n(self, records):
        return max(1000, int(records * self.scale))

    def run_timed(self, name, cmd, env=None, timeout=600, secure=False):
        """Runs cmd under /usr/bin/time; returns (stdout, figures from time, the broker's
        CPU seconds meanwhile (the secured broker's with secure), the machine's busy CPU
        seconds meanwhile, and the 1-minute load average just before)."""
        broker_pid = self.secure.pid if secure else self.broker_pid
        env = {**(env or {}), **(self.secure.env if secure else {})}
        tfile = os.path.join(self.tmp, "time.txt")
        full = ["/usr/bin/time", "-o", tfile, "-f", "%e %U %S %M"] + cmd
        errlog = open(os.path.join(self.logdir, f"{name}.stderr"), "w")
        load = os.getloadavg()[0]
        broker0, busy0 = proc_cpu_s(broker_pid), machine_busy_s()
        t0 = time.monotonic()
        p = subprocess.run(full, stdout=subprocess.PIPE, stderr=errlog, text=True, timeout=timeout,
                           env={**os.environ, **env})
        broker1, busy1 = proc_cpu_s(broker_pid), machine_busy_s()
        errlog.close()
        with open(os.path.join(self.logdir, f"{name}.stdout"), "w") as f:
            f.write(p.stdout)
        if p.returncode != 0:
            raise RuntimeError(f"{name}: exit {p.returncode}: {' '.join(cmd)} (logs in {self.logdir})")
        with open(tfile) as f:
            wall, user, sys_, rss_kb = f.read().split()[-4:]
        return p.stdout, {
            "wall_s": float(wall), "harness_wall_s": time.monotonic() - t0,
            "proc_cpu_s": float(user) + float(sys_), "peak_rss_mib": int(rss_kb) / 1024,
            "broker_cpu_s": None if broker0 is None or broker1 is None else broker1 - broker0,
            "machine_busy_s": busy1 - busy0, "load_1m": load,
        }

    def cafe_cmd(self, *args, binary=None, secure=False):
        if secure:
            return [binary or self.cafe, "-b", self.secure.bootstrap] + list(args) + self.secure.cafe_flags
        return [binary or self.cafe, "-b", self.a.bootstrap] + list(args)

    def java_cmd(self, main_class, *args):
        # The flags kafka-run-class.sh and kafka-producer-perf-test.sh use (G1, 512 MB
        # heap, C2 JIT), not scripts/kafka.sh's fast-start flags for one-shot tools.
        return ["java", "-Xmx512M", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={REPO}/kafka/log4j2-tools.properties",
                "-cp", os.path.join(self.a.kafka_libs, "*"), main_class] + list(args)

    def native_cmd(self, client, *args, secure=False):
        if secure:
            return [self.peers[client], args[0], "-b", self.secure.bootstrap] + list(args[1:]) + \
                [x for kv in self.secure.rdkafka.items() for x in ("-X", "=".join(kv))]
        return [self.peers[client], args[0], "-b", self.a.bootstrap] + list(args[1:])

    def clients_for(self, workload, clients):
        """Who runs a workload: the native drivers send only unkeyed filler (no
        produce-events), and librdkafka-best (1 MB batches) is a throughput reference.
        The security and exactly-once rows: EXTRA_CLIENTS (the rest are noted as left out).
        With --only security, the plaintext rows beside them: the same clients."""
        if workload in EXTRA_CLIENTS or self.a.only == "security":
            wanted = EXTRA_CLIENTS.get(workload, EXTRA_CLIENTS[SASL_PRODUCE[0]])
            clients = [c for c in clients if c in wanted]
        out = [c for c in clients if c not in NATIVE or c in self.peers]
        if workload == "produce-events":
            out = [c for c in out if c not in NATIVE]
        if workload.startswith("latency"):
            out = [c for c in out if c != "librdkafka-best"]
        return out

    def attempt(self, label, fn, *args):
        """One client run; a failure is logged and listed in the results, and the
        benchmark goes on (one broken peer must not cost the other rows)."""
        try:
            fn(*args)
        except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
            log(f"  FAILED {label}: {e}")
            self.failures.append((label, str(e)[:300]))

    def peer_cmd(self, *args):
        return [self.py, os.path.join(HERE, "peer_librdkafka.py"), "-b", self.a.bootstrap] + list(args)

    def create_topic(self, topic, secure=False):
        subprocess.run(self.cafe_cmd("topic", "create", topic, "--partitions", str(PARTITIONS),
                                     "--replication-factor", "1", secure=secure),
                       check=True, stdout=subprocess.DEVNULL, env=self.env(secure))

    def delete_topic(self, topic, secure=False):
        subprocess.run(self.cafe_cmd("topic", "delete", topic, secure=secure), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=self.env(secure))

    def env(self, secure):
        return {**os.environ, **(self.secure.env if secure else {})}

    def end_offsets(self, topic, secure=False):
        # (log_level 2: this probe never joins its group, and over SASL_SSL the coordinator
        # connection it opens meanwhile, cut at close mid-handshake, logs a meaningless
        # authentication error; a real failure still raises from get_watermark_offsets.)
        conf = {"bootstrap.servers": self.secure.bootstrap, **self.secure.rdkafka, "log_level": 2} if secure \
            else {"bootstrap.servers": self.a.bootstrap}
        c = Consumer({**conf, "group.id": "cafe-bench-offsets"})
        try:
            return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                       for p in range(PARTITIONS))
        finally:
            c.close()

    # ---------------------------------------------------------------- produce

    def produce_once(self, run, wl, client):
        name, records, size, _, rate = wl
        n = self.n(records)
        secure = name == SASL_PRODUCE[0]
        settings = producer_settings(name, client)
        # Every run its own transactional.id: a new producer id, no fencing between runs.
        txn = f"bench-txn-{client}-r{run}-{self.tag}" if name == TRANSACTIONAL[0] else None
        topic = f"bench-{name.replace('/', '')}-{client}-r{run}-{self.tag}"
        self.create_topic(topic, secure)
        label = f"r{run}-{name.replace('/', '')}-{client}"
        every = str(SAMPLE_EVERY.get(name, 8))
        if client in ("cafe", BASELINE, INFLIGHT1):
            binary = self.baseline if client == BASELINE else None
            cmd = self.cafe_cmd("bench", "produce", "-t", topic, "-n", str(n), "--json", "--quiet",
                                "--acks", settings["acks"], "--batch-size", settings["batch.size"],
                                "--compression", settings["compression.type"], "--sample-every", every,
                                *cafe_producer_flags(settings, txn), binary=binary, secure=secure)
            cmd += ["--cafe-events"] if size is None else ["--record-size", str(size)]
            cmd += ["--throughput", str(rate)] if rate else []
            out, t = self.run_timed(label, cmd, secure=secure)
            rep = json.loads(out.strip().splitlines()[-1])
        elif client in ("librdkafka", "librdkafka-best"):
            cmd = self.peer_cmd("produce", "-t", topic, "-n", str(n), "--acks", PRODUCER["acks"],
                                "--batch-size", PRODUCER["batch.size"], "--linger-ms", settings["linger.ms"],
                                "--compression", PRODUCER["compression.type"])
            cmd += ["--events", self.pool_tsv] if size is None else ["--record-size", str(size)]
            cmd += RDK_BEST_PRODUCE if client == "librdkafka-best" else []
            cmd += ["--throughput", str(rate)] if rate else []
            cmd += ["--sample-every", every]
            out, t = self.run_timed(label, cmd)
            rep = json.loads(out.strip().splitlines()[-1])
        elif client in NATIVE:
            cmd = self.native_cmd(client, "produce", "-t", topic, "-n", str(n), "--record-size", str(size),
                                  "--acks", settings["acks"], "--batch-size", settings["batch.size"],
                                  "--linger-ms", settings["linger.ms"],
                                  "--compression", settings["compression.type"], "--sample-every", every,
                                  *[x for k, v in settings.items() if k not in PRODUCER for x in ("-X", f"{k}={v}")],
                                  *(["--transactional-id", txn, "--transaction-ms", str(TRANSACTION_MS)]
                                    if txn else []), secure=secure)
            cmd += ["--throughput", str(rate)] if rate else []
            out, t = self.run_timed(label, cmd, secure=secure)
            rep = json.loads(out.strip().splitlines()[-1])
        else:
            props = [f"{k}={v}" for k, v in settings.items()]
            props += [f"bootstrap.servers={self.secure.bootstrap if secure else self.a.bootstrap}",
                      "client.id=bench-java"]
            payload = ["--payload-file", self.pool_values] if size is None else ["--record-size", str(size)]
            extra = ["--transactional-id", txn, "--transaction-duration-ms", str(TRANSACTION_MS)] if txn else []
            extra += ["--producer.config", self.secure.java_config] if secure else []
            cmd = self.java_cmd("org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                                "--num-records", str(n), "--throughput", str(rate or -1), *payload, *extra,
                                "--producer-props", *props)
            out, t = self.run_timed(label, cmd, secure=secure)
            rep = parse_java_produce(out)
        landed = self.end_offsets(topic, secure)
        self.delete_topic(topic, secure)
        # A committed transaction leaves one marker per partition it wrote to, and the
        # end offsets count them: at most one transaction per TRANSACTION_MS, plus the last.
        markers = PARTITIONS * (int(t["wall_s"] * 1000 / TRANSACTION_MS) + 2) if txn else 0
        if not n <= landed <= n + markers:
            raise RuntimeError(f"{label}: {landed} records on the topic, expected {n}"
                               + (f" plus at most {markers} transaction markers" if txn else ""))
        row = throughput_row(run, name, client, n, rep, t,
                             p50_ms=rep.get("p50_ms"), p99_ms=rep.get("p99_ms"), p999_ms=rep.get("p999_ms"))
        if txn:
            # Counted the same way for every client: each commit wrote a marker to each
            # partition it wrote to, which in 100 ms is all three (but maybe the last).
            row["transactions"] = (landed - n) / PARTITIONS
        self.rows.append(row)
        log(f"  {client:14} {row['records_per_s']:>10.0f} rec/s {row['mib_per_s']:7.1f} MiB/s "
            f"p50 {fmt(row['p50_ms'])} p99 {fmt(row['p99_ms'])} p99.9 {fmt(row['p999_ms'])} ms, "
            f"cpu {row['cpu_s_per_1m']:.2f} s/1M, broker {fmt(row['broker_cpu_s_per_1m'], 2)} s/1M, "
            f"rss {row['peak_rss_mib']:.0f} MiB")

    # ---------------------------------------------------------------- consume

    def consume_once(self, run, name, client):
        records = CONSUME[1]
        topic = self.consume_topics[name]
        n = self.n(records)
        group = f"bench-{name}-{client}-r{run}-{self.tag}"
        label = f"r{run}-{name}-{client}"
        secure = name == SASL_CONSUME
        if client in ("cafe", BASELINE):
            binary = self.baseline if client == BASELINE else None
            out, t = self.run_timed(label, self.cafe_cmd("bench", "consume", "-t", topic, "-n", str(n),
                                                        "-g", group, "--json", "--quiet", binary=binary,
                                                        secure=secure), secure=secure)
            rep = json.loads(out.strip().splitlines()[-1])
        elif client in ("librdkafka", "librdkafka-best"):
            extra = RDK_BEST_CONSUME if client == "librdkafka-best" else []
            out, t = self.run_timed(label, self.peer_cmd("consume", "-t", topic, "-n", str(n),
                                                        "-g", group, *extra))
            rep = json.loads(out.strip().splitlines()[-1])
        elif client in NATIVE:
            out, t = self.run_timed(label, self.native_cmd(client, "consume", "-t", topic, "-n", str(n),
                                                           "-g", group, secure=secure), secure=secure)
            rep = json.loads(out.strip().splitlines()[-1])
        else:
            extra = ["--consumer.config", self.secure.java_config] if secure else []
            out, t = self.run_timed(label, self.java_cmd(
                "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server",
                self.secure.bootstrap if secure else self.a.bootstrap,
                "--topic", topic, "--messages", str(n), "--group", group, "--timeout", "30000", *extra),
                secure=secure)
            rep = parse_java_consume(out)
        if rep["records"] < n:
            raise RuntimeError(f"{label}: consumed {rep['records']} of {n}")
        row = throughput_row(run, name, client, n, rep, t,
                             fetch_records_per_s=rep.get("fetch_records_per_s"),
                             first_record_ms=rep.get("first_record_ms"),
                             java_join_ms=rep.get("join_ms"))
        self.rows.append(row)
        log(f"  {client:14} {row['records_per_s']:>10.0f} rec/s {row['mib_per_s']:7.1f} MiB/s "
            f"first record {fmt(row['first_record_ms'])} ms, cpu {row['cpu_s_per_1m']:.2f} s/1M, "
            f"broker {fmt(row['broker_cpu_s_per_1m'], 2)} s/1M, rss {row['peak_rss_mib']:.0f} MiB")

    # ---------------------------------------------------------------- rebalance

    def member_cmd(self, client, group, heartbeat_ms):
        if client == "cafe":
            # --json: the assignment changes as {"event": ...} lines on stdout.
            return self.cafe_cmd("consume", "-t", self.rebalance_topic, "-g", group, "--json",
                                 "--heartbeat-interval-ms", str(heartbeat_ms))
        return self.peer_cmd("member", "-t", self.rebalance_topic, "-g", group,
                             "--heartbeat-interval-ms", str(heartbeat_ms))

    def rebalance_once(self, run, client, heartbeat_ms):
        """3 members, all assigned; SIGTERM one (clean leave); time until both
        others are assigned again, from their own output lines as they arrive."""
        group = f"bench-rebalance-{client}-{heartbeat_ms}-r{run}-{self.tag}"
        env = {**os.environ, "NO_COLOR": "1"}
        members = []
        for i in range(3):
            p = subprocess.Popen(self.member_cmd(client, group, heartbeat_ms), env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            stream = p.stdout
            m = {"proc": p, "events": [], "lock": threading.Lock()}
            threading.Thread(target=read_member, args=(stream, m), daemon=True).start()
            members.append(m)
        try:
            deadline = time.monotonic() + 60
            while not all(latest_assignment(m) == 1 for m in members):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rebalance {client}: group never settled at 3 x 1 partition")
                time.sleep(0.02)
            # Members learn of a rebalance from their next heartbeat, so the result
            # depends on when in the heartbeat cycle the member leaves: spread the
            # leave moments evenly over one interval across the runs.
            time.sleep(0.3 + heartbeat_ms / 1000 * (run - 0.5) / self.a.rebalance_runs)
            leaver, rest = members[0], members[1:]
            t0 = time.monotonic()
            leaver["proc"].send_signal(signal.SIGTERM)
            done = None
            deadline = t0 + 30
            while time.monotonic() < deadline:
                after = [assigned_after(m, t0) for m in rest]
                if all(a is not None for a in after) and sum(a[1] for a in after) == PARTITIONS:
                    done = max(a[0] for a in after) - t0
                    break
                time.sleep(0.005)
            if done is None:
                raise RuntimeError(f"rebalance {client}: the remaining members were not reassigned in 30 s")
            row = {"run": run, "workload": f"rebalance-hb{heartbeat_ms}", "client": client,
                   "rebalance_ms": done * 1000}
            self.rows.append(row)
            log(f"  {client:10} heartbeat {heartbeat_ms} ms: rebalanced in {done * 1000:.0f} ms")
        finally:
            for m in members:
                if m["proc"].poll() is None:
                    m["proc"].send_signal(signal.SIGTERM)
            for m in members:
                try:
                    m["proc"].wait(timeout=15)
                except subprocess.TimeoutExpired:
                    m["proc"].kill()

    def rebalance_estimate_s(self):
        # Settling 3 members plus one leave takes about 2-3 heartbeat intervals.
        return self.a.rebalance_runs * sum(2 * (3 * hb / 1000 + 2) for hb in self.a.heartbeats)

    # ---------------------------------------------------------------- main

    def prepare(self):
        self.pool_tsv = os.path.join(self.tmp, "events.tsv")
        self.pool_values = os.path.join(self.tmp, "events-values.txt")
        with open(self.pool_tsv, "w") as f:
            subprocess.run(self.cafe_cmd("bench", "events"), stdout=f, check=True)
        with open(self.pool_tsv) as src, open(self.pool_values, "w") as dst:
            for line in src:
                dst.write(line.split("\t", 1)[1])
        self.rebalance_topic = f"bench-rebalance-{self.tag}"
        self.create_topic(self.rebalance_topic)
        # consume: uncompressed; consume-zstd, consume-lz4: the same records, compressed.
        self.consume_topics = {}
        n = self.n(CONSUME[1])
        codecs = {"all": ["none"] + CONSUME_CODECS, "consume": ["none"] + CONSUME_CODECS,
                  "security": ["none"]}.get(self.a.only, [])
        topics = [(CONSUME[0] if codec == "none" else f"{CONSUME[0]}-{codec}", codec, False) for codec in codecs]
        # sasl-consume: the same records on the secured broker.
        topics += [(SASL_CONSUME, "none", True)] if "none" in codecs and self.secure else []
        for name, codec, secure in topics:
            topic = self.consume_topics[name] = f"bench-{name}-src-{self.tag}"
            self.create_topic(topic, secure)
            log(f"filling {topic} with {n} x {CONSUME[2]} B, compression {codec}, for the consume runs "
                f"(cafe, untimed)")
            subprocess.run(self.cafe_cmd("bench", "produce", "-t", topic, "-n", str(n), "--record-size",
                                         str(CONSUME[2]), "--compression", codec, "--quiet", secure=secure),
                           check=True, stdout=subprocess.DEVNULL, env=self.env(secure))
            landed = self.end_offsets(topic, secure)
            if landed != n:
                raise RuntimeError(f"filling {topic}: {landed} records on the topic, expected {n}")

    def run(self):
        t_start = time.monotonic()
        self.machine = machine_info(self)
        self.prepare()
        runs = self.a.runs
        self.runs_done = 0
        extra = self.extra_workloads()
        for wl in [w[0] for w in extra] + ([SASL_CONSUME] if SASL_CONSUME in self.consume_topics else []):
            for client in CLIENTS:
                if client not in EXTRA_CLIENTS[wl]:
                    self.left_out.append((wl, client, LEFT_OUT[client]))
        for run in range(1, runs + 1):
            # A shared 2-core machine can be slow: past 3 runs, stop adding runs that
            # would push the benchmark over its time budget (and say so in the table).
            if run > 3:
                per_run = (time.monotonic() - t_rounds) / (run - 1)
                if time.monotonic() - t_start + per_run + self.rebalance_estimate_s() > self.a.budget_s:
                    log(f"stopping after {run - 1} runs: another would exceed the {self.a.budget_s:.0f} s budget")
                    break
            elif run == 1:
                t_rounds = time.monotonic()
            # Rotate who goes first so no client always gets the coldest or warmest broker.
            producers = CLIENTS + ([BASELINE] if self.baseline else [])
            k = run % len(producers)
            order = producers[k:] + producers[:k]
            # The security and exactly-once rows: every round when asked for alone, the
            # first EXTRA_ROUNDS of a full run.
            extra_now = self.a.only != "all" or run <= EXTRA_ROUNDS
            for wl in self.plain_produce_workloads() + (extra if extra_now else []):
                log(f"run {run}/{runs} {wl[0]} ({wl[3]}, scale {self.scale})")
                clients = rotate(EXTRA_CLIENTS[wl[0]], run) if wl[0] in EXTRA_CLIENTS else order
                for client in self.clients_for(wl[0], clients):
                    self.attempt(f"r{run} {wl[0]} {client}", self.produce_once, run, wl, client)
            consumers = CLIENTS + ([BASELINE] if self.baseline else [])
            k = run % len(consumers)
            for name in self.consume_topics if self.a.only != "latency" else []:
                if name == SASL_CONSUME and not extra_now:
                    continue
                log(f"run {run}/{runs} {name}")
                for client in self.clients_for(name, consumers[k:] + consumers[:k]):
                    if client == BASELINE and name != CONSUME[0]:
                        continue
                    self.attempt(f"r{run} {name} {client}", self.consume_once, run, name, client)
            self.runs_done = run
            # The benchmark itself keeps about 2 runnable (broker + client): more is other work.
            self.machine.setdefault("load_after_each_run", []).append(round(os.getloadavg()[0], 2))
        for run in range(1, self.a.rebalance_runs + 1):
            for hb in self.a.heartbeats:
                log(f"rebalance {run}/{self.a.rebalance_runs}, heartbeat.interval.ms={hb}")
                for client in ("cafe", "librdkafka"):
                    self.rebalance_once(run, client, hb)
        for name, topic in self.consume_topics.items():
            self.delete_topic(topic, name == SASL_CONSUME)
        self.delete_topic(self.rebalance_topic)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.machine["load_end"] = os.getloadavg()
        self.machine["duration_s"] = round(time.monotonic() - t_start, 1)
        self.write()

    def plain_produce_workloads(self):
        """The plaintext produce workloads of this --only: all of them, the fixed-rate
        ones (latency), or produce-100B beside its SASL_SSL twin (security)."""
        return {"all": PRODUCE_WORKLOADS, "latency": [w for w in PRODUCE_WORKLOADS if w[4]] + [LATENCY_LINGER0],
                "security": [w for w in PRODUCE_WORKLOADS if w[0] == "produce-100B"]}.get(self.a.only, [])

    def extra_workloads(self):
        """The security (with a secured broker) and exactly-once produce workloads of this --only."""
        security = [SASL_PRODUCE] if self.secure else []
        return {"all": security + [IDEMPOTENT, TRANSACTIONAL], "security": security,
                "transactions": [IDEMPOTENT, TRANSACTIONAL]}.get(self.a.only, [])

    def write(self):
        self.machine["skipped_peers"], self.machine["failures"] = self.skipped, self.failures
        self.machine["left_out"] = self.left_out
        self.machine["native_peers"] = {r["client"]: r["peer_version"] for r in self.rows
                                        if r.get("client") in NATIVE and r.get("peer_version")}
        summary = summarize(self.rows)
        table = render(summary, self.machine, self.a, self.runs_done)
        print(table)
        out = self.a.out
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "latest.json"), "w") as f:
            json.dump({"machine": self.machine, "settings": {"producer": PRODUCER, "runs": self.runs_done,
                       "rebalance_runs": self.a.rebalance_runs, "scale": self.scale,
                       "only": self.a.only, "baseline": self.baseline,
                       "security": self.secure and {"bootstrap": self.secure.bootstrap, "protocol": "SASL_SSL",
                                                    "mechanism": SECURE_MECHANISM},
                       "transaction_ms": TRANSACTION_MS, "extra_rounds": EXTRA_ROUNDS},
                       "skipped_peers": self.skipped, "failures": self.failures,
                       "summary": summary, "runs": self.rows}, f, indent=1)
        with open(os.path.join(out, "latest.csv"), "w") as f:
            cols = ["workload", "client", "runs"] + [f"{k}_{s}" for k in METRICS for s in ("median", "min", "max")]
            f.write(",".join(cols) + "\n")
            for s in summary:
                vals = [s["workload"], s["client"], str(s["runs"])]
                for k in METRICS:
                    m = s.get(k) or {}
                    vals += [num(m.get("median")), num(m.get("min")), num(m.get("max"))]
                f.write(",".join(vals) + "\n")
        with open(os.path.join(out, "latest.txt"), "w") as f:
            f.write(table + "\n")
        with open(os.path.join(out, "latest.md"), "w") as f:
            f.write(render_markdown(summary, self.machine, self.runs_done, self.a.rebalance_runs))
        log(f"wrote {out}/latest.{{txt,md,csv,json}} (raw logs in {self.logdir}); "
            f"took {self.machine['duration_s']:.0f} s")


class SecureBroker:
    """The secured benchmark broker's SASL_SSL listener, and how each client logs in to
    it: SCRAM-SHA-512 as the super user, the broker's throwaway CA trusted (its
    certificate names 127.0.0.1, so host-name verification stays on)."""

    def __init__(self, bootstrap, tls_dir, pid, tmp):
        self.bootstrap, self.pid = bootstrap, pid
        ca = os.path.join(tls_dir or "", "ca.pem")
        if not os.path.exists(ca):
            raise SystemExit(f"--secure-tls-dir: no {ca} (scripts/kafka.sh up --secure makes it)")
        # cafe takes the password from the environment only, never as a flag.
        self.cafe_flags = ["-X", "security.protocol=SASL_SSL", "-X", f"sasl.mechanism={SECURE_MECHANISM}",
                           "-X", f"sasl.username={SECURE_USER}", "-X", f"ssl.ca.location={ca}"]
        self.env = {"CAFE_SASL_PASSWORD": SECURE_PASSWORD}
        self.rdkafka = {"security.protocol": "SASL_SSL", "sasl.mechanisms": SECURE_MECHANISM,
                        "sasl.username": SECURE_USER, "sasl.password": SECURE_PASSWORD, "ssl.ca.location": ca}
        # The Java tools: --producer.config / --consumer.config.
        self.java_config = os.path.join(tmp, "sasl-ssl.properties")
        with open(self.java_config, "w") as f:
            f.write("security.protocol=SASL_SSL\n"
                    f"sasl.mechanism={SECURE_MECHANISM}\n"
                    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f'username="{SECURE_USER}" password="{SECURE_PASSWORD}";\n'
                    f"ssl.truststore.type=PEM\nssl.truststore.location={ca}\n")


def producer_settings(workload, client):
    """The Kafka producer settings of one client run: PRODUCER, with acks=all and
    idempotence for the exactly-once rows (one batch in flight for INFLIGHT1)."""
    if workload == IDEMPOTENT[0]:
        extra = {**IDEMPOTENCE, **({"max.in.flight.requests.per.connection": "1"} if client == INFLIGHT1 else {})}
    elif workload == LATENCY_LINGER0[0]:
        extra = {"linger.ms": "0"}
    elif workload == TRANSACTIONAL[0]:
        extra = {"acks": "all", "enable.idempotence": "true"}
    else:
        extra = {}
    return {**PRODUCER, **extra}


def cafe_producer_flags(settings, transactional_id):
    """cafe bench produce's flags for the settings beyond PRODUCER's (which have flags of their own)."""
    flags = ["--enable-idempotence"] if settings.get("enable.idempotence") == "true" else []
    # Only when it is not cafe's default (PRODUCER's too): a CAFE_BENCH_BASELINE build
    # may be older than the flag.
    flags += ["--linger-ms", settings["linger.ms"]] if settings["linger.ms"] != PRODUCER["linger.ms"] else []
    flags += [x for k, v in settings.items() if k not in PRODUCER and k != "enable.idempotence"
              for x in ("-X", f"{k}={v}")]
    if transactional_id:
        flags += ["--transactional-id", transactional_id, "--transaction-ms", str(TRANSACTION_MS)]
    return flags


def rotate(clients, run):
    """The clients in the order of this round: who goes first changes every round."""
    k = run % len(clients)
    return clients[k:] + clients[:k]


METRICS = ["records_per_s", "mib_per_s", "p50_ms", "p99_ms", "p999_ms", "cpu_s_per_1m", "phase_cpu_s_per_1m",
           "rdk_threads_cpu_s_per_1m", "broker_cpu_s_per_1m", "client_cores", "broker_cores", "others_cores",
           "load_1m", "peak_rss_mib", "first_record_ms", "fetch_records_per_s", "java_join_ms", "rebalance_ms",
           "transactions"]


def read_member(stream, m):
    for line in stream:
        t = time.monotonic()
        kind, count = member_event(line)
        if kind:
            with m["lock"]:
                m["events"].append((t, kind, count))


def member_event(line):
    """(kind, partition count) of an assignment change, or (None, 0). cafe --json:
    `{"event": "assigned", "partitions": [...]}` (record lines have no "event");
    the peer: `assigned [0, 2]` / `revoked ...`."""
    if line.startswith("{"):
        try:
            v = json.loads(line)
        except ValueError:
            return None, 0
        kind = v.get("event")
        return (kind, len(v.get("partitions", []))) if kind in ("assigned", "revoked") else (None, 0)
    if re.search(r"\bassigned\b", line):
        return "assigned", len(re.findall(r"\d+", line.split("assigned", 1)[1]))
    if re.search(r"\brevok", line):
        return "revoked", 0
    return None, 0


def latest_assignment(m):
    with m["lock"]:
        if not m["events"] or m["events"][-1][1] != "assigned":
            return None
        return m["events"][-1][2]


def assigned_after(m, t0):
    with m["lock"]:
        for t, kind, count in reversed(m["events"]):
            if t < t0:
                return None
            if kind == "assigned":
                return t, count
    return None


def parse_java_produce(out):
    m = re.search(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                  r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th(?:, (\d+) ms 99.9th)?", out)
    if not m:
        raise RuntimeError(f"unexpected ProducerPerformance output: {out[-500:]}")
    return {"records": int(m[1]), "records_per_s": float(m[2]), "mib_per_s": float(m[3]),
            "p50_ms": float(m[6]), "p99_ms": float(m[8]), "p999_ms": m[9] and float(m[9])}


def parse_java_consume(out):
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    line = [l for l in out.strip().splitlines() if l and l[0].isdigit()][-1]
    f = [x.strip() for x in line.split(",")]
    return {"records": int(f[4]), "records_per_s": float(f[5]), "mib_per_s": float(f[3]),
            "join_ms": float(f[6]), "fetch_records_per_s": float(f[9])}


def consume_workloads():
    return [CONSUME[0]] + [f"{CONSUME[0]}-{codec}" for codec in CONSUME_CODECS]


def throughput_row(run, name, client, n, rep, t, **extra):
    """One produce or consume result: the shared figures, with the workload's own
    (`extra`) between the rates and the CPU/memory columns, as the CSV orders them."""
    return {
        "run": run, "workload": name, "client": client, "records": n,
        "records_per_s": rep["records_per_s"], "mib_per_s": rep["mib_per_s"],
        **extra,
        "cpu_s_per_1m": t["proc_cpu_s"] * 1e6 / n, "peak_rss_mib": t["peak_rss_mib"],
        "phase_cpu_s_per_1m": scale_1m(rep.get("cpu_s"), n),
        "rdk_threads_cpu_s_per_1m": scale_1m(rep.get("cpu_rdk_threads_s"), n),
        "broker_cpu_s_per_1m": scale_1m(t.get("broker_cpu_s"), n),
        **cores(t), "load_1m": t.get("load_1m"),
        "peer_version": rep.get("librdkafka") or rep.get("franz_go") or rep.get("version"),
        "wall_s": t["wall_s"],
    }


def cores(t):
    """CPU-seconds per wall-second of the client, the broker and everything else on
    the machine during one client run: what shows whether a row is limited by the
    client, the broker, both sharing the 2 cores, or by other people's work."""
    wall = max(t["wall_s"], 1e-3)
    broker = t.get("broker_cpu_s")
    others = None if broker is None else max(0.0, t["machine_busy_s"] - t["proc_cpu_s"] - broker)
    return {"client_cores": t["proc_cpu_s"] / wall,
            "broker_cores": None if broker is None else broker / wall,
            "others_cores": None if others is None else others / wall}


def find_native_peers(peers_dir):
    """The native drivers bench/peers/build.sh left in peers_dir: ({client: path},
    {client: why it is missing}). A missing one is named, never dropped silently."""
    found, skipped = {}, {}
    for client, exe in NATIVE.items():
        path = os.path.join(peers_dir or "", exe)
        note = path + ".skip"
        if peers_dir and os.access(path, os.X_OK):
            found[client] = path
        elif peers_dir and os.path.exists(note):
            with open(note) as f:
                skipped[client] = f.read().strip()
        else:
            skipped[client] = f"not built (no {path}; bench/peers/build.sh builds it)"
    return found, skipped


def read_pid(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        return pid if os.path.exists(f"/proc/{pid}/stat") else None
    except (OSError, ValueError, TypeError):
        return None


USER_HZ = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    """user+sys CPU seconds of a process (all its threads) from /proc/<pid>/stat."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / USER_HZ
    except (OSError, IndexError, ValueError):
        return None


def machine_busy_s():
    """CPU seconds all cores spent on anything but idle and iowait, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / USER_HZ


def scale_1m(v, n):
    return None if v is None else v * 1e6 / n


def summarize(rows):
    keys = []
    for r in rows:
        k = (r["workload"], r["client"])
        if k not in keys:
            keys.append(k)
    out = []
    for wl, client in keys:
        rs = [r for r in rows if r["workload"] == wl and r["client"] == client]
        s = {"workload": wl, "client": client, "runs": len(rs)}
        for k in METRICS:
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                s[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
        out.append(s)
    return out


def num(v):
    return "" if v is None else f"{v:.6g}"


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def med(s, k):
    return (s.get(k) or {}).get("median")


def spread(s, k):
    m = s.get(k)
    if not m or not m["median"]:
        return ""
    return f"±{(m['max'] - m['min']) / 2 / m['median'] * 100:.0f}%"


def notes(machine):
    """Lines naming every peer left out of the run and every client run that failed."""
    out = [f"NOTE: {c} left out: {why}" for c, why in machine.get("skipped_peers", {}).items()]
    # Clients a workload does not run, one line per reason.
    by_why = {}
    for wl, client, why in machine.get("left_out", []):
        by_why.setdefault((client, why), []).append(wl)
    out += [f"NOTE: {client} left out of {', '.join(wls)}: {why}" for (client, why), wls in by_why.items()]
    out += [f"NOTE: failed: {label}: {err}" for label, err in machine.get("failures", [])]
    return out + [""] if out else []


def core_split(s):
    """Client / broker / other cores busy during the client's run (medians)."""
    return "/".join(fmt(med(s, k), 2) for k in ("client_cores", "broker_cores", "others_cores"))


def limit(s):
    """A reading of the core split: what held this row back on a 2-core machine. A
    fixed-rate row is paced by its offered rate, so it is not read this way. One
    core is what a single busy thread can use; the client and broker share 2."""
    if s["workload"].startswith("latency"):
        return "offered rate (latency row)"
    c, b, o = (med(s, k) for k in ("client_cores", "broker_cores", "others_cores"))
    if c is None or b is None:
        return "n/a"
    o = o or 0
    if c + b + o >= 1.7 and o >= 0.4:
        # The 2 cores full with other people's work: client and broker got what was
        # left, and the row says as much about the machine as about the client.
        side = "client-heavy" if c >= 1.5 * b else "broker-heavy" if b >= 1.5 * c else "even"
        return f"machine full: client + broker in the {max(0.0, 2 - o):.1f} cores others left ({side})"
    if c >= 1.2 * b and c >= 0.85:
        return "client CPU"
    if b >= 1.2 * c and b >= 0.85:
        return "broker CPU"
    if c + b >= 1.3:
        return "client + broker sharing the cores"
    return "neither CPU-bound (round trips)"


def first_record(s):
    # The Java tool reports only its group join time; its first record comes later.
    if med(s, "first_record_ms") is None and med(s, "java_join_ms") is not None:
        return f">={med(s, 'java_join_ms'):.0f}"
    return fmt(med(s, "first_record_ms"), 0)


def render(summary, machine, a, runs_done):
    lines = [f"cafe benchmark {machine['date']} — {machine['cpu']} ({machine['cores']} cores), "
             f"load {machine['load_start'][0]:.2f} at start, {machine['load_end'][0]:.2f} at end; "
             f"{runs_done} runs{'' if runs_done == a.runs else f' of {a.runs} (time budget)'} "
             f"(rebalance: {a.rebalance_runs}), scale {a.scale}; medians, ± half the min–max range",
             ""]
    lines += notes(machine)
    hdr = (f"{'workload':16} {'client':15} {'rec/s':>16} {'MiB/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
           f"{'p99.9':>7} {'CPU s/1M':>9} {'(phase)':>8} {'(rdk)':>6} {'brk s/1M':>8} "
           f"{'cores c/b/o':>14} {'RSS MiB':>8} {'1st rec ms':>10}  limit")
    lines += [hdr, "-" * len(hdr)]
    for s in summary:
        if s["workload"].startswith("rebalance"):
            continue
        rate = f"{med(s, 'records_per_s'):,.0f} {spread(s, 'records_per_s'):>5}"
        lines.append(f"{s['workload']:16} {s['client']:15} {rate:>16} {fmt(med(s, 'mib_per_s')):>7} "
                     f"{fmt(med(s, 'p50_ms')):>7} {fmt(med(s, 'p99_ms')):>7} {fmt(med(s, 'p999_ms')):>7} "
                     f"{fmt(med(s, 'cpu_s_per_1m'), 2):>9} {fmt(med(s, 'phase_cpu_s_per_1m'), 2):>8} "
                     f"{fmt(med(s, 'rdk_threads_cpu_s_per_1m'), 2):>6} "
                     f"{fmt(med(s, 'broker_cpu_s_per_1m'), 2):>8} {core_split(s):>14} "
                     f"{fmt(med(s, 'peak_rss_mib'), 0):>8} {first_record(s):>10}  {limit(s)}")
    reb = [s for s in summary if s["workload"].startswith("rebalance")]
    if reb:
        lines += ["", "clean-leave rebalance, 3 -> 2 members (SIGTERM of one member -> both others assigned):"]
        for s in reb:
            m = s["rebalance_ms"]
            lines.append(f"  {s['workload']:16} {s['client']:15} median {m['median']:6.0f} ms "
                         f"(min {m['min']:.0f}, max {m['max']:.0f}, {s['runs']} runs)")
    lines += ["", "ratios (cafe / peer, medians):"]
    lines += ratios(summary)
    return "\n".join(lines)


def ratios(summary):
    by = {(s["workload"], s["client"]): s for s in summary}
    out = []

    def m(wl, client, metric):
        return med(by.get((wl, client), {}), metric)

    def r(wl, metric, peer, peer_metric=None):
        a, b = m(wl, "cafe", metric), m(wl, peer, peer_metric or metric)
        return "n/a" if a is None or not b else f"{a / b:.2f}x"

    for wl, *_, rate in PRODUCE_WORKLOADS:
        if rate:
            out.append(f"  {wl:16} p50/p99 ms: cafe {fmt(m(wl, 'cafe', 'p50_ms'))}/{fmt(m(wl, 'cafe', 'p99_ms'))}, "
                       f"java {fmt(m(wl, 'java', 'p50_ms'))}/{fmt(m(wl, 'java', 'p99_ms'))}, "
                       f"librdkafka {fmt(m(wl, 'librdkafka', 'p50_ms'))}/{fmt(m(wl, 'librdkafka', 'p99_ms'))} "
                       f"[no target; lower is better]")
            continue
        out.append(f"  {wl:16} rec/s: vs java {r(wl, 'records_per_s', 'java')}, "
                   f"vs librdkafka {r(wl, 'records_per_s', 'librdkafka')} "
                   f"(best {r(wl, 'records_per_s', 'librdkafka-best')}) [>= 1]; "
                   f"CPU/1M vs librdkafka {r(wl, 'cpu_s_per_1m', 'librdkafka')} "
                   f"(its C threads only {r(wl, 'cpu_s_per_1m', 'librdkafka', 'rdk_threads_cpu_s_per_1m')}) [<= 1]; "
                   f"RSS vs java {r(wl, 'peak_rss_mib', 'java')} [<= 0.5]")
    for wl in consume_workloads():
        out.append(f"  {wl:16} rec/s: vs java {r(wl, 'records_per_s', 'java')} [>= 1], "
                   f"vs librdkafka {r(wl, 'records_per_s', 'librdkafka')} "
                   f"(best {r(wl, 'records_per_s', 'librdkafka-best')}); "
                   f"CPU/1M vs java {r(wl, 'cpu_s_per_1m', 'java')}, "
                   f"vs librdkafka {r(wl, 'cpu_s_per_1m', 'librdkafka')}; "
                   f"RSS vs java {r(wl, 'peak_rss_mib', 'java')} [<= 0.5]")
    out += extra_ratios(by)
    wl = CONSUME[0]
    for w in [p[0] for p in PRODUCE_WORKLOADS] + [wl]:
        if (w, BASELINE) in by:
            out.append(f"  {w:16} vs {BASELINE}: rec/s {r(w, 'records_per_s', BASELINE)} [>= 1], "
                       f"CPU/1M {r(w, 'cpu_s_per_1m', BASELINE)}, RSS {r(w, 'peak_rss_mib', BASELINE)}")
    out.append(f"  {'first record':16} cafe {fmt(m(wl, 'cafe', 'first_record_ms'), 0)} ms, "
               f"librdkafka {fmt(m(wl, 'librdkafka', 'first_record_ms'), 0)} ms "
               f"(best {fmt(m(wl, 'librdkafka-best', 'first_record_ms'), 0)} ms) [< 200 ms and <= librdkafka]")
    for s in summary:
        if s["workload"].startswith("rebalance") and s["client"] == "cafe":
            wl = s["workload"]
            out.append(f"  {wl:16} cafe {fmt(m(wl, 'cafe', 'rebalance_ms'), 0)} ms, "
                       f"librdkafka {fmt(m(wl, 'librdkafka', 'rebalance_ms'), 0)} ms [< 1000 ms]")
    return out


def cross(by, wl, client, other_wl, other_client, metric):
    """client's median on wl over other_client's on other_wl, or None."""
    a, b = med(by.get((wl, client), {}), metric), med(by.get((other_wl, other_client), {}), metric)
    return None if a is None or not b else a / b


def tls_cost(by, wl, plain, client):
    """`rec/s ratio / CPU ratio` of one client, SASL_SSL row over its plaintext twin."""
    return "/".join(fmt(cross(by, wl, client, plain, client, k), 2) for k in ("records_per_s", "cpu_s_per_1m"))


def extra_ratios(by):
    """Ratio lines of the security and exactly-once rows that ran."""
    out = []

    def r(wl, metric, peer):
        v = cross(by, wl, "cafe", wl, peer, metric)
        return "n/a" if v is None else f"{v:.2f}x"

    for wl, plain in ((SASL_PRODUCE[0], "produce-100B"), (SASL_CONSUME, CONSUME[0])):
        if (wl, "cafe") in by:
            cost = ", ".join(f"{c} {tls_cost(by, wl, plain, c)}" for c in EXTRA_CLIENTS[wl])
            out.append(f"  {wl:16} rec/s: vs java {r(wl, 'records_per_s', 'java')}, vs librdkafka-c "
                       f"{r(wl, 'records_per_s', 'librdkafka-c')}; CPU/1M vs java {r(wl, 'cpu_s_per_1m', 'java')}, "
                       f"vs librdkafka-c {r(wl, 'cpu_s_per_1m', 'librdkafka-c')}; SASL_SSL / {plain} "
                       f"(rec/s / CPU-s per 1M): {cost} [no target]")
    for wl in (IDEMPOTENT[0], TRANSACTIONAL[0]):
        if (wl, "cafe") in by:
            vs1 = f"vs {INFLIGHT1} (1 in flight) {r(wl, 'records_per_s', INFLIGHT1)}, " \
                if wl == IDEMPOTENT[0] else ""
            txns = "; transactions per run: " + ", ".join(
                f"{c} {fmt(med(by.get((wl, c), {}), 'transactions'), 0)}" for c in EXTRA_CLIENTS[wl]) \
                if wl == TRANSACTIONAL[0] else ""
            out.append(f"  {wl:16} rec/s: {vs1}vs java {r(wl, 'records_per_s', 'java')}, "
                       f"vs librdkafka-c {r(wl, 'records_per_s', 'librdkafka-c')}; CPU/1M vs java "
                       f"{r(wl, 'cpu_s_per_1m', 'java')}, vs librdkafka-c {r(wl, 'cpu_s_per_1m', 'librdkafka-c')}; "
                       f"broker CPU/1M vs librdkafka-c {r(wl, 'broker_cpu_s_per_1m', 'librdkafka-c')}{txns} "
                       "[no target]")
    return out


def render_markdown(summary, machine, runs, rebalance_runs):
    """The results and the targets as Markdown tables, for BENCHMARKS.md."""
    by = {(s["workload"], s["client"]): s for s in summary}

    def m(wl, client, k):
        return med(by.get((wl, client), {}), k)

    def rng(s, k, digits=0):
        v = s.get(k)
        if not v:
            return "n/a"
        if v["min"] == v["max"]:
            return f"{v['median']:,.{digits}f}"
        return f"{v['median']:,.{digits}f} ({v['min']:,.{digits}f}–{v['max']:,.{digits}f})"

    out = [f"Run {machine['date']}, {runs} runs (rebalance {rebalance_runs} per setting); "
           f"load average {machine['load_start'][0]:.2f} at the start, {machine['load_end'][0]:.2f} at the end; "
           f"1-minute load after each run {machine.get('load_after_each_run', [])} (the benchmark alone "
           f"keeps about 2 busy on 2 cores); took {machine.get('duration_s', 0):.0f} s. "
           f"Medians, (min–max) over the runs.", ""]
    out += [f"- {line.removeprefix('NOTE: ')}" for line in notes(machine) if line]
    out += ([""] if notes(machine) else []) + ["| workload | client | records/s | MiB/s | p50 ms | p99 ms | p99.9 ms | CPU s/1M | broker CPU s/1M "
            "| cores client/broker/other | RSS MiB | 1st record ms | limit (from the cores) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in summary:
        if s["workload"].startswith("rebalance"):
            continue
        out.append(f"| {s['workload']} | {s['client']} | {rng(s, 'records_per_s')} | {fmt(med(s, 'mib_per_s'))} | "
                   f"{fmt(med(s, 'p50_ms'))} | {fmt(med(s, 'p99_ms'))} | {fmt(med(s, 'p999_ms'))} | "
                   f"{fmt(med(s, 'cpu_s_per_1m'), 2)} | {fmt(med(s, 'broker_cpu_s_per_1m'), 2)} | {core_split(s)} | "
                   f"{fmt(med(s, 'peak_rss_mib'), 0)} | {first_record(s)} | {limit(s)} |")
    out += ["", "cafe against the best peer of each row (same settings: librdkafka-best, "
            f"{BASELINE} and {INFLIGHT1} are not candidates):", "",
            "| workload | figure | cafe | best peer | ratio cafe / best |", "|---|---|---:|---|---:|"]
    out += best_peer_rows(summary)
    out += ["", "| rebalance (clean leave, 3 → 2 members) | client | ms |", "|---|---|---:|"]
    for s in summary:
        if s["workload"].startswith("rebalance"):
            hb = s["workload"].removeprefix("rebalance-hb")
            out.append(f"| heartbeat.interval.ms={hb} | {s['client']} | {rng(s, 'rebalance_ms')} |")

    rows = []

    def ratio(a, b):
        return None if a is None or not b else a / b

    def n0(v):
        return "n/a" if v is None else f"{v:,.0f}"

    def add(target, measured, r, ok):
        rows.append(f"| {target} | {measured} | {'n/a' if r is None else f'{r:.2f}×'} | "
                    f"{'n/a' if ok is None else ('met' if ok else '**short**')} |")

    for wl, *_, rate in PRODUCE_WORKLOADS:
        if rate:
            continue
        c = m(wl, "cafe", "records_per_s")
        for peer in ("java", "librdkafka", "librdkafka-best"):
            r = ratio(c, m(wl, peer, "records_per_s"))
            label = f"{wl} rec/s ≥ 1.0× {peer}" + (" (reference)" if peer.endswith("best") else "")
            add(label, f"{n0(c)} vs {n0(m(wl, peer, 'records_per_s'))}", r, None if r is None else r >= 1)
    for wl, *_, rate in PRODUCE_WORKLOADS:
        if rate:
            continue
        c, l = m(wl, "cafe", "cpu_s_per_1m"), m(wl, "librdkafka", "cpu_s_per_1m")
        lt = m(wl, "librdkafka", "rdk_threads_cpu_s_per_1m")
        r = ratio(c, l)
        add(f"{wl} CPU-s/1M ≤ librdkafka", f"{fmt(c, 2)} vs {fmt(l, 2)} (its C threads alone {fmt(lt, 2)})",
            r, None if r is None else r <= 1)
    for wl in consume_workloads():
        for peer in ("java", "librdkafka", "librdkafka-best"):
            c, p = m(wl, "cafe", "records_per_s"), m(wl, peer, "records_per_s")
            r = ratio(c, p)
            label = f"{wl} rec/s ≥ 1.0× java" if peer == "java" else f"{wl} rec/s vs {peer} (no target)"
            add(label, f"{n0(c)} vs {n0(p)}", r, None if r is None or peer != "java" else r >= 1)
        c, j, l = m(wl, "cafe", "cpu_s_per_1m"), m(wl, "java", "cpu_s_per_1m"), m(wl, "librdkafka", "cpu_s_per_1m")
        add(f"{wl} CPU-s/1M vs librdkafka (no target)", f"{fmt(c, 2)} vs {fmt(l, 2)} (java {fmt(j, 2)})",
            ratio(c, l), None)
    for w, *_, rate in PRODUCE_WORKLOADS:
        if (w, BASELINE) in by:
            # Issue #10: the producer behind the new API must not be slower.
            c, p = m(w, "cafe", "records_per_s"), m(w, BASELINE, "records_per_s")
            r = ratio(c, p)
            add(f"{w} rec/s vs {BASELINE} (no target)", f"{n0(c)} vs {n0(p)}", r, None)
            c, p = m(w, "cafe", "cpu_s_per_1m"), m(w, BASELINE, "cpu_s_per_1m")
            add(f"{w} CPU-s/1M vs {BASELINE} (no target)", f"{fmt(c, 2)} vs {fmt(p, 2)}", ratio(c, p), None)
            c, p = m(w, "cafe", "p50_ms"), m(w, BASELINE, "p50_ms")
            add(f"{w} p50 ms vs {BASELINE} (no target)", f"{fmt(c, 1)} vs {fmt(p, 1)}", ratio(c, p), None)
    wl = CONSUME[0]
    if (wl, BASELINE) in by:
        # Issue #9: the rewritten fetch path must not be slower on uncompressed data.
        c, p = m(wl, "cafe", "records_per_s"), m(wl, BASELINE, "records_per_s")
        r = ratio(c, p)
        add(f"consume rec/s ≥ 1.0× {BASELINE}", f"{n0(c)} vs {n0(p)}", r, None if r is None else r >= 1)
        c, p = m(wl, "cafe", "cpu_s_per_1m"), m(wl, BASELINE, "cpu_s_per_1m")
        add(f"consume CPU-s/1M vs {BASELINE} (no target)", f"{fmt(c, 2)} vs {fmt(p, 2)}", ratio(c, p), None)
    c, l = m(wl, "cafe", "first_record_ms"), m(wl, "librdkafka", "first_record_ms")
    add("first record < 200 ms", f"{fmt(c, 0)} ms", None, None if c is None else c < 200)
    r = ratio(c, l)
    add("first record ≤ librdkafka", f"{fmt(c, 0)} vs {fmt(l, 0)} ms", r, None if r is None else r <= 1)
    for s in summary:
        if s["workload"].startswith("rebalance") and s["client"] == "cafe":
            wl = s["workload"]
            hb = wl.removeprefix("rebalance-hb")
            c, l = m(wl, "cafe", "rebalance_ms"), m(wl, "librdkafka", "rebalance_ms")
            add(f"clean-leave rebalance < 1 s (heartbeat {hb} ms)", f"{fmt(c, 0)} ms (librdkafka {fmt(l, 0)} ms)",
                ratio(c, 1000), None if c is None else c < 1000)
    for wl, *_, rate in PRODUCE_WORKLOADS:
        if rate:
            add(f"{wl} p50 / p99 latency (no target)",
                f"{fmt(m(wl, 'cafe', 'p50_ms'))} / {fmt(m(wl, 'cafe', 'p99_ms'))} ms vs librdkafka "
                f"{fmt(m(wl, 'librdkafka', 'p50_ms'))} / {fmt(m(wl, 'librdkafka', 'p99_ms'))}, java "
                f"{fmt(m(wl, 'java', 'p50_ms'))} / {fmt(m(wl, 'java', 'p99_ms'))}",
                ratio(m(wl, "cafe", "p50_ms"), m(wl, "librdkafka", "p50_ms")), None)
    wl = IDEMPOTENT[0]
    if (wl, "cafe") in by:
        # Issue #13: sequence numbers keep order across 5 batches in flight per partition.
        c, p = m(wl, "cafe", "records_per_s"), m(wl, INFLIGHT1, "records_per_s")
        add(f"{wl} rec/s, 5 in flight vs 1 ({INFLIGHT1}; no target)", f"{n0(c)} vs {n0(p)}", ratio(c, p), None)
    for wl, plain in ((SASL_PRODUCE[0], "produce-100B"), (SASL_CONSUME, CONSUME[0])):
        if (wl, "cafe") in by:
            # Issue #12: what TLS + SASL cost each client, against its own plaintext row.
            add(f"{wl}: cafe's cost of SASL_SSL, rec/s and CPU-s/1M over {plain} (no target)",
                "; ".join(f"{c} {tls_cost(by, wl, plain, c)}" for c in EXTRA_CLIENTS[wl]),
                cross(by, wl, "cafe", plain, "cafe", "records_per_s"), None)
    worst = max((ratio(m(w, "cafe", "peak_rss_mib"), m(w, "java", "peak_rss_mib")) or 0, w)
                for w in [x[0] for x in PRODUCE_WORKLOADS] + consume_workloads())
    add("peak RSS ≤ 0.5× Java (worst workload)", f"{worst[1]}: {fmt(m(worst[1], 'cafe', 'peak_rss_mib'), 0)} vs "
        f"{fmt(m(worst[1], 'java', 'peak_rss_mib'), 0)} MiB", worst[0] or None, worst[0] <= 0.5 if worst[0] else None)
    out += ["", "| target | measured (cafe vs peer, medians) | ratio | |", "|---|---|---:|---|"] + rows
    return "\n".join(out) + "\n"


def best_peer_rows(summary):
    """Markdown rows: cafe's median against the best peer's, per workload and figure.
    Rates: the highest peer; latencies and CPU: the lowest."""
    by = {}
    for s in summary:
        by.setdefault(s["workload"], {})[s["client"]] = s
    rows = []
    for wl, clients in by.items():
        if wl.startswith("rebalance") or "cafe" not in clients:
            continue
        figures = [("p50_ms", "p50 ms", min), ("p99_ms", "p99 ms", min), ("p999_ms", "p99.9 ms", min)] \
            if wl.startswith("latency") else [("records_per_s", "records/s", max)]
        figures += [("cpu_s_per_1m", "client CPU s/1M", min), ("broker_cpu_s_per_1m", "broker CPU s/1M", min)]
        for key, label, pick in figures:
            c = med(clients["cafe"], key)
            peers = [(med(s, key), name) for name, s in clients.items()
                     if name not in ("cafe", BASELINE, INFLIGHT1, "librdkafka-best") and med(s, key) is not None]
            if c is None or not peers:
                continue
            best, name = pick(peers)
            digits = 0 if key == "records_per_s" else 2
            rows.append(f"| {wl} | {label} | {c:,.{digits}f} | {name} {best:,.{digits}f} | "
                        f"{'n/a' if not best else f'{c / best:.2f}×'} |")
    return rows


def machine_info(b):
    def cmd(*c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=20).stdout.strip() or \
                subprocess.run(c, capture_output=True, text=True, timeout=20).stderr.strip()
        except OSError:
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    import confluent_kafka
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_kb / 1048576, 1),
        "kernel": platform.release(), "load_start": os.getloadavg(),
        "cafe_commit": cmd("git", "-C", REPO, "rev-parse", "--short", "HEAD"),
        "rustc": cmd("rustc", "--version"), "java": cmd("java", "-version").splitlines()[0],
        "confluent_kafka": confluent_kafka.version()[0], "librdkafka": confluent_kafka.libversion()[0],
        "kafka_libs": b.a.kafka_libs, "bootstrap": b.a.bootstrap,
        "baseline": b.baseline and {"path": b.baseline, "version": cmd(b.baseline, "--version")},
    }


def main():
    ap = argparse.ArgumentParser(description="cafe vs Java perf tools vs librdkafka")
    ap.add_argument("--bootstrap")
    ap.add_argument("--kafka-libs", help="directory of the Kafka jars")
    ap.add_argument("--render", metavar="JSON", help="only print the Markdown tables of a results JSON")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rebalance-runs", type=int, default=3)
    ap.add_argument("--heartbeats", type=lambda s: [int(x) for x in s.split(",")], default=[3000])
    ap.add_argument("--budget-s", type=float, default=1080,
                    help="stop adding runs past 3 when the next would end after this many seconds")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the record counts (develop with 0.05)")
    ap.add_argument("--only", choices=["all", "consume", "latency", "security", "transactions"], default="all",
                    help="consume: only the consume workloads; latency: only the fixed-rate ones; "
                    "security: produce-100B and consume over PLAINTEXT and SASL_SSL; transactions: "
                    "idempotent and transactional produce (any of them: no rebalance)")
    ap.add_argument("--secure-bootstrap", help="SASL_SSL listener of the secured broker (scripts/kafka.sh "
                    "up --secure), for the sasl-* rows")
    ap.add_argument("--secure-tls-dir", help="that broker's tls/ folder (its ca.pem)")
    ap.add_argument("--secure-broker-pid-file", help="pid file of the secured broker JVM")
    ap.add_argument("--peers-dir", help="where bench/peers/build.sh put the native drivers")
    ap.add_argument("--broker-pid-file", help="pid file of the broker JVM, for its CPU time per run")
    ap.add_argument("--baseline", metavar="CAFE", help=f"another cafe binary, as client {BASELINE} "
                    "of the uncompressed consume workload")
    # Untracked (git-ignored): a run must not dirty the checkout. `make bench-publish`
    # copies a run into the tracked bench/results/ deliberately.
    ap.add_argument("--out", default=os.path.join(HERE, "results", "local"))
    a = ap.parse_args()
    if a.render:
        with open(a.render) as f:
            r = json.load(f)
        print(render_markdown(r["summary"], r["machine"], r["settings"]["runs"], r["settings"]["rebalance_runs"]),
              end="")
        return
    if not (a.bootstrap and a.kafka_libs):
        ap.error("--bootstrap and --kafka-libs are required")
    if a.only != "all":
        a.rebalance_runs = 0
    if a.only == "security" and not a.secure_bootstrap:
        ap.error("--only security needs --secure-bootstrap (and --secure-tls-dir)")
    Bench(a).run()


if __name__ == "__main__":
    main()
