"""No echo, ever, and the kernels' two change-notify ioctls, with a fake
change source in place of the server: wait_for_change / wait_for_notify
replaced by a queue the test (the "host") and a fake server fill."""

import errno
import os
import queue
import threading
import time

import pytest
from inotify_simple import INotify, flags

from agent.livereload import watcher
from agent.livereload.watcher import ShareWatcher


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("not reached")


class FakeServer:
    """The change source: host edits, and, like a Windows server, every
    chmod the agent makes reported back as a metadata change of that file
    (FILE_ACTION_MODIFIED with its name)."""

    def __init__(self, top, echo=True):
        self.replies = queue.Queue()
        self.waiting = threading.Event()
        self.calls = {"info": 0, "notify": 0}
        self.echoes = 0
        self._ino = INotify()
        self._ino.add_watch(str(top), flags.ATTRIB)
        self._stop = False
        if echo:
            threading.Thread(target=self._echo, daemon=True).start()

    def _echo(self):
        while not self._stop:
            for e in self._ino.read(timeout=100):
                self.echoes += 1
                self.replies.put([(3, e.name)])  # the agent's SET_INFO, reported back

    def info(self, fd, tree=False):
        self.calls["info"] += 1
        self.tree = tree
        self.waiting.set()
        return self.replies.get()

    def notify(self, fd, tree=False):
        self.calls["notify"] += 1
        self.waiting.set()
        self.replies.get()
        return []  # no names: the rescan finds what changed

    def host_edit(self, path, text):
        path.write_text(text)
        self.replies.put([(3, path.name)])

    def close(self):
        self._stop = True
        self.replies.put([])


@pytest.fixture
def share(tmp_path, monkeypatch):
    (tmp_path / "a.js").write_text("1")
    server = FakeServer(tmp_path)
    monkeypatch.setattr(watcher, "wait_for_change", server.info)
    monkeypatch.setattr(watcher, "wait_for_notify", server.notify)
    monkeypatch.setattr(watcher, "SETTLE", 0.05)
    made = []

    def start(**kw):
        w = ShareWatcher(kw.pop("skip", []), max_dirs=10, under=lambda p: str(tmp_path) + p[len("/C"):], **kw)
        w.local.recent = lambda path, name: False  # the fake host's writes are not the guest's
        w.set_roots(["/C"])
        made.append(w)
        return w

    yield tmp_path, server, start
    for w in made:
        w.release("/C", timeout=0.1)
        w.stop()
    server.close()


def test_an_echo_of_the_agent_s_own_chmod_is_never_re_emitted(share):
    top, server, start = share
    w = start()
    wait_for(server.waiting.is_set)
    server.host_edit(top / "a.js", "22")
    wait_for(lambda: w.stats.reemitted == 1)
    wait_for(lambda: w.stats.echoes >= 1)  # the server reported our chmod back
    time.sleep(1.0)  # without the guard: re-emit, echo, re-emit... for as long as we wait
    assert w.stats.reemitted == 1 and server.echoes == 1
    server.host_edit(top / "a.js", "333")  # a real change after the echo still goes through
    wait_for(lambda: w.stats.reemitted == 2)
    time.sleep(0.5)
    assert w.stats.reemitted == 2 and server.echoes == 2


def test_a_kernel_without_notify_info_uses_notify_and_the_rescan_finds_the_change(share, monkeypatch):
    top, server, start = share

    def no_such_ioctl(fd):
        server.calls["info"] += 1
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    monkeypatch.setattr(watcher, "wait_for_change", no_such_ioctl)
    w = start()
    wait_for(lambda: server.calls["notify"] >= 1)
    assert server.calls["info"] == 1  # asked once, then never again
    assert w.stats.notify.startswith("CIFS_IOC_NOTIFY (no names")
    (top / "b.js").write_text("new")
    server.replies.put([])
    wait_for(lambda: w.stats.reemitted >= 1)
    assert not w.stats.why


