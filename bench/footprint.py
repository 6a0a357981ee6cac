"""Idle cost, memory and start-up of the agent, each against a baseline in
the same run.

- idle: over --idle seconds with no change, the agent's CPU time and
  voluntary context switches (/proc/PID/stat, /proc/PID/status); goal: no
  wake-ups at all.
- memory: RSS after start and after --updates pool updates written as the
  daemon writes them; baseline: an interpreter that imports the four
  dependencies. Goal: under 20 MB steady, growth under 1 MB.
- start-up: exec to the end of the first pass with empty inputs and the
  installed agent.toml (`moby-agent run --once` wall time, started as the installed wrapper
  starts it, --runs runs), and the import cost,
  from a `make install` layout (bytecode compiled, as in the image and the
  guest) and, for comparison, from a checkout that compiles at every start;
  baseline: importing the four dependencies. Goal: under 100 ms.

usage: python3 bench/footprint.py [--idle 60] [--updates 10000] [--runs 10]
"""

import argparse
import os
import shutil
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


# What /usr/bin/moby-agent does (packaging/moby-agent), with the package on PYTHONPATH.
WRAPPER = "import sys\nfrom agent.cli import main\nsys.exit(main())"


def startup(runs: int) -> str:
    """As installed (`make install`: bytecode compiled) and from a checkout
    with no bytecode written (every start compiles the sources)."""
    inst = tempfile.mkdtemp(prefix="moby-bench-install-")
    subprocess.run(["make", "-s", "-C", str(REPO), "install", f"DESTDIR={inst}", f"PYTHON={sys.executable}"],
                   check=True)
    installed = dict(os.environ, PYTHONPATH=os.path.join(inst, "usr", "lib", "moby-agent"))
    checkout = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    first, imports, cold, deps = [], [], [], []

    def timed(argv, env) -> float:
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stderr=subprocess.DEVNULL)
        return (time.perf_counter() - t0) * 1000

    try:
        for _ in range(runs):
            root = tempfile.mkdtemp(prefix="moby-bench-")
            # The installed agent.toml, as in the image and the guest.
            os.makedirs(os.path.join(root, "etc", "moby-agent"))
            shutil.copy(REPO / "packaging" / "agent.toml", os.path.join(root, "etc", "moby-agent", "agent.toml"))
            first.append(timed([sys.executable, "-c", WRAPPER, "--root", root, "run", "--once"], installed))
            subprocess.run(["rm", "-rf", root])
            imports.append(timed([sys.executable, "-c", "import agent.cli, agent.loop"], installed))
            cold.append(timed([sys.executable, "-c", "import agent.cli, agent.loop"], checkout))
            deps.append(timed([sys.executable, "-c", DEPS_IMPORT], dict(os.environ)))
    finally:
        subprocess.run(["rm", "-rf", inst])
    return (f"| start-up ms | as installed: exec to end of first pass {median_range(first)}; interpreter + the "
            f"agent's imports {median_range(imports)}. From a checkout without bytecode: imports "
            f"{median_range(cold)} | baseline: interpreter importing the four dependencies "
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
