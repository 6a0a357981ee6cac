"""Idle cost, memory and start-up of the agent, each against a baseline in
the same run.

- idle: over --idle seconds with no change, the agent's CPU time and
  voluntary context switches (/proc/PID/stat, /proc/PID/status); goal: no
  wake-ups at all.
- memory: RSS after start and after --updates pool updates written as the
  daemon writes them; baseline: an interpreter that imports the four
  dependencies. Goal: under 20 MB steady, growth under 1 MB.
- start-up: exec to the end of the first pass with empty inputs
  (`moby-agent run --once` wall time, --runs runs), and the import cost;
  baseline: importing the four dependencies. Goal: under 100 ms.

usage: python3 bench/footprint.py [--idle 60] [--updates 10000] [--runs 10]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import DEPS_IMPORT, REPO, Agent, DaemonWriter, cpu_and_switches, items_digest, median_range


def idle(seconds: float) -> str:
    agent = Agent()
    try:
        time.sleep(1)
        cpu0, sw0 = cpu_and_switches(agent.proc.pid)
        time.sleep(seconds)
        cpu1, sw1 = cpu_and_switches(agent.proc.pid)
    finally:
        agent.stop()
    return (f"| idle {seconds:.0f} s | CPU {1000 * (cpu1 - cpu0):.0f} ms, voluntary context switches "
            f"{sw1 - sw0} | goal: 0 wake-ups |")


def memory(updates: int) -> str:
    agent = Agent()
    writer = DaemonWriter(agent.pool_dir / ".kvp_pool_0")
    try:
        start = agent.rss_kb()
        for i in range(updates):
            items = [("n", str(i)), ("PhysicalHostName", f"WIN-HOST-{i % 7}")]
            writer.write(items)
            if i % 50 == 49 or i == updates - 1:
                want = items_digest(items)
                agent.wait(lambda d, want=want: d["last_pass"]["pool0_digest"] == want, 10)
        end = agent.rss_kb()
    finally:
        writer.close()
        agent.stop()
    base = subprocess.run([sys.executable, "-c", f"{DEPS_IMPORT}\nimport os\nprint(open('/proc/self/status').read())"],
                          capture_output=True, text=True).stdout
    base_kb = next(int(line.split()[1]) for line in base.splitlines() if line.startswith("VmRSS:"))
    return (f"| RSS | after start {start / 1024:.1f} MB; after {updates} updates {end / 1024:.1f} MB "
            f"(growth {(end - start) / 1024:+.2f} MB) | baseline: interpreter importing the four dependencies "
            f"{base_kb / 1024:.1f} MB; goal under 20 MB, growth under 1 MB |")


def startup(runs: int) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first, imports, deps = [], [], []
    for _ in range(runs):
        root = tempfile.mkdtemp(prefix="moby-bench-")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "agent", "--root", root, "run", "--once"], env=env, check=True,
                       stderr=subprocess.DEVNULL)
        first.append((time.perf_counter() - t0) * 1000)
        subprocess.run(["rm", "-rf", root])
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import agent.cli, agent.daemon"], env=env, check=True)
        imports.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", DEPS_IMPORT], check=True)
        deps.append((time.perf_counter() - t0) * 1000)
    return (f"| start-up ms | exec to end of first pass {median_range(first)}; interpreter + the agent's imports "
            f"{median_range(imports)} | baseline: interpreter importing the four dependencies "
            f"{median_range(deps)}; goal under 100 ms |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--updates", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    print("### Footprint (median (min-max) where several runs)\n")
    print("| what | moby-agent | baseline and goal |")
    print("|---|---|---|")
    print(startup(args.runs))
    print(memory(args.updates))
    print(idle(args.idle))
    print()


if __name__ == "__main__":
    main()
