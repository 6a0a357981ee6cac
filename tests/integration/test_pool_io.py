"""Pool files with real processes: locks, torn writes, inotify, the loop."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import kvp
from tests.integration.agentproc import AgentProcess
from tests.integration.writer import make_pool_dir

WRITER = Path(__file__).with_name("writer.py")


def writer(path, *args, **kw):
    return subprocess.Popen([sys.executable, str(WRITER), str(path), *args], text=True, **kw)


@pytest.fixture
def root(tmp_path):
    make_pool_dir(tmp_path / "var" / "lib" / "hyperv")
    return tmp_path


def pool0(root):
    return root / "var" / "lib" / "hyperv" / ".kvp_pool_0"


def test_read_waits_for_a_writer_holding_the_lock(tmp_path):
    path = tmp_path / ".kvp_pool_0"
    path.write_bytes(kvp.encode([("old", "1")]))
    w = writer(path, "hold", "0.5", "new=2", "more=3", stdout=subprocess.PIPE)
    assert w.stdout.readline().strip() == "locked"  # half a file is on disk now
    t0 = time.monotonic()
    pool = kvp.read_pool(str(path))
    waited = time.monotonic() - t0
    assert w.wait(5) == 0
    assert pool.items == (("new", "2"), ("more", "3"))
    assert pool.warnings == ()
    assert waited > 0.2


def test_reads_during_rewrites_see_whole_old_or_new_sets(tmp_path):
    from tests.integration.writer import SET_A, SET_B

    path = tmp_path / ".kvp_pool_0"
    path.write_bytes(kvp.encode(SET_A))
    w = writer(path, "flip", "1000000", stdout=subprocess.PIPE)
    assert w.stdout.readline().strip() == "ready"
    seen = {"a": 0, "b": 0}
    start = time.monotonic()
    try:
        # At least 1,000 reads over half a second, and on until both sets
        # were seen (the writer really interleaved).
        while sum(seen.values()) < 1000 or time.monotonic() < start + 0.5 or not all(seen.values()):
            assert time.monotonic() < start + 30, seen
            pool = kvp.read_pool(str(path))
            assert pool.warnings == ()
            if list(pool.items) == SET_A:
                seen["a"] += 1
            else:
                assert list(pool.items) == SET_B
                seen["b"] += 1
    finally:
        w.kill()
        w.wait()


def test_removed_and_recreated_pool_directory_is_picked_up(root):
    agent = AgentProcess(root)
    try:
        pool_dir = root / "var" / "lib" / "hyperv"
        for round_ in range(3):
            subprocess.run(["rm", "-rf", str(pool_dir)], check=True)  # what the init script does
            if round_:
                # The log line first: the status file is written at the end
                # of a pass, so right after "added" it can still say the
                # previous round's "waiting".
                agent.wait_for("item cifsmount removed")
            agent.wait_status(lambda d: d["capabilities"]["pool"]["state"] == "waiting")
            pool_dir.mkdir()
            assert writer(pool_dir / ".kvp_pool_0", "hold", "0", f"cifsmount=/c;/C;password=p{round_}").wait(5) == 0
            agent.wait_for("item cifsmount added")
        # The whole chain of directories can vanish too.
        subprocess.run(["rm", "-rf", str(root / "var" / "lib")], check=True)
        agent.wait_for("item cifsmount removed")
        pool_dir.mkdir(parents=True)
        assert writer(pool_dir / ".kvp_pool_0", "hold", "0", "back=1").wait(5) == 0
        agent.wait_for("item back added")
    finally:
        assert agent.stop() == 0


def test_burst_of_writes_is_coalesced_and_the_last_pass_sees_the_end(root):
    # 100 daemon-style writes 5 ms apart, settle_ms 100: measured 3 to 4
    # passes with coalescing on a loaded 2-core machine (3 to 7 with settle_ms
    # 50 and more load), 71 to 92 with it removed from poolwatch.py. The
    # default settle_ms (1) is too short to tell the two apart on a loaded
    # machine (4-15 passes either way).
    cfg = root / "etc" / "moby-agent" / "agent.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('log_level = "debug"\n[watch]\nsettle_ms = 100\n')
    agent = AgentProcess(root)
    try:
        before = agent.wait_status(lambda d: d["passes"] >= 1)["passes"]
        assert writer(pool0(root), "burst", "100", "5").wait(20) == 0
        while not agent.wait_for("item n ").endswith(": 99"):  # "added: 99" or "changed: 99"
            pass
        time.sleep(0.3)
        passes = agent.status()["passes"] - before
        print("passes for 100 writes:", passes)
        assert 1 <= passes <= 8, passes
        later = agent.drain()
        assert not any("item n " in line for line in later), later  # nothing after the final content
    finally:
        agent.stop()


def test_sigterm_finishes_and_exits_zero_within_a_second(root):
    agent = AgentProcess(root)
    t0 = time.monotonic()
    assert agent.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 1.0
    assert agent.status()["state"] == "stopped"
    agent = AgentProcess(root)
    assert agent.stop(signal.SIGINT) == 0


def test_sighup_rereads_the_config(root):
    """The new setting takes effect (daemon.json rendered to the newly
    configured path); a bad config keeps the previous one."""
    dropins = root / "etc" / "moby-agent" / "daemon.json.d"
    dropins.mkdir(parents=True)
    (dropins / "10.json").write_text('{"debug": true}')
    agent = AgentProcess(root, log_level="info")
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        assert (root / "etc" / "docker" / "daemon.json").exists()
        cfg = root / "etc" / "moby-agent" / "agent.toml"
        cfg.write_text('log_level = "debug"\n[docker]\ndaemon_json = "/etc/docker/reloaded.json"\n')
        agent.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if (root / "etc" / "docker" / "reloaded.json").exists():
                break
            time.sleep(0.05)
        assert '"debug": true' in (root / "etc" / "docker" / "reloaded.json").read_text()
        cfg.write_text("nonsense = 1\n")
        agent.proc.send_signal(signal.SIGHUP)
        line = agent.wait_for("keeping the previous configuration")
        assert "unknown key 'nonsense'" in line
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0


def test_sighup_with_a_huge_integer_keeps_the_agent_and_its_config(root):
    """A 400-digit integer (float() raised OverflowError: the agent exited
    1 with a traceback) is refused and the running config kept."""
    cfg = root / "etc" / "moby-agent" / "agent.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('log_level = "info"\n[docker]\ndaemon_json = "/etc/docker/kept.json"\n')
    (cfg.parent / "daemon.json.d").mkdir()
    (cfg.parent / "daemon.json.d" / "10.json").write_text('{"debug": true}')
    agent = AgentProcess(root, log_level="info")
    kept = root / "etc" / "docker" / "kept.json"
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        assert kept.exists()
        for key in ("[shares]\nmax_id", "[watch]\nmax_dirs", "[watch]\nsettle_ms"):
            cfg.write_text(f'log_level = "info"\n{key} = 1{"0" * 400}\n')
            agent.proc.send_signal(signal.SIGHUP)
            line = agent.wait_for("keeping the previous configuration")
            assert "integer of about 401 digits" in line
        kept.unlink()
        agent.proc.send_signal(signal.SIGHUP)  # a pass: with the kept config, kept.json again
        agent.wait_for("keeping the previous configuration")
        for _ in range(100):
            if kept.exists():
                break
            time.sleep(0.05)
        assert kept.exists() and not (root / "etc" / "docker" / "daemon.json").exists()
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0
    assert "Traceback" not in "\n".join(agent.seen)


def test_idle_agent_never_wakes(root):
    # 6 s: longer than any plausible poll (1, 2, 3 or 5 s), so that a timer
    # in any of the agent's threads is seen; a 3 s select timeout in loop.py
    # fails it.
    agent = AgentProcess(root)
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        time.sleep(0.2)

        def switches():
            total = 0
            for task in Path(f"/proc/{agent.proc.pid}/task").iterdir():
                try:
                    text = (task / "status").read_text()
                except FileNotFoundError:
                    continue  # a thread that ended
                total += int(text.split("voluntary_ctxt_switches:")[1].split()[0])
            return total

        first = switches()
        time.sleep(6)
        assert switches() == first
    finally:
        agent.stop()


def test_health_answers_while_the_loop_runs_and_not_when_stopped(root, agent_env):
    agent = AgentProcess(root)
    cmd = [sys.executable, "-m", "agent", "--root", str(root), "health", "--timeout", "2"]
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        assert subprocess.run(cmd, env=agent_env).returncode == 0
        os.kill(agent.proc.pid, signal.SIGSTOP)  # a loop that is stuck
        r = subprocess.run(cmd, env=agent_env, capture_output=True, text=True)
        assert r.returncode == 1 and "did not answer" in r.stderr
        os.kill(agent.proc.pid, signal.SIGCONT)
        assert subprocess.run(cmd, env=agent_env).returncode == 0
    finally:
        agent.stop()


def test_the_agent_never_creates_a_pool_file(tmp_path):
    """Pool files are hv_kvp_daemon's to create: one the agent created while
    the init script's rm -rf ran made that rm fail ("Directory not empty")."""
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    agent = AgentProcess(tmp_path)
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        assert sorted(p.name for p in pool_dir.iterdir()) == []
        make_pool_dir(pool_dir)  # the daemon starts
        agent.wait_for("pool 1: updated moby-agent.state")
        assert kvp.read_pool(str(pool_dir / ".kvp_pool_1")).get("moby-agent.state") == "running"
        for _ in range(20):  # the init script, many times, while the agent reacts
            subprocess.run(["rm", "-rf", str(pool_dir)], check=True)
            make_pool_dir(pool_dir)
    finally:
        assert agent.stop() == 0


