"""The healthcheck says alive while a pass is busy within its deadline: a
docker restart that takes seconds is not a stuck loop (OpenRC would restart
the agent and cut the docker restart half-way)."""

import os
import shutil
import subprocess
import sys
import time

from tests.integration.agentproc import AgentProcess

DB = "com.docker.driver.amd64-linux"


def test_health_answers_while_a_docker_restart_is_running(tmp_path, agent_env):
    root = tmp_path
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
