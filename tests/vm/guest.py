"""The stand-in MobyLinuxVM and its host side, for tests and the demo.

Everything host-facing runs inside a private network namespace that holds
only loopback: QEMU (user networking plays the DockerNAT switch: the guest
is 10.0.75.2, and 10.0.75.1 maps to the namespace's loopback) and a real
Samba server on that loopback exporting share C. Nothing leaves the
namespace. The database is a directory exported over virtio-9p (tag db);
the kernel command line names it. The guest's hv_kvp_daemon talks to
KvpHost through a virtio-serial port; tests run commands through another
(execd).
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence

from tests.vm.kvphost import KvpHost

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATABASE = "com.docker.driver.amd64-linux"
SMB_USER = "mobyshare"
SMB_PASSWORD = "Pa55, word=with spaces"  # noqa: S105 - a test account's password


TEST_IMAGE = "moby-test:latest"
# /_ping over dockerd's socket, with the guest's own Python.
PING = """
import socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect("/var/run/docker.sock")
    s.sendall(b"GET /_ping HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print(data.split(b"\\r\\n\\r\\n", 1)[-1].decode())
except OSError:
    print("down")
"""


class GuestError(Exception):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("MOBY_AGENT_CACHE", "/var/cache/moby-agent-tests"))


def build() -> List[str]:
    out = subprocess.run(
        ["sh", str(HERE / "build-guest"), str(cache_dir())], check=True, capture_output=True, text=True
    )
    return out.stdout.split()


SMB_CONF = """\
[global]
  workgroup = WORKGROUP
  server role = standalone server
  interfaces = lo
  bind interfaces only = yes
  smb ports = 445
  disable netbios = yes
  server min protocol = SMB2
  map to guest = never
  passdb backend = tdbsam:{d}/private/passdb.tdb
  private dir = {d}/private
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/run
  ncalrpc dir = {d}/ncalrpc
  log file = {d}/log.%m
  log level = 1
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes

[C]
  path = {share}
  read only = no
  valid users = {user}
  # The share lives under the test's private (0700) directory: serve it as
  # root, as Windows serves C: to its owner.
  force user = root
  create mask = 0664
  directory mask = 0775
"""


class Guest:
    def __init__(self, workdir: Path, memory_mb: int = 2048, console: str = "file") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kernel, self.initrd = build()
        self.memory_mb = memory_mb
        self.console = self.dir / "console.log"
        self.console_mode = console  # "file", or "stdio": the guest's ttyS0 is this terminal
        self.share = self.dir / "share-C"
        self.db_root = self.dir / "db"
        self.db = self.db_root / "branch" / "master" / "ro" / DATABASE
        self.netns: Optional[subprocess.Popen] = None
        self.qemu: Optional[subprocess.Popen] = None
        self.smbd_pidfile = self.dir / "samba" / "run" / "smbd.pid"
        self.smbd: Optional[subprocess.Popen] = None
        self.netns_pid = 0
        self.kvp: Optional[KvpHost] = None
        self._exec: Optional[socket.socket] = None
        self.boot_seconds: Optional[float] = None
        self.power_off_seconds: Optional[float] = None

    # ---- host side -------------------------------------------------------

    def _ns(self, *argv: str) -> List[str]:
        """argv run inside the guest's private network namespace."""
        return ["nsenter", "-t", str(self.netns_pid), "-n", "--", *argv]

    def _prepare_samba(self) -> None:
        d = self.dir / "samba"
        for sub in ("private", "lock", "state", "cache", "run", "ncalrpc"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.share.mkdir(exist_ok=True)
        if subprocess.run(["id", SMB_USER], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SMB_USER],
                           check=True)
        (d / "smb.conf").write_text(SMB_CONF.format(d=d, share=self.share, user=SMB_USER))
        subprocess.run(
            ["smbpasswd", "-c", str(d / "smb.conf"), "-a", "-s", SMB_USER],
            input=f"{SMB_PASSWORD}\n{SMB_PASSWORD}\n", text=True, check=True, capture_output=True,
        )

    def set_samba_password(self, password: str) -> None:
        """The share account's password, changed on the host side (smbpasswd)."""
        subprocess.run(["smbpasswd", "-c", str(self.dir / "samba" / "smb.conf"), "-s", SMB_USER],
                       input=f"{password}\n{password}\n", text=True, check=True, capture_output=True)

    def start_samba(self) -> None:
        if self.smbd is not None and self.smbd.poll() is None:
            return  # running: a second smbd would fail to bind, and stop_samba would then lose the first
        d = self.dir / "samba"
        # setsid: smbd signals its process group on exit.
        self.smbd = subprocess.Popen(
            self._ns("setsid", "smbd", "--foreground", "--no-process-group", "-s", str(d / "smb.conf")),
            stdout=subprocess.DEVNULL, stderr=open(d / "smbd.out", "w"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._port_open():
                return
            if self.smbd.poll() is not None:
                break
            time.sleep(0.1)
        raise GuestError(f"smbd did not listen on 127.0.0.1:445: {(d / 'smbd.out').read_text()[-1000:]}")

    def _port_open(self) -> bool:
        r = subprocess.run(self._ns("python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 445), 1)"),
                           capture_output=True)
        return r.returncode == 0

    def stop_samba(self) -> None:
        if self.smbd is None or self.smbd.poll() is not None:
            return
        # setsid made smbd its own process; its pid file names the parent.
        try:
            pid = int(self.smbd_pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            self.smbd.terminate()
        try:
            self.smbd.wait(10)
        except subprocess.TimeoutExpired:
            self.smbd.kill()
            self.smbd.wait()
        self.smbd = None

    # ---- the guest -------------------------------------------------------

    def start(self, samba: bool = True, boot_timeout: float = 240) -> None:
        self.db.mkdir(parents=True, exist_ok=True)
        self._prepare_samba()
        holder = "ip link set lo up && echo ready && exec sleep 2147483647"
        self.netns = subprocess.Popen(
            ["unshare", "--net", "--fork", "--kill-child", "sh", "-c", holder], stdout=subprocess.PIPE, text=True
        )
        assert self.netns.stdout is not None
        if self.netns.stdout.readline().strip() != "ready":
            raise GuestError("could not create the network namespace")
        # nsenter needs the forked child (unshare itself stays outside).
        children = Path(f"/proc/{self.netns.pid}/task/{self.netns.pid}/children").read_text().split()
        self.netns_pid = int(children[0])
        if samba:
            self.start_samba()
        self.boot(boot_timeout)

    def boot(self, boot_timeout: float = 240) -> None:
        """Start QEMU (the host side must be up) and wait for the agent."""
        for sock in ("kvp.sock", "exec.sock"):
            (self.dir / sock).unlink(missing_ok=True)
        # apparmor=0: MobyLinuxVM's kernel had no AppArmor, and the guest has no
        # apparmor_parser to load dockerd's profile with.
        cmdline = f'console=ttyS0 panic=-1 apparmor=0 com.docker.database="{DATABASE}" mobyplatform=windows'
        argv = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", str(self.memory_mb), "-smp", "2",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", self.kernel, "-initrd", self.initrd, "-append", cmdline,
            "-serial", f"file:{self.console}" if self.console_mode == "file" else "mon:stdio",
            "-netdev", "user,id=n0,net=10.0.75.0/24,host=10.0.75.1,dhcpstart=10.0.75.2",
            "-device", "virtio-net-pci,netdev=n0",
            "-virtfs", f"local,path={self.db_root},mount_tag=db,security_model=none",
            "-device", "virtio-serial-pci,id=vs",
            "-chardev", f"socket,id=kvp,path={self.dir / 'kvp.sock'},server=on,wait=off",
            "-device", "virtserialport,bus=vs.0,chardev=kvp,name=org.moby.kvp",
            "-chardev", f"socket,id=exec,path={self.dir / 'exec.sock'},server=on,wait=off",
            "-device", "virtserialport,bus=vs.0,chardev=exec,name=org.moby.exec",
        ]
        t0 = time.monotonic()
        qemu_log = open(self.dir / "qemu.log", "w")
        stdio = {} if self.console_mode == "stdio" else {"stdout": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
        self.qemu = subprocess.Popen(self._ns(*argv), stderr=qemu_log, **stdio)  # type: ignore[call-overload]
        deadline = time.monotonic() + 10
        while not (self.dir / "exec.sock").exists():
            if time.monotonic() > deadline or self.qemu.poll() is not None:
                raise GuestError(f"QEMU did not start: {(self.dir / 'qemu.log').read_text()[-2000:]}")
            time.sleep(0.05)
        self.kvp = KvpHost(str(self.dir / "kvp.sock"), timeout=boot_timeout)
        self._exec = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._exec.connect(str(self.dir / "exec.sock"))
        # execd starts once OpenRC's default runlevel is done (inittab).
        r = self.run(["cat", "/run/moby-vm.ready"], timeout=boot_timeout)
        if r.returncode != 0:
            raise GuestError("the guest did not reach the default runlevel:\n" + self.console_tail())
        # The runlevel is up when supervise-daemon has started the agent; the
        # agent is up when its first pass has written the status file.
        r = self.run(["sh", "-c", "for i in $(seq 1 300); do [ -s /run/moby-agent/status.json ] && exit 0; "
                      "sleep 0.1; done; exit 1"], timeout=60)
        if r.returncode != 0:
            raise GuestError("the agent wrote no status after boot:\n" + (self.read("/var/log/moby-agent.log") or ""))
        self.boot_seconds = time.monotonic() - t0
        self.kvp.wait_registered()
        self.kvp.timeout = 30

    def run(self, argv: Sequence[str], input: Optional[str] = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command in the guest; a CompletedProcess with text output."""
        assert self._exec is not None
        data = json.dumps({"argv": list(argv), "input": input, "timeout": timeout}).encode()
        self._exec.settimeout(timeout + 10)
        try:
            self._exec.sendall(struct.pack(">I", len(data)) + data)
            (size,) = struct.unpack(">I", self._recv(4))
            resp = json.loads(self._recv(size))
        except socket.timeout:
            raise GuestError(f"no answer from the guest for {list(argv)}:\n{self.console_tail()}") from None
        return subprocess.CompletedProcess(list(argv), resp["rc"], resp["stdout"], resp["stderr"])

    def _recv(self, n: int) -> bytes:
        assert self._exec is not None
        buf = b""
        while len(buf) < n:
            chunk = self._exec.recv(n - len(buf))
            if not chunk:
                raise GuestError("the guest's exec channel closed:\n" + self.console_tail())
            buf += chunk
        return buf

    def sh(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run(["/bin/sh", "-c", script], timeout=timeout)

    def read(self, path: str) -> Optional[str]:
        r = self.run(["cat", path])
        return r.stdout if r.returncode == 0 else None

    def monotonic(self) -> float:
        """The guest's CLOCK_MONOTONIC in seconds (what its watchers stamp
        events with: time.monotonic() there)."""
        out = self.run(["head", "-n", "3", "/proc/timer_list"]).stdout
        return int(out.split("now at ", 1)[1].split()[0]) / 1e9

    def notify_requests(self) -> "tuple[int, int]":
        """(change-notify requests outstanding at the server, sent in all),
        from cifs's own accounting."""
        outstanding = (self.read("/proc/fs/cifs/DebugData") or "").count(" com: 15 ")
        sent = int((self.read("/proc/fs/cifs/Stats") or "").split("ChangeNotifies:")[1].split()[0])
        return outstanding, sent

    def write_db(self, key: str, value: str) -> None:
        path = self.db / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)

    def remove_db(self, key: str) -> None:
        path = self.db / key
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def rc_states(self) -> dict:
        """rc-status --all as {service: state} (started, crashed, ...)."""
        out = self.run(["rc-status", "--nocolor", "--all"]).stdout
        states = {}
        for line in out.splitlines():
            if "[" in line and line.split():
                states[line.split()[0]] = line.split("[", 1)[1].split("]", 1)[0].split()[0]
        return states

    def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """The docker client in the guest, against the guest's dockerd."""
        return self.run(["docker", *args], timeout=timeout)

    def dockerd_info(self) -> Optional[dict]:
        """dockerd's /info over its socket, or None while it does not answer."""
        r = self.docker("info", "--format", "{{json .}}", timeout=20)
        if r.returncode != 0:
            return None
        try:
            info = json.loads(r.stdout)
        except ValueError:
            return None
        return info if info.get("ServerVersion") else None

    def wait_dockerd(self, timeout: float = 120) -> float:
        """Seconds until dockerd answers /_ping (from now)."""
        t0 = time.monotonic()
        self.wait(lambda: self.run(["python3", "-c", PING], timeout=10).stdout.strip() == "OK", timeout=timeout,
                  what="dockerd to answer /_ping")
        return time.monotonic() - t0

    def ensure_image(self) -> str:
        """The test image (busybox and a static inotify watcher), imported from
        the tar built with the guest: no registry is reachable, or needed."""
        if self.docker("image", "inspect", TEST_IMAGE).returncode != 0:
            r = self.docker("import", "/usr/lib/moby-vm/image.tar", TEST_IMAGE, timeout=120)
            if r.returncode != 0:
                raise GuestError(f"docker import: {r.stderr}")
        return TEST_IMAGE

    def wait(self, predicate, timeout: float = 10, what: str = "a condition"):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                log = "\n".join((self.read("/var/log/moby-agent.log") or "").splitlines()[-15:])
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; the agent's log ends:\n{log}")
            time.sleep(0.1)

    def settled(self, timeout: float = 15) -> None:
        """Wait until the agent's last pass saw pool 0 as it is now. A
        delete followed at once by a write of the same value is one unchanged
        item to a pass that reads after both (the pool file keeps no history),
        so a test that removes an item waits for this before the next one."""
        from agent.loop import pool_digest

        want = pool_digest(tuple(self.kvp.enumerate(0)))
        self.wait(lambda: json.loads(self.read("/run/moby-agent/status.json") or "{}")
                  .get("last_pass", {}).get("pool0_digest") == want, timeout=timeout, what="the agent seeing pool 0")

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console output)"
        return "\n".join(text.splitlines()[-lines:])

    def reboot(self, samba: bool) -> None:
        """Power the guest off and boot it again (its root is a tmpfs: a fresh
        boot), with Samba up or down meanwhile."""
        self.power_off()
        if samba:
            self.start_samba()
        else:
            self.stop_samba()
        self.boot()

    def stop(self, timeout: float = 30) -> None:
        """Power off cleanly (OpenRC shutdown), then tear the host side down."""
        self.power_off(timeout)
        if self.netns is not None:
            self.stop_samba()
            self.netns.kill()
            self.netns.wait()

    def power_off(self, timeout: float = 30) -> None:
        t0 = time.monotonic()
        if self.qemu is not None and self.qemu.poll() is None and self._exec is not None:
            try:
                self.run(["/bin/busybox", "poweroff"], timeout=5)
            except (GuestError, OSError):
                pass
            try:
                self.qemu.wait(timeout)
            except subprocess.TimeoutExpired:
                self.qemu.kill()
                self.qemu.wait()
        elif self.qemu is not None and self.qemu.poll() is None:
            self.qemu.kill()
            self.qemu.wait()
        for ch in (self._exec, self.kvp):
            if ch is not None:
                ch.close()
        self._exec = self.kvp = None
        self.power_off_seconds = time.monotonic() - t0
