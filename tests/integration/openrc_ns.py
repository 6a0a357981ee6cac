"""Debian's real OpenRC in a debootstrap chroot under unshare.

The cached root filesystem (tests/tools/build-rootfs) is the lower layer of
an overlay; the project's `make install DESTDIR=...` tree lies above it; the
namespace's pid 1 is a reaper inside the chroot, and commands run
there through nsenter, so every process the test starts lives and dies in
the namespace.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tests" / "tools"


def cache_dir() -> Path:
    return Path(os.environ.get("MOBY_AGENT_CACHE", "/var/cache/moby-agent-tests"))


def build_rootfs() -> Path:
    out = subprocess.run(
        ["sh", str(TOOLS / "build-rootfs"), str(cache_dir())], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def make_install(destdir: Path) -> None:
    subprocess.run(["make", "-s", "-C", str(REPO), "install", f"DESTDIR={destdir}"], check=True)


class Chroot:
    def __init__(self, base: Path, stage: Path, scratch: Path) -> None:
        self.scratch = scratch
        env = dict(os.environ, STAGE=str(stage), BASE=str(base), OV=str(scratch))
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", str(TOOLS / "nsinit.sh")],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the OpenRC namespace did not start")
        self.pid = self._find_init()

    def _find_init(self) -> int:
        # unshare -> (fork) sh -> exec chroot -> exec python3 reaper: pid 1 inside.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for child in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split():
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
                # The python reaper itself, not the `chroot` before its exec:
                # that one's argv ends the same, but its root is still the
                # host's (nsenter -r then found no /bin/busybox: exit 127).
                if cmd.startswith(b"/usr/bin/python3\x00") and cmd.endswith(b"moby-agent-test-init\x00"):
                    return int(child)
            time.sleep(0.02)
        raise RuntimeError("no pid 1 in the OpenRC namespace")

    def run(self, *argv: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = ["nsenter", "-t", str(self.pid), "-m", "-p", "-r", "-w", "--", *argv]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TERM": "dumb", "LANG": "C.UTF-8"}
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout, env=env)

    def sh(self, script: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.run("/bin/sh", "-c", script, check=check)

    def read(self, path: str) -> Optional[str]:
        """A file's text as the namespace sees it, or None."""
        out = self.run("cat", path)
        return out.stdout if out.returncode == 0 else None

    def processes(self) -> List[Tuple[int, str]]:
        """(pid, command line) of every process in the namespace."""
        out = self.run("ps", "-eo", "pid=,args=", check=True)
        rows = []
        for line in out.stdout.splitlines():
            pid, _, args = line.strip().partition(" ")
            rows.append((int(pid), args.strip()))
        return rows

    def service_state(self, name: str) -> str:
        """What rc-status prints for the service in its runlevel."""
        out = self.run("rc-status", "--nocolor").stdout
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == name:
                return line.split("[", 1)[1].split("]", 1)[0].split()[0]
        return "absent"

    def wait(self, predicate: Callable[[], object], timeout: float = 20, what: str = "condition") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        shutil.rmtree(self.scratch, ignore_errors=True)


def agent_pids(ch: Chroot) -> List[int]:
    """The agent processes (not their supervisor)."""
    return [pid for pid, args in ch.processes() if args == "/usr/bin/python3 /usr/bin/moby-agent run"]