def test_guest_pool_reports_state_once(root):
    agent = AgentProcess(root)
    pool1 = root / "var" / "lib" / "hyperv" / ".kvp_pool_1"
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        assert kvp.read_pool(str(pool1)).as_dict()["moby-agent.state"] == "running"
        mtime = pool1.stat().st_mtime_ns
        for i in range(5):
            assert writer(pool0(root), "hold", "0", f"n={i}").wait(5) == 0
            agent.wait_for(f"item n {'added' if i == 0 else 'changed'}: {i}")
        assert pool1.stat().st_mtime_ns == mtime  # not rewritten per pass
    finally:
        agent.stop()
    assert kvp.read_pool(str(pool1)).as_dict()["moby-agent.state"] == "stopped"


def test_own_guest_pool_writes_do_not_wake_the_agent(root):
    """A pass that changes pool 1 (here: a new item makes the state degraded
    and back) is one pass, not one more for the agent's own write."""
    agent = AgentProcess(root)
    pool1 = root / "var" / "lib" / "hyperv" / ".kvp_pool_1"
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        for i in range(3):
            before = agent.status()["passes"]
            mtime = pool1.stat().st_mtime_ns
            # A rejected item makes shares an error: pool 1's state changes.
            value = "/etc;/x;username=u,password=p" if i % 2 == 0 else "/c;/C;nonsense"
            assert writer(pool0(root), "hold", "0", f"cifsmount={value}").wait(5) == 0
            agent.wait_status(lambda d, b=before: d["passes"] > b)
            time.sleep(0.5)  # any pass the pool 1 write would cause comes in this time
            assert pool1.stat().st_mtime_ns != mtime or i > 0
            assert agent.status()["passes"] == before + 1
        # A direct write to pool 1 (ours or anyone's) is not a reason to run.
        before = agent.status()["passes"]
        assert writer(pool1, "hold", "0", "other=1").wait(5) == 0
        time.sleep(0.5)
        assert agent.status()["passes"] == before
    finally:
        assert agent.stop() == 0