def test_the_fallback_can_be_forced_and_so_can_the_rescan(share):
    top, server, start = share
    w = start(notify="notify")
    wait_for(lambda: server.calls["notify"] >= 1)
    assert server.calls["info"] == 0
    w.release("/C")
    calls = dict(server.calls)
    w = start(notify="rescan", rescan_seconds=0.1)
    assert w.stats.notify == "no change notify asked for: rescanned every 0.1 s"
    time.sleep(0.5)  # its first listing made (a file there before it is not a change)
    (top / "c.js").write_text("new")
    wait_for(lambda: w.stats.reemitted >= 1)
    assert server.calls == calls  # no ioctl at all


@pytest.mark.parametrize("err, words", [
    (errno.ENOTTY, "this kernel has no SMB change notify (CIFS_IOC_NOTIFY needs Linux 5.6"),
    (errno.EOPNOTSUPP, "the server does not offer change notify"),
])
def test_no_change_notify_is_said_in_plain_words(share, monkeypatch, err, words):
    top, server, start = share

    def refuse(fd):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(watcher, "wait_for_change", refuse)
    monkeypatch.setattr(watcher, "wait_for_notify", refuse)
    w = start()
    wait_for(lambda: w.stats.why is not None and "not watched" in w.stats.why)
    assert f"/C: change notify not available: {words}" in w.stats.why
    # The kernel's lack is every directory's: the status's notify line says it too.
    assert w.stats.notify.startswith("none: ") == (err == errno.ENOTTY)


@pytest.mark.parametrize("notify, level", [
    ("CIFS_IOC_NOTIFY (no names: each reply is followed by a rescan)", "OK"),
    ("none: this kernel has no SMB change notify (CIFS_IOC_NOTIFY needs Linux 5.6, CIFS_IOC_NOTIFY_INFO 6.1; "
     "Inappropriate ioctl for device)", "WARN"),
])
def test_doctor_says_how_changes_are_heard(tmp_path, monkeypatch, notify, level):
    import json

    from agent import doctor, status
    from agent.agentconfig import AgentConfig

    (tmp_path / "run" / "moby-agent").mkdir(parents=True)
    (tmp_path / "run" / "moby-agent" / "status.json").write_text(json.dumps(
        {"pid": 42, "state": "running", "capabilities": {}, "watch": {"roots": ["/c"], "notify": notify}}))
    monkeypatch.setattr(status, "running_pid", lambda doc, root: 42)
    checks = [c for c in doctor.Doctor(AgentConfig(), str(tmp_path)).agent() if c.name == "watch-notify"]
    assert [(c.level, c.text) for c in checks] == [(level, notify)]


def test_a_tree_watch_is_one_request_for_the_whole_tree(share):
    """watch.tree: one WATCH_TREE request on the root; the reply's relative
    names say which directories to rescan; an empty reply (the server's
    buffer overflowed) rescans them all."""
    top, server, start = share
    (top / "sub" / "deep").mkdir(parents=True)
    (top / "sub" / "deep" / "x.js").write_text("1")
    (top / "node_modules" / "pkg").mkdir(parents=True)
    w = start(tree=True, skip=["node_modules", ".git"])
    wait_for(server.waiting.is_set)
    wait_for(lambda: w.stats.directories == 3)  # /C, sub, sub/deep; node_modules skipped
    assert server.tree is True
    assert [t.name for t in threading.enumerate() if t.name.startswith("watch ")] == ["watch /C"]
    (top / "sub" / "deep" / "x.js").write_text("22")
    server.replies.put([(3, "sub\\deep\\x.js")])
    wait_for(lambda: w.stats.reemitted == 1)
    (top / "sub" / "new").mkdir()
    (top / "sub" / "new" / "n.js").write_text("n")
    server.replies.put([(1, "sub\\new"), (1, "sub\\new\\n.js")])
    wait_for(lambda: w.stats.directories == 4)
    wait_for(lambda: w.stats.reemitted >= 3)  # the new directory and its file
    (top / "sub" / "deep" / "y.js").write_text("y")
    before = w.stats.reemitted
    server.replies.put([])  # overflow: no names
    wait_for(lambda: w.stats.reemitted > before)
    import shutil

    shutil.rmtree(top / "sub")
    server.replies.put([(2, "sub")])
    wait_for(lambda: w.stats.directories == 1)
    assert [t.name for t in threading.enumerate() if t.name.startswith("watch ")] == ["watch /C"]
