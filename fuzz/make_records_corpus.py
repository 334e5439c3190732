#!/usr/bin/env python3
"""Seeds for the `records` fuzz target, from log segments a real broker wrote.

A segment file holds record batches exactly as a Fetch returns them, so the first
few whole batches of a segment are a realistic `records` field. Each seed is one
flags byte (bit 0: read_committed, bit 1: check CRCs; see records.rs) and up to
MAX bytes of whole batches.

Usage: fuzz/make_records_corpus.py NAME=SEGMENT.log [NAME=SEGMENT.log ...]
(writes fuzz/corpus/records/seed-NAME)
"""
import os
import struct
import sys

MAX = 1500
out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "records")
os.makedirs(out_dir, exist_ok=True)
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    data = open(path, "rb").read()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">i", data[pos + 8 : pos + 12])
        end = pos + 12 + length
        if end > len(data) or (end > MAX and pos > 0):
            break
        pos = end
    with open(os.path.join(out_dir, f"seed-{name}"), "wb") as f:
        f.write(bytes([0x03]) + data[:pos])
    print(f"seed-{name}: {pos} bytes of batches")
