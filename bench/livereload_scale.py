"""Live reload at the scale of real projects, run where the watching is (in
the guest, as root, on a shared drive): time until every directory of a
tree is watched, the process's RSS and threads, the kernel's share
(KernelStack and Slab from /proc/meminfo, requests outstanding at the
server from /proc/fs/cifs/DebugData), and idle CPU while nothing changes.

The watcher is the agent's own (agent/livereload/watcher.py's
ShareWatcher), in this process, with the agent's defaults (watch.skip:
.git and node_modules skipped).

usage (in the guest):
  python3 bench/livereload_scale.py /C/bench --make --dirs 5000 --files 50000
  python3 bench/livereload_scale.py /C/bench               # the tree already there
  python3 bench/livereload_scale.py /C/bench --tree        # watch.tree: one request for the tree
  python3 bench/livereload_scale.py /tmp/x --make --stand-in
      # anywhere: each watch thread blocks in a read() of a pipe instead of the
      # cifs ioctl (the Python side's cost: threads, RSS, start-up), no server

Prints one line per figure and a JSON line at the end. Goals (issue 18):
every directory watched within 30 s, RSS under 60 MB, zero CPU while idle.
"""

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SKIPPED = (".git", "node_modules")


def make_tree(top: Path, dirs: int, files: int) -> int:
    """A project: dirs directories in packages of 20 (plus a node_modules
    and a .git with as many again, which are skipped), files spread over
    them. Returns how many directories should be watched (the top too)."""
    made = 1
    for i in range(dirs - 1):
        (top / f"pkg{i // 20:03d}" / f"mod{i:05d}").mkdir(parents=True, exist_ok=True)
    made += len({i // 20 for i in range(dirs - 1)}) + dirs - 1
    listing = [d for d in top.glob("pkg*/mod*")]
    for i in range(files):
        (listing[i % len(listing)] / f"f{i:06d}.js").write_text("// x\n")
    for skipped in SKIPPED:
        for i in range(200):
            (top / skipped / f"d{i:03d}").mkdir(parents=True, exist_ok=True)
    return made


def count_dirs(top: Path) -> int:
    n = 0
    for _path, subdirs, _ in os.walk(top):
        subdirs[:] = [d for d in subdirs if d not in SKIPPED]
        n += 1
    return n


def meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def outstanding() -> int:
    try:
        return Path("/proc/fs/cifs/DebugData").read_text().count(" com: 15 ")
    except OSError:
        return -1


def stand_in() -> None:
    """Each watch thread blocks in read() of a pipe (released GIL, as the
    ioctl's ctypes call is): the cost of the threads without a server."""
    import ctypes

    from agent.livereload import watcher

    libc = ctypes.CDLL(None, use_errno=True)
    r, _w = os.pipe()
    buf = ctypes.create_string_buffer(1)

    def blocked(fd: int, tree: bool = False):
        libc.read(r, buf, 1)
        return []

    watcher.wait_for_change = blocked


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--make", action="store_true", help="create the tree first (under PATH)")
    ap.add_argument("--dirs", type=int, default=5000)
    ap.add_argument("--files", type=int, default=50000)
    ap.add_argument("--max-dirs", type=int, default=100_000)
    ap.add_argument("--stack-kib", type=int, default=0, help="threading.stack_size for the watch threads (0: default)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--stand-in", action="store_true", help="no cifs: threads block on a pipe")
    ap.add_argument("--tree", action="store_true", help="watch.tree: one WATCH_TREE request per root")
    args = ap.parse_args()
    top = Path(args.path)
    if args.make:
        t0 = time.monotonic()
        top.mkdir(parents=True, exist_ok=True)
        make_tree(top, args.dirs, args.files)
        print(f"tree made in {time.monotonic() - t0:.1f} s")
    expected = count_dirs(top)
    print(f"directories to watch: {expected} (skipping {', '.join(SKIPPED)})")
    if args.stand_in:
        stand_in()
    if args.stack_kib:
        threading.stack_size(args.stack_kib * 1024)
    rss0, kstack0, slab0 = rss_kib(), meminfo("KernelStack"), meminfo("Slab")
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    from agent.livereload.watcher import ShareWatcher  # here: bench/livereload_guest.py needs only make_tree

    w = ShareWatcher(SKIPPED, args.max_dirs, tree=args.tree)
    w.set_roots([str(top)])
    deadline = t0 + args.timeout
    while w.stats.directories < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    all_dirs = time.monotonic() - t0
    time.sleep(1.0)  # the last threads into their request
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(args.idle)
    cpu2 = resource.getrusage(resource.RUSAGE_SELF)
    idle_cpu = (cpu2.ru_utime + cpu2.ru_stime) - (cpu1.ru_utime + cpu1.ru_stime)
    figures = {
        "path": str(top),
        "directories_expected": expected,
        "directories_watched": w.stats.directories,
        "seconds_to_watch_all": round(all_dirs, 2),
        "cpu_seconds_to_watch_all": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 2),
        "rss_mib": round(rss_kib() / 1024, 1),
        "rss_mib_for_the_watch": round((rss_kib() - rss0) / 1024, 1),
        "threads": threading.active_count(),
        "kernel_stack_kib": meminfo("KernelStack") - kstack0,
        "slab_kib": meminfo("Slab") - slab0,
        "requests_outstanding": outstanding(),
        "idle_cpu_seconds": round(idle_cpu, 3),
        "idle_seconds": args.idle,
        "stack_kib": args.stack_kib or "default",
        "tree": args.tree,
        "why": w.stats.why,
    }
    for k, v in figures.items():
        print(f"{k}: {v}")
    print(json.dumps(figures), flush=True)  # os._exit drops what stdout still buffers (a pipe)
    os._exit(0)  # the watch threads are blocked in the kernel: do not wait for them


if __name__ == "__main__":
    main()
