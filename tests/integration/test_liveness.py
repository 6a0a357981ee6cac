"""The healthcheck says alive while a pass is busy within its deadline: a
docker restart that takes seconds is not a stuck loop (OpenRC would restart
the agent and cut the docker restart half-way)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.agentproc import REPO, AgentProcess

DB = "com.docker.driver.amd64-linux"


def docker_restart_fixture(root):
    """A root with a database, a stand-in dockerd and a restart command that
    takes 6 s (restart-began and restart-done mark it); returns the dockerd
    process and the database's etc/docker."""
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text(f'com.docker.database="{DB}"\n')
    (root / "proc" / "self" / "mountinfo").write_text("40 1 0:40 / /Database rw - 9p db rw,trans=virtio\n")
    db = root / "Database" / "branch" / "master" / "ro" / DB / "etc" / "docker"
    db.mkdir(parents=True)
    (root / "etc" / "docker").mkdir(parents=True)
    (root / "etc" / "docker" / "daemon.json").write_text('{"debug": false}\n')
    # A stand-in dockerd: a process named dockerd, running from the root.
    (root / "bin").mkdir()
    shutil.copy("/bin/sleep", root / "bin" / "dockerd")
    fake = subprocess.Popen([str(root / "bin" / "dockerd"), "300"])
    (root / "var" / "run").mkdir(parents=True)
    (root / "var" / "run" / "docker.pid").write_text(f"{fake.pid}\n")
    restart = root / "restart-docker"
    restart.write_text(f"#!/bin/sh\ntouch {root}/restart-began\nsleep 6\ntouch {root}/restart-done\n")
    restart.chmod(0o755)
    (root / "etc" / "moby-agent").mkdir(parents=True)
    (root / "etc" / "moby-agent" / "agent.toml").write_text(
        f'log_level = "debug"\n[docker]\nrestart_command = ["{restart}"]\nverify_timeout = 2.0\n')
    return fake, db


def test_health_answers_while_a_docker_restart_is_running(tmp_path, agent_env):
    root = tmp_path
    fake, db = docker_restart_fixture(root)
    agent = AgentProcess(root)
    health = [sys.executable, "-m", "agent", "--root", str(root), "health", "--timeout", "2"]
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        # log-level cannot be reloaded with SIGHUP: a restart.
        (db / "daemon.json").write_text('{"debug": false, "log-level": "warn"}')
        os.kill(agent.proc.pid, 1)  # SIGHUP: a reload, and a pass now
        for _ in range(100):
            if (root / "restart-began").exists():
                break
            time.sleep(0.05)
        assert (root / "restart-began").exists(), agent.drain()
        answers = []
        while not (root / "restart-done").exists():
            r = subprocess.run(health, env=agent_env, capture_output=True, text=True)
            answers.append(r.returncode)
            time.sleep(0.5)
        print("health during a 6 s docker restart:", answers)
        assert answers and all(code == 0 for code in answers), answers
        # Then the pass ends (no dockerd answers here: verified, it is an error).
        doc = agent.wait_status(lambda d: d["capabilities"]["docker_config"]["state"] == "error", timeout=15)
        assert "busy" not in doc and "applied, but" in doc["capabilities"]["docker_config"]["last_error"]
    finally:
        agent.stop()
        fake.kill()
        fake.wait()


@pytest.mark.parametrize("when", ["with the SIGHUP", "while the pass reads"])
def test_a_health_request_during_a_pass_before_its_long_action_is_answered(tmp_path, when):
    """SIGUSR1 in the same wake-up as the SIGHUP that starts a pass, or while
    the pass is still reading (the database's scans slowed to 1 s each),
    before the 6 s docker restart the pass goes on to: answered then, not
    once the pass reaches its action or ends."""
    root = tmp_path
    fake, db = docker_restart_fixture(root)
    slow = {"PYTHONPATH": f"{Path(__file__).parent / 'slowio'}{os.pathsep}{REPO}", "MOBY_SLOW_IO": "scandir",
            "MOBY_SLOW_IO_MS": "1000"}
    agent = AgentProcess(root, env=slow if when == "while the pass reads" else None)
    try:
        doc = agent.wait_status(lambda d: d["passes"] >= 1, timeout=30)
        (db / "daemon.json").write_text('{"debug": false, "log-level": "warn"}')
        before = doc["heartbeat"]
        os.kill(agent.proc.pid, signal.SIGHUP)
        if when == "while the pass reads":
            time.sleep(0.3)  # the reload is done, the pass scans the database
        os.kill(agent.proc.pid, signal.SIGUSR1)
        agent.wait_status(lambda d: d["heartbeat"] != before, timeout=20)
        assert not (root / "restart-began").exists(), "answered only once the pass reached its action"
    finally:
        agent.stop()
        fake.kill()
        fake.wait()