def test_sighup_keeps_the_pool_directory_until_restart(root):
    """kvp.pool_dir applies only at restart: after a SIGHUP that changes it,
    the agent still reads (and is woken by) the old directory."""
    other = root / "var" / "lib" / "other"
    make_pool_dir(other)
    assert writer(pool0(root), "hold", "0", "a=1").wait(5) == 0
    agent = AgentProcess(root)
    try:
        agent.wait_status(lambda d: d["capabilities"]["pool"]["last_action"].startswith("read pool 0: 1 items"))
        cfg = root / "etc" / "moby-agent" / "agent.toml"
        cfg.write_text('log_level = "debug"\n[kvp]\npool_dir = "/var/lib/other"\n')
        agent.proc.send_signal(signal.SIGHUP)
        agent.wait_for("changes only at restart; keeping /var/lib/hyperv")
        agent.wait_for("reload: configuration re-read")
        assert writer(pool0(root), "hold", "0", "a=1", "b=2").wait(5) == 0
        doc = agent.wait_status(lambda d: d["capabilities"]["pool"]["last_action"].startswith("read pool 0: 2 items"))
        assert doc["capabilities"]["pool"]["state"] == "ok"
        assert not [line for line in agent.drain() if "removed" in line]
    finally:
        assert agent.stop() == 0
