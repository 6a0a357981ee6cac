"""A pass over a large pool: time and memory against the pool's size.

For each size, a fixture root holds a pool 0 of that many items (as the
daemon writes them); a fresh interpreter runs the agent's first pass (every
item new: noted and logged) and then steady passes (nothing changed), and
reports its peak RSS against the pool file's size. Goal: linear (20,000
items about 10 times 2,000), memory under about twice the pool file.

usage: python3 bench/pool_scale.py [--sizes 2000,20000,100000] [--runs 5]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import REPO

CHILD = r"""
import json, logging, os, sys, time
from agent.agentconfig import AgentConfig
from agent.loop import Agent
logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))
root, runs = sys.argv[1], int(sys.argv[2])
def hwm():  # VmHWM: this process's own peak (ru_maxrss starts from the parent's after fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
agent = Agent(AgentConfig(), root, AgentConfig)
t = time.perf_counter(); agent.run_pass(); first = time.perf_counter() - t
steady = []
for _ in range(runs):
    t = time.perf_counter(); agent.run_pass(); steady.append(time.perf_counter() - t)
peak = hwm()
print(json.dumps({"first": first, "steady": sorted(steady)[len(steady) // 2], "peak_kb": peak, "base_kb": base}))
"""


def measure(size: int, runs: int) -> dict:
    sys.path.insert(0, str(REPO))
    from agent import kvp

    with tempfile.TemporaryDirectory() as root:
        pool_dir = os.path.join(root, "var", "lib", "hyperv")
        os.makedirs(pool_dir)
        items = [(f"key-{i:06d}", f"value {i} " * 10) for i in range(size)]
        with open(os.path.join(pool_dir, ".kvp_pool_0"), "wb") as f:
            f.write(kvp.encode(items))
        open(os.path.join(pool_dir, ".kvp_pool_1"), "wb").close()
        out = subprocess.run([sys.executable, "-c", CHILD, root, str(runs)], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
        doc = json.loads(out.stdout)
        doc["file_mb"] = os.path.getsize(os.path.join(pool_dir, ".kvp_pool_0")) / 1e6
        return doc


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="2000,20000,100000")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    rows = [(int(s), measure(int(s), args.runs)) for s in args.sizes.split(",")]
    print("| items | pool file MB | first pass s | steady pass s (median) "
          "| peak RSS MB (interpreter and agent before the pass) |")
    print("|---|---|---|---|---|")
    for size, d in rows:
        print(f"| {size:,} | {d['file_mb']:.1f} | {d['first']:.3f} | {d['steady']:.3f} | "
              f"{d['peak_kb'] / 1024:.1f} ({d['base_kb'] / 1024:.1f}) |")
    small = rows[0][1]
    for size, d in rows[1:]:
        print(f"\n{size:,} / {rows[0][0]:,} items: first pass x{d['first'] / small['first']:.1f}, "
              f"steady pass x{d['steady'] / small['steady']:.1f}; growth over the start "
              f"{(d['peak_kb'] - d['base_kb']) / 1024:.0f} MB for a {d['file_mb']:.0f} MB pool")


if __name__ == "__main__":
    main()
