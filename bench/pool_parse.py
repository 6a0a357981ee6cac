"""Pool parsing throughput: agent.kvp.decode against a plain read() of the
same file (the floor) and a per-record struct.unpack loop (how mature Python
agents do it). Prints items per second, median of several runs.

usage: python3 bench/pool_parse.py [--runs N]
"""

import argparse
import os
import statistics
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from agent import kvp  # noqa: E402


def struct_loop(data: bytes) -> dict:
    items = {}
    fmt = struct.Struct("512s2048s")
    for off in range(0, len(data) - len(data) % kvp.RECORD_SIZE, kvp.RECORD_SIZE):
        k, v = fmt.unpack_from(data, off)
        items[k.split(b"\0", 1)[0].decode("utf-8", "replace")] = v.split(b"\0", 1)[0].decode("utf-8", "replace")
    return items


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, median (min-max)")
    header = ("records", "read() MB/s", "kvp.read_pool items/s", "struct loop items/s", "vs read")
    print("{:>8} {:>14} {:>24} {:>22} {:>8}".format(*header))
    for n in (10, 1_000, 100_000):
        with tempfile.NamedTemporaryFile(prefix=".kvp_pool_", delete=False) as f:
            f.write(kvp.encode((f"key{i}", f"value {i} " + "x" * (i % 200)) for i in range(n)))
            path = f.name
        try:

            def plain(path=path):
                with open(path, "rb") as fh:
                    fh.read()

            def ours(path=path):
                kvp.read_pool(path)

            def baseline(path=path):
                with open(path, "rb") as fh:
                    struct_loop(fh.read())

            runs = args.runs if n < 100_000 else max(3, args.runs // 2)
            p, o, b = timed(plain, runs), timed(ours, runs), timed(baseline, runs)
            size = n * kvp.RECORD_SIZE / 1e6
            print(
                f"{n:>8} {size / p[0]:>14,.0f} {n / o[0]:>16,.0f} ({n / o[2]:,.0f}-{n / o[1]:,.0f})"
                f" {n / b[0]:>14,.0f} {o[0] / p[0]:>7.1f}x"
            )
        finally:
            os.unlink(path)


if __name__ == "__main__":
    main()
