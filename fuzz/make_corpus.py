#!/usr/bin/env python3
"""Writes the committed seed corpus of the `frame` and `responses` fuzz targets
(fuzz/corpus/<target>/seed-*) from real encodings:

- responses: response frames (header + body, no size prefix) captured from a real
  Kafka broker for harmless requests (ApiVersions, Metadata, FindCoordinator,
  error answers for a group and a topic that do not exist), each prefixed with the
  target's selector byte for its type;
- frame: two of those frames under the header-only selectors, and consumer-protocol
  Subscription/Assignment bytes encoded by hand as the Java client writes them.

Usage: python3 fuzz/make_corpus.py [host:port]   (default 127.0.0.1:9092, e.g. make kafka-up)

The group_events seeds are not encodings (arbitrary::Arbitrary turns any bytes into
an event sequence): they are the 80 largest inputs (3 KB) of a set-cover merge of a
40 s run (`group_events -max_len=40 -seed=1`, then `-set_cover_merge=1`), which
reach about 90 % of that run's coverage at start-up.

Re-running this script rewrites the frame and responses seeds; the bytes of captured
frames depend on the broker (node id, cluster id, port). scripts/fuzz.sh runs them.
"""

import os
import socket
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# The `responses` target's selector (data[0] % 12) for each API key.
SELECTOR = {18: 0, 3: 1, 0: 2, 2: 3, 10: 4, 11: 5, 14: 6, 12: 7, 13: 8, 9: 9, 8: 10, 22: 11}


def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)
def s(v): return i16(-1) if v is None else i16(len(v)) + v.encode()          # STRING / NULLABLE_STRING
def b(v): return i32(-1) if v is None else i32(len(v)) + v                   # BYTES / NULLABLE_BYTES
def arr(items): return i32(len(items)) + b"".join(items)                      # ARRAY


def uvarint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def cs(v): return uvarint(0) if v is None else uvarint(len(v) + 1) + v.encode()  # COMPACT_(NULLABLE_)STRING
def carr(items): return uvarint(len(items) + 1) + b"".join(items)             # COMPACT_ARRAY
TAGS = uvarint(0)                                                               # empty tagged fields


NO_TOPIC = "cafe-fuzz-seed-none"

# (name, api key, version, flexible request header, body)
REQUESTS = [
    ("apiversions-v0", 18, 0, False, b""),
    ("apiversions-v3", 18, 3, True, cs("cafe") + cs("0.1.0") + TAGS),
    # One topic that does not exist, not all topics: brokers, cluster id, controller
    # and a topic error, in a few hundred bytes whatever the broker holds.
    ("metadata-v1-unknown-topic", 3, 1, False, arr([s(NO_TOPIC)])),
    ("metadata-v4-unknown-topic", 3, 4, False, arr([s(NO_TOPIC)]) + i8(0)),
    ("metadata-v12-unknown-topic", 3, 12, True, carr([bytes(16) + cs(NO_TOPIC) + TAGS]) + i8(0) + i8(0) + TAGS),
    ("findcoordinator-v1", 10, 1, False, s("cafe-fuzz-seed") + i8(0)),
    ("findcoordinator-v4", 10, 4, True, i8(0) + carr([cs("cafe-fuzz-seed")]) + TAGS),
    ("heartbeat-v0-unknown-member", 12, 0, False, s("cafe-fuzz-seed") + i32(1) + s("m")),
    ("heartbeat-v4-unknown-member", 12, 4, True, cs("cafe-fuzz-seed") + i32(1) + cs("m") + cs(None) + TAGS),
    ("leavegroup-v0-unknown-member", 13, 0, False, s("cafe-fuzz-seed") + s("m")),
    ("syncgroup-v0-unknown-member", 14, 0, False, s("cafe-fuzz-seed") + i32(1) + s("m") + arr([])),
    ("joingroup-v1-unknown-member", 11, 1, False,
     s("cafe-fuzz-seed") + i32(10000) + i32(10000) + s("m") + s("consumer") + arr([s("range") + b(b"")])),
    ("offsetfetch-v2-all", 9, 2, False, s("cafe-fuzz-seed") + i32(-1)),
    ("offsetcommit-v2-empty", 8, 2, False, s("cafe-fuzz-seed") + i32(1) + s("m") + i64(-1) + arr([])),
    ("initproducerid-v0", 22, 0, False, s(None) + i32(60000)),
    ("produce-v3-empty", 0, 3, False, s(None) + i16(1) + i32(1000) + arr([])),
    ("listoffsets-v1-unknown-topic", 2, 1, False,
     i32(-1) + arr([s(NO_TOPIC) + arr([i32(0) + i64(-1)])])),
]


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("broker closed the connection")
        buf += chunk
    return buf


def capture(addr):
    host, port = addr.rsplit(":", 1)
    frames = {}
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for corr, (name, key, version, flexible, body) in enumerate(REQUESTS, start=1):
            header = i16(key) + i16(version) + i32(corr) + s("cafe-fuzz-seed")
            if flexible:
                header += TAGS
            req = header + body
            sock.sendall(i32(len(req)) + req)
            try:
                (size,) = struct.unpack(">i", recv_exact(sock, 4))
            except EOFError:
                sys.exit(f"make_corpus.py: the broker closed the connection on {name} (version not supported?)")
            frame = recv_exact(sock, size)
            assert struct.unpack(">i", frame[:4])[0] == corr, name
            frames[name] = (key, version, frame)
    return frames


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    frames = capture(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092")
    for name, (key, _version, frame) in frames.items():
        write("responses", name, bytes([SELECTOR[key]]) + frame)

    # frame: selector 0 = header v0 then an empty Heartbeat body, 1 = header v1.
    write("frame", "header-v0", b"\x00" + frames["heartbeat-v0-unknown-member"][2])
    write("frame", "header-v1", b"\x01" + frames["heartbeat-v4-unknown-member"][2])
    # selector 2: ConsumerProtocolAssignment (v0 and v3 share one layout).
    assignment = arr([s("demo") + arr([i32(0), i32(2)]), s("other") + arr([i32(1)])]) + b(None)
    write("frame", "assignment-v0", b"\x02" + i16(0) + assignment)
    write("frame", "assignment-v3-userdata", b"\x02" + i16(3) + assignment[:-4] + b(b"\x01\x02"))
    # selector 3: ConsumerProtocolSubscription v0 (topics, user data), v1 (+ owned
    # partitions), v3 (+ generation id, rack id).
    topics = arr([s("demo"), s("other")])
    owned = arr([s("demo") + arr([i32(0), i32(1)])])
    write("frame", "subscription-v0", b"\x03" + i16(0) + topics + b(None))
    write("frame", "subscription-v1-owned", b"\x03" + i16(1) + topics + b(None) + owned)
    write("frame", "subscription-v3-rack", b"\x03" + i16(3) + topics + b(b"u") + owned + i32(7) + s("rack-a"))
    print(f"wrote {len(frames)} responses seeds and 7 frame seeds under {os.path.join(HERE, 'corpus')}")


if __name__ == "__main__":
    main()
