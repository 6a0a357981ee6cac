"""Live reload on a shared drive, in the stand-in guest (root, QEMU TCG):
host edit to guest watcher event latency (p50, p99) and coverage (share of
host edits that reached the watcher) on a source tree of --dirs directories
and --files files, and the agent's CPU and memory while watching it.

usage: python3 bench/watch.py [--dirs 200] [--files 2000] [--edits 200]
"""

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, pct

sys.path.insert(0, str(REPO))
from tests.vm.guest import SMB_PASSWORD, SMB_USER, Guest  # noqa: E402
from tests.vm.test_watch import LISTENER  # noqa: E402

ITEM = f"/c;/C;username={SMB_USER},password={SMB_PASSWORD.replace(',', ',,')},noperm,vers=3.1.1"


def agent_cpu_rss(g):
    pid = json.loads(g.read("/run/moby-agent/status.json"))["pid"]
    fields = g.read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    rss = next(int(line.split()[1]) for line in g.read(f"/proc/{pid}/status").splitlines()
               if line.startswith("VmRSS:"))
    return (int(fields[11]) + int(fields[12])) / 100.0, rss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dirs", type=int, default=200)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--edits", type=int, default=200)
    args = ap.parse_args()
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="moby-bench-watch-"))
    g = Guest(work)
    try:
        g.start()
        src = g.share / "src"
        dirs = [src / f"pkg{i // 20:02d}" / f"mod{i:03d}" for i in range(args.dirs)]
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        files = [dirs[i % len(dirs)] / f"file{i:04d}.js" for i in range(args.files)]
        for f in files:
            f.write_text("// source\n")
        g.kvp.set(0, "cifsmount", ITEM)
        g.wait(lambda: g.run(["test", "-d", "/C/src"]).returncode == 0, timeout=30, what="the share")
        # One listener watching every directory of the tree, as a source-tree watcher does.
        g.run(["sh", "-c", "cat > /tmp/listener-all.py"], input=LISTENER.replace(
            'print("ready", flush=True)',
            'import os\nfor d, _, _ in os.walk(top):\n'
            '    wds[ino.add_watch(d, flags.ATTRIB | flags.CREATE | flags.MODIFY | flags.MOVED_TO)] = d\n'
            'print("ready", flush=True)'))
        g.sh("(python3 /tmp/listener-all.py /C/src > /tmp/all.log 2>&1 &)")
        g.wait(lambda: "ready" in (g.read("/tmp/all.log") or ""), timeout=120, what="the listener")
        t0 = time.monotonic()
        g.run(["moby-agent", "watch", "add", "/C/src"])
        g.wait(lambda: (json.loads(g.read("/run/moby-agent/status.json")).get("watch") or {}).get("directories", 0)
               >= args.dirs, timeout=300, what="every directory watched")
        setup = time.monotonic() - t0
        time.sleep(3)
        cpu0, rss0 = agent_cpu_rss(g)
        latencies, missed = [], 0
        for _ in range(args.edits):
            f = rng.choice(files)
            rel = str(f.relative_to(src))
            t_guest = g.monotonic()
            with open(f, "a") as fh:
                fh.write("// edit\n")
            deadline = time.monotonic() + 3
            seen = None
            while time.monotonic() < deadline and seen is None:
                for line in (g.read("/tmp/all.log") or "").splitlines()[1:]:
                    t, name = line.split(" ")[:2]  # time, path, event kinds
                    if name == rel and float(t) > t_guest:
                        seen = float(t) - t_guest
                        break
                else:
                    time.sleep(0.05)
            if seen is None:
                missed += 1
            else:
                latencies.append(seen * 1000)
        cpu1, rss1 = agent_cpu_rss(g)
        time.sleep(10)
        cpu2, _ = agent_cpu_rss(g)
    finally:
        g.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"### Live reload (stand-in guest, QEMU TCG): {args.dirs} directories, {args.files} files\n")
    print("| what | figure |\n|---|---|")
    print(f"| host edit to guest watcher event, ms ({len(latencies)} edits) | p50 {pct(latencies, 50):.0f}, "
          f"p99 {pct(latencies, 99):.0f}, max {max(latencies):.0f} |")
    print(f"| coverage (edits that reached the watcher within 3 s) | {100 * len(latencies) / args.edits:.1f} % |")
    print(f"| time to watch every directory after `watch add` | {setup:.1f} s |")
    print(f"| agent CPU during the {args.edits} edits | {cpu1 - cpu0:.2f} s |")
    print(f"| agent CPU over 10 s quiet afterwards | {cpu2 - cpu1:.2f} s |")
    print(f"| agent RSS while watching | {rss0:.1f} MB, {rss1:.1f} MB after the edits |\n")
    print("The latency includes the harness polling the listener's log every 50 ms.\n")


if __name__ == "__main__":
    main()
