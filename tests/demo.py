"""The README's first command: the stand-in MobyLinuxVM doing its job.

Builds (or reuses) the guest, boots it with Samba at 10.0.75.1 and the
database over 9p, pushes a `cifsmount` item through the real hv_kvp_daemon
as Hyper-V would, and shows the share mounted at /c and /C with a file
written on the host side; then live reload: `moby-agent watch add /C`, a
file edited on the host side and the event an inotify watcher in the guest
gets for it; then dockerd: a host setting in `docker info`, a container
reading the host's file from /C, a watcher in a container hearing a host
edit; rc-status and moby-agent status; then powers off.

usage: tests/demo [--shell]     --shell: leave you at a shell in the guest
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.vm.guest import SMB_PASSWORD, SMB_USER, TEST_IMAGE, Guest  # noqa: E402
from tests.vm.test_watch import LISTENER  # noqa: E402


def show(guest: Guest, *argv: str) -> None:
    print(f"\n[guest]$ {' '.join(argv)}", flush=True)
    r = guest.run(list(argv))
    print((r.stdout + r.stderr).rstrip(), flush=True)


def docker_journey(guest: Guest) -> None:
    """What a Docker for Windows user does: a setting made on the host shows
    in `docker info`; a container reads the host's file from drive C; a
    watcher in a container hears a host-side edit."""
    print("\n== dockerd in the guest (Debian's docker.io under OpenRC's supervise-daemon)", flush=True)
    print(f"== dockerd answers /_ping ({guest.wait_dockerd(timeout=120):.1f} s more)", flush=True)
    guest.ensure_image()
    print("== the host sets a registry mirror and debug in its database, then bumps the generation", flush=True)
    guest.write_db("etc/docker/daemon.json", '{"debug": true, "registry-mirrors": ["https://mirror.example"]}')
    t0 = time.monotonic()
    guest.kvp.set(0, "com.docker.database.generation", "1")
    guest.wait(lambda: (i := guest.dockerd_info()) and i["Debug"] and i["RegistryConfig"]["Mirrors"], timeout=30,
               what="the setting in docker info")
    print(f"== visible in docker info {time.monotonic() - t0:.1f} s after the bump (SIGHUP: no restart)", flush=True)
    show(guest, "sh", "-c", "docker info 2>/dev/null | grep -E -A1 'Debug Mode|Registry Mirrors'")
    (guest.share / "src").mkdir(exist_ok=True)
    (guest.share / "src" / "app.js").write_text("console.log('written on Windows')\n")
    print("\n== docker run -v C:\\src:/src (the client sends /C/src): the container reads the host's file", flush=True)
    show(guest, "docker", "run", "--rm", "-v", "/C/src:/src", TEST_IMAGE, "cat", "/src/app.js")
    print("\n== live reload inside a container: a watcher in it, the host edits app.js", flush=True)
    guest.docker("rm", "-f", "demo-watcher")
    guest.docker("run", "-d", "--name", "demo-watcher", "-v", "/C/src:/src", TEST_IMAGE, "inotify-watch", "/src")
    guest.wait(lambda: guest.docker("logs", "demo-watcher").stdout.startswith("ready"), timeout=30,
               what="the container's watcher")
    show(guest, "moby-agent", "watch", "add", "/C/src")
    guest.wait(lambda: '"directories": 1' in (guest.read("/run/moby-agent/status.json") or ""), timeout=10,
               what="the watch")
    time.sleep(1)
    with open(guest.share / "src" / "app.js", "a") as f:
        f.write("console.log('edited on Windows')\n")
    guest.wait(lambda: "app.js" in guest.docker("logs", "demo-watcher").stdout, timeout=10,
               what="the container watcher's event")
    print("== the container's watcher got (monotonic time, file, inotify event):", flush=True)
    print("   " + guest.docker("logs", "demo-watcher").stdout.splitlines()[1], flush=True)
    guest.docker("rm", "-f", "demo-watcher")
    guest.run(["moby-agent", "watch", "remove", "/C/src"])


def main() -> int:
    shell = "--shell" in sys.argv[1:]
    work = Path(tempfile.mkdtemp(prefix="moby-demo-"))
    print("== building or reusing the stand-in guest (first time: a few minutes)", flush=True)
    guest = Guest(work, console="stdio" if shell else "file")
    try:
        guest.start()
        print(f"== booted to OpenRC's default runlevel in {guest.boot_seconds:.1f} s (TCG)", flush=True)
        (guest.share / "hello-from-windows.txt").write_text("This file was written on the host side of share C.\n")
        item = f"/c;/C;username={SMB_USER},password={SMB_PASSWORD.replace(',', ',,')},noperm,vers=3.1.1"
        print("== the host pushes KVP item cifsmount (password hidden here and everywhere in the guest)", flush=True)
        t0 = time.monotonic()
        guest.kvp.set(0, "cifsmount", item)
        guest.wait(lambda: guest.run(["test", "-f", "/C/hello-from-windows.txt"]).returncode == 0, timeout=30,
                   what="the share")
        print(f"== share usable at /C {time.monotonic() - t0:.1f} s after the push", flush=True)
        show(guest, "moby-agent", "kvp", "dump")
        show(guest, "sh", "-c", "grep cifs /proc/self/mountinfo | cut -d' ' -f5,9,10")
        show(guest, "cat", "/c/hello-from-windows.txt")
        show(guest, "ls", "-l", "/C/")
        print("\n== live reload: an inotify watcher in the guest (as nodemon or webpack in a container)", flush=True)
        guest.run(["sh", "-c", "cat > /tmp/listener.py"], input=LISTENER)
        guest.sh("(python3 /tmp/listener.py /C > /tmp/watcher.log 2>&1 &)")
        guest.wait(lambda: "ready" in (guest.read("/tmp/watcher.log") or ""), timeout=20, what="the watcher")
        show(guest, "moby-agent", "watch", "add", "/C")
        guest.wait(lambda: '"directories": 1' in (guest.read("/run/moby-agent/status.json") or ""), timeout=10,
                   what="the watch")
        print("== the host edits hello-from-windows.txt", flush=True)
        with open(guest.share / "hello-from-windows.txt", "a") as f:
            f.write("Edited on Windows.\n")
        guest.wait(lambda: "hello-from-windows.txt" in (guest.read("/tmp/watcher.log") or ""), timeout=10,
                   what="the watcher's event")
        print("== the guest's watcher got (monotonic time, file, inotify event):", flush=True)
        print("   " + (guest.read("/tmp/watcher.log") or "").splitlines()[1], flush=True)
        guest.run(["moby-agent", "watch", "remove", "/C"])
        docker_journey(guest)
        show(guest, "rc-status")
        show(guest, "moby-agent", "status")
        print("\n== what the host reads back from the guest pool (GuestExchangeItems):", flush=True)
        for key, value in guest.kvp.enumerate(1):
            print(f"   {key} = {value}")
        if shell:
            print("\n== you are at a shell in the guest (ttyS0); `poweroff` ends the demo", flush=True)
            assert guest.qemu is not None
            guest.qemu.wait()
    finally:
        guest.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("== powered off", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
