"""In the stand-in guest (root, QEMU TCG): boot to ready, which now means
QEMU start -> share mounted at /c and /C, daemon.json applied and dockerd
answering /_ping with it; the agent's own share of that time (its start to
its first pass, which docker's start waits for, plus the mount it makes
after the push); cifsmount pushed to the share usable; and the share's
first-file latency (a file written on the host side until the guest sees it).

usage: python3 bench/guest.py [--runs 3]
"""

import argparse
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import REPO, median_range

sys.path.insert(0, str(REPO))
from tests.vm.guest import SMB_PASSWORD, SMB_USER, Guest  # noqa: E402

ITEM = f"/c;/C;username={SMB_USER},password={SMB_PASSWORD.replace(',', ',,')},noperm,vers=3.1.1"


FIRST_PASS = re.compile(r"first pass done in \d+ ms, (\d+) ms after the process started")
STAMP = re.compile(r"^(\S+) moby-agent INFO: (.*)$", re.M)


def agent_seconds(log: str) -> float:
    """The agent's share of boot to ready, from its own log: exec to the end
    of its first pass (docker's start waits for it), plus the cifsmount
    item's arrival to the alias bound (the mount it makes)."""
    first = FIRST_PASS.search(log)
    stamps = {}
    for when, text in STAMP.findall(log):
        for key, marker in (("added", "item cifsmount added"), ("bound", "alias /C bound")):
            if marker in text and key not in stamps:
                stamps[key] = datetime.fromisoformat(when)
    mount = (stamps["bound"] - stamps["added"]).total_seconds() if len(stamps) == 2 else float("nan")
    return (int(first.group(1)) / 1000 if first else float("nan")) + mount


def one_run():
    work = Path(tempfile.mkdtemp(prefix="moby-bench-guest-"))
    g = Guest(work)
    g.db.mkdir(parents=True, exist_ok=True)
    g.write_db("etc/docker/daemon.json", '{"debug": true}')
    t0 = time.monotonic()
    try:
        g.start()
        g.kvp.set(0, "cifsmount", ITEM)  # as the host does once the VM's KVP is up
        g.wait(lambda: g.run(["sh", "-c", "grep -q ' /C ' /proc/self/mountinfo && "
                                          "grep -q debug /etc/docker/daemon.json"]).returncode == 0, timeout=60,
               what="share and daemon.json")
        g.wait_dockerd(timeout=120)
        g.wait(lambda: (i := g.dockerd_info()) and i["Debug"], timeout=60, what="dockerd with daemon.json")
        boot = time.monotonic() - t0
        agent = agent_seconds(g.read("/var/log/moby-agent.log") or "")
        g.kvp.set(0, "cifsumount", "/c;/C")
        g.wait(lambda: g.run(["test", "-e", "/C"]).returncode != 0, timeout=30, what="unmount")
        g.kvp.delete(0, "cifsumount")
        t1 = time.monotonic()
        g.kvp.set(0, "cifsmount", ITEM.replace("noperm", "noperm,nobrl"))
        g.wait(lambda: g.run(["ls", "/C"]).returncode == 0, timeout=30, what="share usable")
        usable = time.monotonic() - t1
        t2 = time.monotonic()
        (g.share / "first.txt").write_text("x")
        g.wait(lambda: g.run(["test", "-e", "/C/first.txt"]).returncode == 0, timeout=30, what="first file")
        first = time.monotonic() - t2
    finally:
        g.stop()
        shutil.rmtree(work, ignore_errors=True)
    return boot, usable, first, agent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    results = [one_run() for _ in range(args.runs)]
    print(f"### The stand-in guest (QEMU TCG, {args.runs} boots; seconds, median (min-max))\n")
    print("| what | seconds |")
    print("|---|---|")
    print(f"| QEMU start to share mounted at /c and /C, daemon.json applied and dockerd answering with it | "
          f"{median_range([r[0] for r in results])} |")
    print(f"| of which the agent's own (exec to first pass, plus the mount after the push) | "
          f"{median_range([r[3] for r in results])} |")
    print(f"| cifsmount pushed to the share usable at /C | {median_range([r[1] for r in results], '{:.2f}')} |")
    print(f"| a file written on the host side until the guest sees it | "
          f"{median_range([r[2] for r in results], '{:.2f}')} |")
    print()


if __name__ == "__main__":
    main()
