"""The README's first command: the stand-in MobyLinuxVM doing its job.

Builds (or reuses) the guest, boots it with Samba at 10.0.75.1 and the
database over 9p, pushes a `cifsmount` item through the real hv_kvp_daemon
as Hyper-V would, and shows the share mounted at /c and /C with a file
written on the host side; then live reload: `moby-agent watch add /C`, a
file edited on the host side and the event an inotify watcher in the guest
gets for it; rc-status and moby-agent status; then powers off.

usage: tests/demo [--shell]     --shell: leave you at a shell in the guest
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.vm.guest import SMB_PASSWORD, SMB_USER, Guest  # noqa: E402
from tests.vm.test_watch import LISTENER  # noqa: E402


def show(guest: Guest, *argv: str) -> None:
    print(f"\n[guest]$ {' '.join(argv)}", flush=True)
    r = guest.run(list(argv))
    print((r.stdout + r.stderr).rstrip(), flush=True)


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
