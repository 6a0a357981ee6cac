"""Live reload at the scale of a real project, in the stand-in guest (QEMU
TCG), the way a Docker for Windows user has it: a project of --dirs
directories and --files files on drive C (a node_modules and a .git beside
them, skipped by the agent's defaults), a container started with
`docker run -v /C/bench:/app` running inotify watchers, and the agent
following that bind mount with no `watch add` (watch.follow_containers).

Prints, for the agent itself (its pid from status.json):
- docker run to every directory watched (status.json's watch.directories);
- the agent's RSS and threads; the guest kernel's share (KernelStack and
  Slab from /proc/meminfo, change-notify requests outstanding at the server
  from /proc/fs/cifs/DebugData);
- the agent's CPU and the server requests sent while nothing changes;
- host edit to the container's watcher, p50 and p99 over --edits edits of
  existing files spread over the tree.

The edit latency is an upper bound: its start is the guest's CLOCK_MONOTONIC
read (`now at` of /proc/timer_list) before the edit, so the exec channel's
way back is counted in; that share is printed beside it (the exec round
trip).

usage: python3 bench/livereload_guest.py [--dirs 5000] [--files 50000] [--edits 200] [--tree]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

sys.path.insert(0, str(REPO))
from livereload_scale import count_dirs, make_tree  # noqa: E402

from tests.vm.guest import SMB_PASSWORD, SMB_USER, TEST_IMAGE, Guest  # noqa: E402

V1 = f"/c;/C;username={SMB_USER},password={SMB_PASSWORD.replace(',', ',,')},noperm,vers=3.1.1"
WATCHED_DIRS = 20  # the container's watchers: one inotify-watch each, spread over the tree


def status(g: Guest) -> dict:
    return json.loads(g.read("/run/moby-agent/status.json") or "{}")


def proc_status(g: Guest, pid: int) -> dict:
    rows = (g.read(f"/proc/{pid}/status") or "").splitlines()
    return {k: v.split()[0] for k, _, v in (r.partition(":") for r in rows) if v.split()}


def meminfo(g: Guest, key: str) -> int:
    """A /proc/meminfo figure, in kB."""
    for row in (g.read("/proc/meminfo") or "").splitlines():
        if row.startswith(key + ":"):
            return int(row.split()[1])
    return 0


def cpu_split(g: Guest, pid: int):
    """(user, system) CPU ticks of a guest process (USER_HZ: 1 tick = 10 ms)."""
    fields = (g.read(f"/proc/{pid}/stat") or "").rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_ticks(g: Guest, pid: int) -> int:
    return sum(cpu_split(g, pid))


def server_rss_kib(g: Guest) -> int:
    """The Samba server's RSS (every smbd of this guest's configuration), host side."""
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv[0].endswith(b"smbd") and str(g.dir).encode() in b" ".join(argv):
                total += int(next(r for r in (proc / "status").read_text().splitlines()
                                  if r.startswith("VmRSS:")).split()[1])
        except (OSError, StopIteration, IndexError):
            continue
    return total


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dirs", type=int, default=5000)
    ap.add_argument("--files", type=int, default=50000)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measured")
    ap.add_argument("--tree", action="store_true", help="watch.tree = true: one WATCH_TREE request per root")
    ap.add_argument("--workdir", help="keep the guest's files here (default: a new temporary directory)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="moby-bench-livereload-"))
    g = Guest(work)
    top = g.share / "bench"
    t0 = time.monotonic()
    if not (top / "pkg000").exists():  # a --workdir kept from an earlier run has it
        top.mkdir(parents=True, exist_ok=True)
        make_tree(top, args.dirs, args.files)
    expected = count_dirs(top)
    print(f"tree made host-side in {time.monotonic() - t0:.1f} s: {expected} directories to watch "
          f"(node_modules and .git skipped), {args.files} files", flush=True)
    figures: dict = {"directories_expected": expected, "files": args.files, "tree": args.tree}
    try:
        g.start()
        print(f"guest ready in {g.boot_seconds:.1f} s", flush=True)
        old = status(g)["pid"]
        conf = f"[watch]\\nmax_dirs = {expected + 100}\\n" + ("tree = true\\n" if args.tree else "")
        g.sh(f"printf '{conf}' >> /etc/moby-agent/agent.toml && rc-service moby-agent restart")
        g.wait(lambda: status(g).get("pid") not in (None, old), timeout=30, what="the agent restarted")
        g.kvp.set(0, "cifsmount", V1)
        g.wait(lambda: " /C " in (g.read("/proc/self/mountinfo") or ""), timeout=30, what="the share")
        g.wait_dockerd(timeout=180)
        g.ensure_image()
        print("share mounted, dockerd answering, the test image imported", flush=True)
        pid = status(g)["pid"]
        base = proc_status(g, pid)
        mods = sorted(p.relative_to(top) for p in top.glob("pkg*/mod*"))
        sample = mods[:: max(1, len(mods) // WATCHED_DIRS)][:WATCHED_DIRS]
        script = "for d in " + " ".join(str(d) for d in sample) + "; do inotify-watch /app/$d & done; wait"
        # The floor any watcher that lists the tree pays: every directory
        # listed, every entry's attributes, in the guest (the attribute cache
        # emptied first: actimeo=1).
        time.sleep(2)
        s = time.monotonic()
        r = g.run(["sh", "-c", "find /C/bench -name node_modules -prune -o -name .git -prune -o -printf '%T@ %s\\n'"
                                " | wc -l"], timeout=900)
        figures["seconds_find_with_attributes"] = round(time.monotonic() - s, 1)
        print(f"find listing {r.stdout.strip()} entries with their attributes: "
              f"{figures['seconds_find_with_attributes']} s", flush=True)
        time.sleep(2)
        # After the find: the dentries and inodes of the tree are cached by
        # now, so what grows from here is the watch's own.
        kstack0, slab0, server0 = meminfo(g, "KernelStack"), meminfo(g, "Slab"), server_rss_kib(g)
        split0 = cpu_split(g, pid)
        t0 = time.monotonic()
        r = g.docker("run", "-d", "--name", "scale", "-v", "/C/bench:/app", TEST_IMAGE, "sh", "-c", script,
                     timeout=120)
        assert r.returncode == 0, r.stderr
        g.wait(lambda: g.docker("logs", "scale").stdout.count("ready") == len(sample), timeout=60,
               what="the container's watchers")
        last = {}

        def all_watched():
            last.update(status(g).get("watch", {}))
            return last.get("directories", 0) >= expected

        try:
            g.wait(all_watched, timeout=600, what=f"{expected} directories watched")
        except AssertionError:
            print("not all watched:", json.dumps({k: last.get(k) for k in ("directories", "why", "dropped")}))
            raise
        figures["seconds_docker_run_to_all_watched"] = round(time.monotonic() - t0, 1)
        split1 = cpu_split(g, pid)
        figures["agent_cpu_seconds_to_watch_all"] = {"user": (split1[0] - split0[0]) / 100,
                                                     "system": (split1[1] - split0[1]) / 100}
        print(f"docker run to {expected} directories watched: {figures['seconds_docker_run_to_all_watched']} s",
              flush=True)
        time.sleep(5)  # the last requests sent
        now = proc_status(g, pid)
        outstanding, _ = g.notify_requests()
        figures.update({
            "agent_rss_mib_before": round(int(base["VmRSS"]) / 1024, 1),
            "agent_rss_mib": round(int(now["VmRSS"]) / 1024, 1),
            "agent_threads": int(now["Threads"]),
            "kernel_stack_kib_added": meminfo(g, "KernelStack") - kstack0,
            "slab_kib_added": meminfo(g, "Slab") - slab0,
            "requests_outstanding": outstanding,
            "server_rss_kib_added": server_rss_kib(g) - server0,
        })
        ticks, (_, sent0) = cpu_ticks(g, pid), g.notify_requests()
        time.sleep(args.idle)
        figures["idle_seconds"] = args.idle
        figures["idle_cpu_ticks"] = cpu_ticks(g, pid) - ticks  # USER_HZ: 1 tick = 10 ms
        figures["idle_requests_sent"] = g.notify_requests()[1] - sent0
        print(json.dumps(figures), flush=True)

        rtt = []
        for _ in range(20):
            s = time.monotonic()
            g.monotonic()
            rtt.append(time.monotonic() - s)
        edits = []
        for i in range(args.edits):
            d = top / sample[i % len(sample)]
            files = sorted(p.name for p in d.iterdir() if p.is_file())
            name = files[(i // len(sample)) % len(files)]
            t = g.monotonic()
            with open(d / name, "a") as f:
                f.write(f"// edit {i}\n")
            edits.append((name, t))
            time.sleep(0.3)
        time.sleep(3)
        seen: dict = {}
        for line in g.docker("logs", "scale").stdout.splitlines():
            parts = line.split(" ")
            if len(parts) == 3:
                seen.setdefault(parts[1], []).append(float(parts[0]))
        took = []
        missed = 0
        for name, t in edits:
            after = [e for e in seen.get(name, []) if e >= t]
            if after:
                took.append(min(after) - t)
            else:
                missed += 1
        ms = [x * 1000 for x in took]
        figures.update({
            "edits": args.edits,
            "edits_missed": missed,
            "edit_to_container_ms_p50": round(statistics.median(ms), 1) if ms else None,
            "edit_to_container_ms_p99": round(percentile(ms, 99), 1) if ms else None,
            "edit_to_container_ms_max": round(max(ms), 1) if ms else None,
            "exec_round_trip_ms_median": round(statistics.median(rtt) * 1000, 1),
            "agent_reemitted": status(g).get("watch", {}).get("reemitted"),
        })
        figures["host_load_average_1min_at_end"] = round(os.getloadavg()[0], 2)  # this machine is shared
        for k, v in figures.items():
            print(f"{k}: {v}")
        print(json.dumps(figures), flush=True)
    finally:
        g.stop()


if __name__ == "__main__":
    main()
