"""Rebalance benchmark of `make bench`: 3 members on a 12-partition topic at each
client's default settings, with a producer offering a steady 2,000 records/s
throughout. For one member's clean leave (SIGTERM), and separately for a new
member's join, it measures:

  settle  from the leave (the SIGTERM) or the join (the newcomer's start, its
          process start included) until the group again consumes every
          partition: each partition has a record consumed by its new owner
          after it was given that partition;
  gap     the longest time in that span during which no member consumed any
          record at all (eager rebalancing stops the world; the others should
          not);
  stay    the longest time in that span a partition that stayed with its
          member went without a record (cooperative rebalancing should not
          stop those; eager revokes every partition, so none stays).

Clients: cafe eager (range), cafe cooperative-sticky, cafe with the consumer
protocol (KIP-848), librdkafka with group.protocol=consumer (bench/peer_librdkafka.py
member --json) and the Java consumer with group.protocol=consumer
(bench/java/RebalanceMember.java, compiled here against the kafka-clients jar into
.run/bench/java). Members print one line per assignment change and per record (cafe
--json) or per poll (the others); times are taken when the harness reads a line.

    python bench/rebalance.py --bootstrap 127.0.0.1:9292 --kafka-libs ~/.cache/cafe/kafka-4.1.1/libs

Run by bench/bench.sh (make bench) after bench/harness.py, or alone with
CAFE_BENCH_ONLY=rebalance. Results: bench/results/local/rebalance.{json,md}.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PARTITIONS = 12
MEMBERS = 3
RATE = 2000
CLIENTS = ["cafe-eager", "cafe-cooperative", "cafe-consumer", "librdkafka-consumer", "java-consumer"]
# What the others are compared with: the Java client with the consumer protocol.
REFERENCE = "java-consumer"
# How long the group must stay unchanged after settling to count as settled.
QUIET_S = 1.5
RECORD_PARTITION = re.compile(r'"partition":(\d+)')


def heartbeat_s(client):
    """The heartbeat interval a client runs with at defaults: the classic
    heartbeat.interval.ms (3 s), or the broker's group.consumer.heartbeat.interval.ms (5 s)."""
    return 5.0 if client.endswith("-consumer") else 3.0


def phase_fraction(run, runs):
    """Where in its heartbeat cycle run `run` of `runs` leaves and joins: the runs
    together cover the points (i - 1/2)/runs of the cycle, middle first, so a
    series cut short by the budget still has its first run mid-cycle and the next
    ones on either side of it."""
    points = sorted(((i - 0.5) / runs for i in range(1, runs + 1)), key=lambda f: (round(abs(f - 0.5), 9), f))
    return points[run - 1]


def log(msg):
    print(f"rebalance.py: {msg}", file=sys.stderr, flush=True)


