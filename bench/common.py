"""Shared pieces of the benchmarks: a real agent process against a fixture
root, the daemon's way of writing a pool, RSS and CPU readings."""

import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent import kvp  # noqa: E402
from agent.loop import pool_digest  # noqa: E402
from tests.integration.writer import make_pool_dir  # noqa: E402


class DaemonWriter:
    """As hv_kvp_daemon: a lock descriptor kept open for the pool's life, and
    per update (kvp_update_file) lock, fopen("w"), fwrite, fclose, unlock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def write(self, items: Sequence[Tuple[str, str]]) -> None:
        fcntl.lockf(self.lock_fd, fcntl.LOCK_EX)
        with open(self.path, "wb") as f:
            f.write(kvp.encode(items))
        fcntl.lockf(self.lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.lock_fd)


def items_digest(items: Sequence[Tuple[str, str]]) -> str:
    return pool_digest(tuple(items))


class Agent:
    def __init__(self, log_level: str = "warning") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="moby-bench-"))
        self.pool_dir = self.root / "var" / "lib" / "hyperv"
        make_pool_dir(self.pool_dir)
        cfg = self.root / "etc" / "moby-agent" / "agent.toml"
        cfg.parent.mkdir(parents=True)
        cfg.write_text(f'log_level = "{log_level}"\n')
        self.status_path = self.root / "run" / "moby-agent" / "status.json"
        self.t_exec = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "agent", "--root", str(self.root), "run"],
                                     env=dict(os.environ, PYTHONPATH=str(REPO)), stderr=subprocess.DEVNULL)
        self.wait(lambda d: d["passes"] >= 1, 30)

    def status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def wait(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            doc = self.status()
            if doc and predicate(doc):
                return doc
            time.sleep(0.0005)
        raise TimeoutError("the agent's status never matched")

    def rss_kb(self) -> int:
        return rss_kb(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        subprocess.run(["rm", "-rf", str(self.root)])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_and_switches(pid: int) -> Tuple[float, int]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks  # utime + stime
    switches = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            switches = int(line.split()[1])
    return cpu, switches


def pct(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: List[float]) -> str:
    return f"p50 {pct(values, 50):.2f}, p99 {pct(values, 99):.2f}, max {max(values):.2f}"


def median_range(values: List[float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


DEPS_IMPORT = "import inotify_simple, pyroute2, requests, tomli"
