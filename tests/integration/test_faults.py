"""Faults a real guest throws at the agent, each with its recovery time
printed (figures in docs/reliability.md)."""

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import require_root
from tests.integration.agentproc import AgentProcess
from tests.integration.writer import write_items


def test_inotify_queue_overflow_forces_a_full_pass(tmp_path):
    require_root()
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    old = knob.read_text()
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    knob.write_text("16\n")  # taken when the agent's inotify instance is created
    try:
        agent = AgentProcess(tmp_path)
    finally:
        knob.write_text(old)
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        os.kill(agent.proc.pid, signal.SIGSTOP)
        for i in range(100):  # distinct names: the kernel merges identical consecutive events
            (pool_dir / f".kvp_pool_junk{i}").write_text("x")
            (pool_dir / f".kvp_pool_junk{i}").unlink()
            write_items(pool_dir / ".kvp_pool_0", [("n", str(i))])
        t0 = time.monotonic()
        os.kill(agent.proc.pid, signal.SIGCONT)
        agent.wait_for("inotify queue overflowed")
        agent.wait_for("item n added: 99")
        print(f"inotify overflow: final state seen {1000 * (time.monotonic() - t0):.0f} ms after the agent resumed")
    finally:
        agent.stop()


def test_a_full_run_is_survived_and_recovered(tmp_path):
    require_root()
    run = tmp_path / "run"
    run.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(run)], check=True)
    try:
        (tmp_path / "var" / "lib" / "hyperv").mkdir(parents=True)
        agent = AgentProcess(tmp_path)
        try:
            agent.wait_status(lambda d: d["passes"] >= 1)
            filler = run / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=64"], capture_output=True)
            write_items(tmp_path / "var" / "lib" / "hyperv" / ".kvp_pool_0", [("a", "1")])
            agent.wait_for("cannot write status file")
            assert agent.proc.poll() is None  # still running
            filler.unlink()
            t0 = time.monotonic()
            write_items(tmp_path / "var" / "lib" / "hyperv" / ".kvp_pool_0", [("a", "2")])
            agent.wait_status(lambda d: d["capabilities"]["pool"]["last_action"].startswith("read pool 0: 1 items")
                              and d["passes"] >= 3)
            print(f"full /run: status written again {1000 * (time.monotonic() - t0):.0f} ms after space came back")
        finally:
            assert agent.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(run)], check=False)


def test_pool_directory_deleted_and_recreated_recovery_time(tmp_path):
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    agent = AgentProcess(tmp_path)
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        subprocess.run(["rm", "-rf", str(pool_dir)], check=True)
        agent.wait_status(lambda d: d["capabilities"]["pool"]["state"] == "waiting")
        t0 = time.monotonic()
        pool_dir.mkdir()
        write_items(pool_dir / ".kvp_pool_0", [("back", "1")])
        agent.wait_for("item back added")
        print(f"pool directory recreated: item seen {1000 * (time.monotonic() - t0):.0f} ms later")
    finally:
        agent.stop()
