"""Files the agent writes: exclusive temporaries and atomic replacement."""

import os
import stat

from agent.system import create_exclusive, write_atomic


def test_create_exclusive_makes_a_new_private_file_each_time(tmp_path):
    old = os.umask(0)
    try:
        made = [create_exclusive(str(tmp_path), ".credentials-") for _ in range(50)]
    finally:
        os.umask(old)
    for fd, path in made:
        os.close(fd)
        assert os.path.basename(path).startswith(".credentials-")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len({path for _, path in made}) == 50


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "daemon.json"
    target.write_text("old")
    (tmp_path / ".daemon.json.tmp-dead").write_text("left by a killed write")
    write_atomic(str(target), b'{"debug": true}\n', 0o644)
    assert target.read_bytes() == b'{"debug": true}\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]


def test_seconds_since_start_from_ticks_and_uptime():
    from agent.system import seconds_since_start

    assert seconds_since_start(250, "12.50 40.00\n", 100) == 10.0
    assert seconds_since_start(2000, "12.50 40.00\n", 100) == 0.0  # never negative
    assert seconds_since_start(None, "12.50 40.00", 100) is None
    assert seconds_since_start(250, "", 100) is None
    assert seconds_since_start(250, "x y", 100) is None
    assert seconds_since_start(250, "12.5", 0) is None
