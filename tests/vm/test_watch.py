"""Live reload on a shared drive: host-side edits reach inotify watchers in
the guest, and in a bind mount in another mount namespace (as a container
has), through the agent's CIFS change-notify re-emission."""

import json
import time

from tests.vm.guest import SMB_PASSWORD, SMB_USER

V1 = f"/c;/C;username={SMB_USER},password={SMB_PASSWORD.replace(',', ',,')},noperm,vers=3.1.1"

LISTENER = """
import os, sys, time
from inotify_simple import INotify, flags
top = sys.argv[1]
ino = INotify()
wds = {ino.add_watch(top, flags.ATTRIB | flags.CREATE | flags.MODIFY | flags.MOVED_TO): top}
print("ready", flush=True)
while True:
    for e in ino.read():
        path = os.path.join(wds.get(e.wd, "?"), e.name)
        if e.mask & flags.ISDIR and path not in wds.values():  # as watchers do: follow new directories
            try:
                wds[ino.add_watch(path, flags.ATTRIB | flags.CREATE | flags.MODIFY | flags.MOVED_TO)] = path
            except OSError:
                pass
        print(f"{time.monotonic():.3f} {os.path.relpath(path, top)}", flush=True)
"""


def events(guest, log):
    out = []
    for line in (guest.read(log) or "").splitlines()[1:]:
        t, _, name = line.partition(" ")
        out.append((float(t), name))
    return out



def guest_monotonic(guest):
    return float(guest.run(["python3", "-c", "import time; print(time.monotonic())"]).stdout)


def test_host_edits_reach_guest_watchers(guest):
    if " /C " not in guest.read("/proc/self/mountinfo"):
        guest.kvp.set(0, "cifsmount", V1)
        guest.wait(lambda: " /C " in guest.read("/proc/self/mountinfo"), timeout=20, what="the share")
    src = guest.share / "src"
    src.mkdir(exist_ok=True)
    (src / "app.js").write_text("v0\n")
    guest.run(["sh", "-c", "cat > /tmp/listener.py"], input=LISTENER)
    guest.sh("(python3 /tmp/listener.py /C/src > /tmp/local.log 2>&1 &);"
             " mkdir -p /mnt/ctr; (unshare -m sh -c 'mount --bind /C/src /mnt/ctr &&"
             " exec python3 /tmp/listener.py /mnt/ctr' > /tmp/ctr.log 2>&1 &)")
    guest.wait(lambda: all("ready" in (guest.read(f) or "") for f in ("/tmp/local.log", "/tmp/ctr.log")),
               timeout=20, what="the listeners")
    assert guest.run(["moby-agent", "watch", "add", "/C/src"]).returncode == 0
    guest.wait(lambda: json.loads(guest.read("/run/moby-agent/status.json")).get("watch", {}).get("directories"),
               timeout=10, what="the watch to start")
    time.sleep(1)

    def edit_and_wait(what, edit, name):
        t0 = guest_monotonic(guest)
        edit()
        start = time.monotonic()
        for log in ("/tmp/local.log", "/tmp/ctr.log"):
            guest.wait(lambda log=log: any(t > t0 and n == name for t, n in events(guest, log)), timeout=5,
                       what=f"{what} seen in {log}")
        took = min(t for t, n in events(guest, "/tmp/local.log") if t > t0 and n == name) - t0
        print(f"{what}: guest watcher saw it {took * 1000:.0f} ms after the host edit "
              f"(harness wait {time.monotonic() - start:.1f} s)")
        assert took < 1.0, f"{what}: {took:.2f} s"

    edit_and_wait("created on the host", lambda: (src / "new.js").write_text("x\n"), "new.js")
    edit_and_wait("appended to", lambda: open(src / "app.js", "a").write("more\n"), "app.js")

    def editor_save():
        (src / ".app.js.swp").write_text("saved\n")
        (src / ".app.js.swp").rename(src / "app.js")

    edit_and_wait("replaced by rename", editor_save, "app.js")

    def new_subdir():
        (src / "lib").mkdir()
        (src / "lib" / "util.js").write_text("u\n")

    edit_and_wait("a new subdirectory", new_subdir, "lib")

    # A burst: every changed file is re-emitted at least once.
    t0 = guest_monotonic(guest)
    for i in range(100):
        (src / f"burst{i:03d}.js").write_text(str(i))
    names = {f"burst{i:03d}.js" for i in range(100)}
    try:
        guest.wait(lambda: names <= {n for t, n in events(guest, "/tmp/local.log") if t > t0}, timeout=30,
                   what="all 100 burst files re-emitted")
    except AssertionError:
        seen = {n for t, n in events(guest, "/tmp/local.log") if t > t0}
        print("missing:", sorted(names - seen)[:20], len(names - seen))
        print(guest.read("/run/moby-agent/status.json"))
        raise

    # Quiet stays quiet: no CPU for the agent while nothing changes, no loop.
    status = json.loads(guest.read("/run/moby-agent/status.json"))
    pid = status["pid"]
    time.sleep(2)

    def cpu():
        fields = guest.read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before, count = cpu(), len(events(guest, "/tmp/local.log"))
    time.sleep(4)
    assert cpu() - before <= 1, "the agent used CPU on a quiet share"
    assert len(events(guest, "/tmp/local.log")) == count, "events on a quiet share: a loop"
    shown = guest.run(["moby-agent", "status"]).stdout
    assert "watch" in shown and "/C/src" in shown and "re-emitted" in shown
    guest.sh("pkill -f /tmp/listener.py")
