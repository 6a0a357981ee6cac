import struct

from hypothesis import given
from hypothesis import strategies as st

from agent.notify import ShareWatcher, changed, parse_notify


def record(action, name, last=False):
    raw = name.encode("utf-16-le")
    size = 12 + len(raw)
    size += -size % 4
    body = struct.pack("<III", 0 if last else size, action, len(raw)) + raw
    return body.ljust(size, b"\0")


def test_parse_notify_records():
    data = record(1, "new.js") + record(4, ".app.js.swp") + record(5, "app.js", last=True)
    assert parse_notify(data) == [(1, "new.js"), (4, ".app.js.swp"), (5, "app.js")]


@given(st.binary(max_size=300))
def test_parse_notify_never_raises(data):
    parse_notify(data)


def test_changed_files_and_directories():
    before = {"a.js": (1, 10, False), "b.js": (1, 10, False), "lib": (1, 0, True), "old": (1, 0, True)}
    after = {"a.js": (2, 11, False), "b.js": (1, 10, False), "c.js": (3, 1, False), "lib": (1, 0, True),
             "new": (4, 0, True)}
    assert changed(before, after) == (["a.js", "c.js"], ["new"], ["old"])


def test_the_directory_limit_is_respected_and_reported(tmp_path):
    started = []
    w = ShareWatcher([".git"], max_dirs=2)
    w._watch = started.append  # no blocking notify outside a cifs mount
    for name in ("a", "b", "c"):
        w._add(f"/C/src/{name}")
    assert w.stats.directories == 2 and w.stats.dropped == 1
    assert "limit of 2 watched directories reached" in w.stats.why


def test_a_directory_without_change_notify_is_reported(tmp_path):
    # Outside cifs the ioctl fails: the watcher says so instead of spinning.
    w = ShareWatcher([], max_dirs=10)
    w.set_roots([str(tmp_path)])
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not w.stats.why:
        time.sleep(0.01)
    assert "change notify not available" in w.stats.why
    assert w.stats.directories == 0


def test_without_change_notify_a_rescan_interval_covers_it(tmp_path):
    import time

    w = ShareWatcher([], max_dirs=10, rescan_seconds=0.05)
    (tmp_path / "a.txt").write_text("1")
    w.set_roots([str(tmp_path)])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "rescanned every" not in (w.stats.why or ""):
        time.sleep(0.01)
    assert "rescanned every 0.05 s" in w.stats.why
    (tmp_path / "b.txt").write_text("2")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and w.stats.reemitted == 0:
        time.sleep(0.01)
    assert w.stats.reemitted >= 1 and w.stats.directories == 1
    w.stop()
