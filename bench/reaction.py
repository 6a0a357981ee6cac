"""Reaction latency: a writer updates .kvp_pool_0 exactly as hv_kvp_daemon
does; we take the time from the start of the write to the end of planning in
the agent's pass that saw it (the agent's status: last_pass.planned_monotonic
and pool0_digest). Baselines in the same run: a loop that re-reads the pool
every second (what a shell script does) and the bare inotify wake-up.

usage: python3 bench/reaction.py [--updates 1000] [--poll-updates 20]
"""

import argparse
import os
import subprocess
import sys
import time

from common import Agent, DaemonWriter, items_digest, summary

INOTIFY_WAKER = """
import os, sys, time
from inotify_simple import INotify, flags
ino = INotify()
ino.add_watch(sys.argv[1], flags.CLOSE_WRITE)
print("ready", flush=True)
while True:
    ino.read()
    print(time.monotonic(), flush=True)
"""

POLLER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from agent import kvp
last = None
print("ready", flush=True)
while True:
    items = kvp.read_pool(sys.argv[1]).items
    if items != last:
        print(time.monotonic(), repr(items), flush=True)
        last = items
    time.sleep(1)
"""


def agent_latency(updates: int) -> list:
    agent = Agent()
    writer = DaemonWriter(agent.pool_dir / ".kvp_pool_0")
    out = []
    try:
        for i in range(updates):
            items = [("n", str(i))]
            t_written = time.monotonic()
            writer.write(items)
            want = items_digest(items)
            doc = agent.wait(lambda d, want=want: d["last_pass"]["pool0_digest"] == want, 5)
            out.append((doc["last_pass"]["planned_monotonic"] - t_written) * 1000)
    finally:
        writer.close()
        agent.stop()
    return out


def helper_latency(script: str, updates: int, pool_dir, *args) -> list:
    pool = pool_dir / ".kvp_pool_0"
    writer = DaemonWriter(pool)
    proc = subprocess.Popen([sys.executable, "-c", script, str(pool_dir if "INotify" in script else pool), *args],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout.readline().strip() == "ready"
    if "INotify" not in script:
        proc.stdout.readline()  # its first read
    out = []
    try:
        for i in range(updates):
            t_written = time.monotonic()
            writer.write([("n", str(i))])
            seen = float(proc.stdout.readline().split()[0])
            out.append((seen - t_written) * 1000)
    finally:
        writer.close()
        proc.kill()
        proc.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--poll-updates", type=int, default=20)
    args = ap.parse_args()
    agent = agent_latency(args.updates)
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    DaemonWriter(d / ".kvp_pool_0").write([])
    floor = helper_latency(INOTIFY_WAKER, args.updates, d)
    poll = helper_latency(POLLER, args.poll_updates, d, str(Path(__file__).resolve().parents[1]))
    print("### Reaction latency\n")
    print("Milliseconds from the start of a daemon-style write (lock, truncate, rewrite, unlock) to the end of")
    print("planning in the agent's pass that saw it (its status: last_pass.planned_monotonic, pool0_digest).\n")
    print("| what | updates | latency ms |")
    print("|---|---|---|")
    print(f"| moby-agent (inotify, settle_ms=1) | {len(agent)} | {summary(agent)} |")
    print(f"| floor: bare inotify wake-up in a second process | {len(floor)} | {summary(floor)} |")
    print(f"| baseline: re-read the pool every second | {len(poll)} | {summary(poll)} |")
    print("\nGoal: p50 under 5 ms, p99 under 20 ms.\n")


if __name__ == "__main__":
    main()
