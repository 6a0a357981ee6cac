"""Soak: --minutes of mixed pool and database events at a steady rate
against a real agent (fixture root; the database's mount is a fixture line
in its mount table): no missed final state, no growth in memory or open
file descriptors. Prints samples and a verdict; exit 1 on a failure.

usage: python3 bench/soak.py [--minutes 30] [--rate 20]
"""

import argparse
import json
import os
import sys
import time

from common import Agent, DaemonWriter, items_digest, rss_kb

DB = "com.docker.driver.amd64-linux"


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=20, help="events per second")
    args = ap.parse_args()
    agent = Agent()
    root = agent.root
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text(f'com.docker.database="{DB}"\n')
    (root / "proc" / "self" / "mountinfo").write_text("40 1 0:40 / /Database rw - 9p db rw\n")
    db = root / "Database" / "branch" / "master" / "ro" / DB
    (db / "etc" / "docker").mkdir(parents=True)
    writer = DaemonWriter(agent.pool_dir / ".kvp_pool_0")
    samples = []
    end = time.monotonic() + args.minutes * 60
    i = 0
    next_sample = time.monotonic()
    ok = True
    try:
        while time.monotonic() < end:
            i += 1
            (db / "etc" / "docker" / "daemon.json").write_text(json.dumps({"labels": [f"soak={i}"]}))
            items = [("com.docker.database.generation", str(i)), ("n", str(i % 97))]
            writer.write(items)
            if time.monotonic() >= next_sample:
                samples.append((round(time.monotonic() - (end - args.minutes * 60)), rss_kb(agent.proc.pid),
                                fds(agent.proc.pid)))
                next_sample += max(10.0, args.minutes * 6)
            time.sleep(1 / args.rate)
        want = items_digest(items)
        doc = agent.wait(lambda d: d["last_pass"]["pool0_digest"] == want, 10)
        final = json.loads((root / "etc" / "docker" / "daemon.json").read_text())
        ok = final == {"labels": [f"soak={i}"]} and doc["passes"] > 1
        samples.append((round(args.minutes * 60), rss_kb(agent.proc.pid), fds(agent.proc.pid)))
    finally:
        writer.close()
        agent.stop()
    first, last = samples[0], samples[-1]
    print(f"### Soak: {args.minutes:g} min, {i} rounds of pool + database events at {args.rate:g}/s\n")
    print("| seconds | RSS MB | open fds |\n|---|---|---|")
    for t, rss, n in samples:
        print(f"| {t} | {rss / 1024:.1f} | {n} |")
    grew = (last[1] - first[1]) / 1024
    print(f"\nFinal state seen: {'yes' if ok else 'NO'}; RSS growth {grew:+.2f} MB; fds {first[2]} -> {last[2]}.\n")
    return 0 if ok and grew < 1.0 and last[2] <= first[2] else 1


if __name__ == "__main__":
    sys.exit(main())