class Member:
    """One member process; its stdout read on a thread into timed events."""

    def __init__(self, name, cmd):
        self.name = name
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "NO_COLOR": "1"})
        self.started = time.monotonic()
        self.lock = threading.Lock()
        # (t, "assigned"|"revoked", partitions) and (t, {partition: count})
        self.changes = []
        self.records = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            t = time.monotonic()
            if '"event"' in line:
                v = json.loads(line)
                parts = [p["partition"] if isinstance(p, dict) else p for p in v.get("partitions", [])]
                with self.lock:
                    self.changes.append((t, v["event"], parts))
            elif line.startswith('{"records"'):
                counts = {int(k): n for k, n in json.loads(line)["records"].items()}
                with self.lock:
                    self.records.append((t, counts))
            elif line.startswith("{"):
                m = RECORD_PARTITION.search(line)  # a cafe --json record line
                if m:
                    with self.lock:
                        self.records.append((t, {int(m.group(1)): 1}))

    def snapshot(self):
        with self.lock:
            return list(self.changes), list(self.records)

    def owned(self, until=None):
        """{partition: since} folded from the change lines (an `assigned` line adds, a
        `revoked` line removes; `since` is when the member got the partition)."""
        owned = {}
        for t, kind, parts in self.snapshot()[0]:
            if until is not None and t > until:
                break
            for p in parts:
                if kind == "assigned":
                    owned.setdefault(p, t)
                else:
                    owned.pop(p, None)
        return owned

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self):
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Bench:
    def __init__(self, a):
        self.a = a
        self.tag = uuid.uuid4().hex[:8]
        self.topic = f"bench-rebalance12-{self.tag}"
        self.cafe = os.path.join(a.target_dir, "release", "cafe")
        self.java_classes = os.path.join(REPO, ".run", "bench", "java")
        self.rows = []

    def cafe_cmd(self, *args):
        return [self.cafe, "-b", self.a.bootstrap, *args]

    def build_java_member(self):
        src = os.path.join(HERE, "java", "RebalanceMember.java")
        cls = os.path.join(self.java_classes, "RebalanceMember.class")
        if os.path.exists(cls) and os.path.getmtime(cls) >= os.path.getmtime(src):
            return
        os.makedirs(self.java_classes, exist_ok=True)
        log("compiling bench/java/RebalanceMember.java against kafka-clients")
        subprocess.run(["javac", "-cp", os.path.join(self.a.kafka_libs, "*"), "-d", self.java_classes, src],
                       check=True)

    def member_cmd(self, client, group):
        base = ["consume", "-t", self.topic, "-g", group, "--json", "--auto-offset-reset", "latest"]
        if client == "cafe-eager":
            return self.cafe_cmd(*base)
        if client == "cafe-cooperative":
            return self.cafe_cmd(*base, "--partition-assignment-strategy", "cooperative-sticky")
        if client == "cafe-consumer":
            return self.cafe_cmd(*base, "--group-protocol", "consumer")
        if client == "librdkafka-consumer":
            return [sys.executable, os.path.join(HERE, "peer_librdkafka.py"), "member", "-b", self.a.bootstrap,
                    "-t", self.topic, "-g", group, "--group-protocol", "consumer", "--offset-reset", "latest",
                    "--json"]
        if client == "java-consumer":
            cp = self.java_classes + os.pathsep + os.path.join(self.a.kafka_libs, "*")
            return ["java", "-cp", cp, "RebalanceMember", self.a.bootstrap, self.topic, group, "consumer"]
        raise ValueError(client)

    def settled(self, live, t0, deadline):
        """Waits until every partition is owned by exactly one live member, each has
        its share, and each partition has a record from its owner since it got it
        (and since t0), unchanged for QUIET_S; returns that moment, or None."""
        share = PARTITIONS // len(live)
        candidate = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            found = self._settle_time(live, t0, share)
            if found is None:
                candidate = None
            elif candidate is None or found != candidate:
                candidate = found
            elif now - max(candidate, self._last_change(live)) >= QUIET_S:
                return candidate
            time.sleep(0.05)
        return None

    @staticmethod
    def _last_change(live):
        return max((c[-1][0] for c in (m.snapshot()[0] for m in live) if c), default=0.0)

    @staticmethod
    def _settle_time(live, t0, share):
        owners = {}
        for m in live:
            owned = m.owned()
            if len(owned) != share:
                return None
            for p, since in owned.items():
                if p in owners:
                    return None
                owners[p] = (m, since)
        if len(owners) != PARTITIONS:
            return None
        latest = t0
        for p, (m, since) in owners.items():
            start = max(t0, since)
            first = next((t for t, counts in m.snapshot()[1] if t >= start and p in counts), None)
            if first is None:
                return None
            latest = max(latest, first)
        return latest

    @staticmethod
    def gaps(everyone, stayers, t0, t1):
        """The longest span in [t0, t1] without any record (from anyone), and the
        longest without a record of a partition that stayed with its member."""
        times = sorted(t for m in everyone for t, _ in m.snapshot()[1] if t0 <= t <= t1)
        edges = [t0] + times + [t1]
        gap = max(b - a for a, b in zip(edges, edges[1:]))
        stay = None
        for m, p in stayers:
            ts = [t for t, counts in m.snapshot()[1] if t0 <= t <= t1 and p in counts]
            e = [t0] + ts + [t1]
            g = max(b - a for a, b in zip(e, e[1:]))
            stay = g if stay is None else max(stay, g)
        return gap, stay

    @staticmethod
    def stayers(live, t0, t1):
        """(member, partition) pairs owned before t0 and never revoked up to t1."""
        out = []
        for m in live:
            changes = m.snapshot()[0]
            for p, since in m.owned(until=t0).items():
                revoked = any(t0 <= t <= t1 and kind == "revoked" and p in parts for t, kind, parts in changes)
                if not revoked:
                    out.append((m, p))
        return out

    def measure(self, run, client, event, live, everyone, t0, old):
        """`old`: the members that were in the group before the event (their
        partitions may stay with them)."""
        t1 = self.settled(live, t0, t0 + 90)
        if t1 is None:
            raise RuntimeError(f"{client} {event}: the group did not settle within 90 s")
        stayers = self.stayers(old, t0, t1)
        gap, stay = self.gaps(everyone, stayers, t0, t1)
        row = {"run": run, "client": client, "event": event, "settle_ms": (t1 - t0) * 1000,
               "gap_ms": gap * 1000, "stay_gap_ms": None if stay is None else stay * 1000,
               "stayed": len(stayers)}
        self.rows.append(row)
        stay_text = "-" if stay is None else f"{stay * 1000:.0f} ms over {len(stayers)} partitions"
        log(f"  {client:20} {event:5}: settled in {row['settle_ms']:6.0f} ms, no record for "
            f"{row['gap_ms']:6.0f} ms, stayers' longest gap {stay_text}")

    def once(self, run, client):
        group = f"bench-rebalance12-{client}-r{run}-{self.tag}"
        members = [Member(f"{client}-{i}", self.member_cmd(client, group)) for i in range(MEMBERS)]
        newcomer = None
        try:
            if self.settled(members, time.monotonic(), time.monotonic() + 120) is None:
                raise RuntimeError(f"{client}: 3 members never settled at 4 partitions each")
            # Members learn of a change at their next heartbeat, so the result
            # depends on where in the heartbeat cycle the leave or join falls:
            # spread both over one cycle across the runs.
            phase = heartbeat_s(client) * phase_fraction(run, self.a.runs)
            time.sleep(0.5 + phase)
            leaver, rest = members[0], members[1:]
            t0 = time.monotonic()
            leaver.stop()
            self.measure(run, client, "leave", rest, members, t0, old=rest)
            leaver.wait()
            time.sleep(0.5 + phase)
            t0 = time.monotonic()
            newcomer = Member(f"{client}-new", self.member_cmd(client, group))
            self.measure(run, client, "join", rest + [newcomer], rest + [newcomer], t0, old=rest)
        finally:
            for m in members + ([newcomer] if newcomer else []):
                m.stop()
            for m in members + ([newcomer] if newcomer else []):
                m.wait()

    def run(self):
        t_start = time.monotonic()
        self.build_java_member()
        subprocess.run(self.cafe_cmd("topic", "create", self.topic, "--partitions", str(PARTITIONS)), check=True,
                       stdout=subprocess.DEVNULL)
        # The steady load: unkeyed 100 B records, spread over the partitions. The sticky
        # partitioner stays on a partition for batch.size bytes (as Java's does): at the
        # default 16 KB that is 134 records, so each partition would get a burst every
        # 12 x 67 ms and no partition could show a gap shorter than ~800 ms; 1 KB
        # batches (8 records) move on every 4 ms, a burst per partition every ~50 ms.
        producer = subprocess.Popen(self.cafe_cmd("bench", "produce", "-t", self.topic, "-n", "100000000",
                                                  "--throughput", str(RATE), "--batch-size", "1024",
                                                  "--quiet"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.runs_done = 0
        try:
            for run in range(1, self.a.runs + 1):
                # Every mode is measured once; further rounds only while they fit in
                # the budget (make bench's total), at the pace of the rounds so far.
                if run > 1 and self.a.budget_s is not None:
                    elapsed = time.monotonic() - t_start
                    if elapsed + elapsed / (run - 1) > self.a.budget_s:
                        log(f"stopping after {run - 1} of {self.a.runs} runs: another would exceed the "
                            f"{self.a.budget_s:.0f} s budget")
                        break
                k = run % len(CLIENTS)
                for client in CLIENTS[k:] + CLIENTS[:k]:
                    log(f"run {run}/{self.a.runs} {client}")
                    self.once(run, client)
                self.runs_done = run
        finally:
            producer.send_signal(signal.SIGTERM)
            producer.wait()
            subprocess.run(self.cafe_cmd("topic", "delete", self.topic), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.duration_s = time.monotonic() - t_start
        self.write()

    def summary(self):
        out = {}
        for client in CLIENTS:
            for event in ("leave", "join"):
                rows = [r for r in self.rows if r["client"] == client and r["event"] == event]
                if not rows:
                    continue

                def med(k):
                    vs = [r[k] for r in rows if r[k] is not None]
                    return statistics.median(vs) if vs else None

                out[f"{client}/{event}"] = {"settle_ms": med("settle_ms"), "gap_ms": med("gap_ms"),
                                            "stay_gap_ms": med("stay_gap_ms"),
                                            "settle_range": [min(r["settle_ms"] for r in rows),
                                                             max(r["settle_ms"] for r in rows)],
                                            "runs": len(rows)}
        return out

    def write(self):
        summary = self.summary()
        os.makedirs(self.a.out, exist_ok=True)
        result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "settings": {"partitions": PARTITIONS, "members": MEMBERS, "rate": RATE, "runs": self.runs_done,
                               "runs_asked": self.a.runs},
                  "load": os.getloadavg(), "cpus": os.cpu_count(), "duration_s": round(self.duration_s, 1),
                  "rows": self.rows, "summary": summary}
        with open(os.path.join(self.a.out, "rebalance.json"), "w") as f:
            json.dump(result, f, indent=1)
        md = render(summary, self.runs_done, self.a.runs)
        with open(os.path.join(self.a.out, "rebalance.md"), "w") as f:
            f.write(md)
        print(md, end="")


def render(summary, runs, asked):
    def n(v):
        return "-" if v is None else f"{v:,.0f}"

    # One run is one point in each client's heartbeat cycle: its ratios are not a comparison.
    cut = f" ({asked} asked; the time budget had room for no more: a run's leave or join falls anywhere " \
          "in a heartbeat interval, so ratios from fewer than 3 runs are no comparison)" if runs < asked else ""
    lines = [f"Medians of {runs} runs{cut}; settle range in brackets; ratio: settle time / the Java consumer's "
             "(group.protocol=consumer) for the same event.", "",
             "| client | event | settle ms | ratio vs Java | no record at all, ms | stayers' longest gap, ms |",
             "|---|---|---:|---:|---:|---:|"]
    for key, s in summary.items():
        client, event = key.split("/")
        ref = summary.get(f"{REFERENCE}/{event}", {}).get("settle_ms")
        ratio = "-" if not ref or s["settle_ms"] is None else f"{s['settle_ms'] / ref:.2f}"
        lo, hi = s["settle_range"]
        lines.append(f"| {client} | {event} | {n(s['settle_ms'])} [{n(lo)}-{n(hi)}] | {ratio} | {n(s['gap_ms'])} | "
                     f"{n(s['stay_gap_ms'])} |")
    return "\n".join(lines) + "\n"


def main():
    global CLIENTS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--kafka-libs", required=True, help="directory of the Kafka jars (kafka-clients)")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")))
    ap.add_argument("--runs", type=int, default=3, help="rounds of every client (at most, with --budget-s)")
    ap.add_argument("--budget-s", type=float,
                    help="after the first round, start another only if it should end within this many seconds")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma list, a subset of " + ",".join(CLIENTS))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "local"))
    a = ap.parse_args()
    CLIENTS = [c for c in CLIENTS if c in a.clients.split(",")]
    Bench(a).run()


if __name__ == "__main__":
    main()
