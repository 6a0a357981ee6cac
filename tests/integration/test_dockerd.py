"""daemon.json applied to a real dockerd (Debian's docker.io) running in its
own mount and network namespaces, with private sockets and data root."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from agent.settings.dockerapi import DockerAPI
from tests.conftest import REPO, require_root

DB = "com.docker.driver.amd64-linux"


class Dockerd:
    def __init__(self, root):
        self.root = root
        self.log = root / "dockerd.log"
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--fork", "--kill-child", "sh", "-c",
             "mount --make-rprivate / && ip link set lo up && echo ready && exec sleep 2147483647"],
            stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready"
        self.ns_pid = int(open(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children").read().split()[0])
        self.pidfile = root / "var" / "run" / "docker.pid"
        self.socket = root / "var" / "run" / "docker.sock"
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.start_script = root / "start-dockerd"
        self.start_script.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            # restart: stop the running dockerd (if any), start a new one in the same namespaces
            if [ -s {self.pidfile} ]; then
                pid=$(cat {self.pidfile}); kill $pid 2>/dev/null
                while kill -0 $pid 2>/dev/null; do sleep 0.1; done
            fi
            nsenter -t {self.ns_pid} -m -n -- setsid dockerd --iptables=false --ip6tables=false --bridge=none \\
              --storage-driver=vfs --data-root {root}/data --exec-root {root}/exec -H unix://{self.socket} \\
              --pidfile {self.pidfile} --config-file {root}/etc/docker/daemon.json >>{self.log} 2>&1 </dev/null &
            for i in $(seq 1 100); do [ -S {self.socket} ] && [ -s {self.pidfile} ] && exit 0; sleep 0.1; done
            exit 1
            """))
        self.start_script.chmod(0o755)

    def start(self):
        self.socket.unlink(missing_ok=True)
        subprocess.run([str(self.start_script)], check=True, timeout=30)
        api = DockerAPI(str(self.socket))
        for _ in range(100):
            try:
                if api.ping():
                    return
            except Exception:
                time.sleep(0.1)
        raise AssertionError("dockerd did not answer: " + self.log.read_text()[-2000:])

    def pid(self):
        return int(self.pidfile.read_text())

    def info(self):
        api = DockerAPI(str(self.socket))
        try:
            return api.info()
        finally:
            api.close()

    def stop(self):
        if self.pidfile.exists():
            subprocess.run(["kill", self.pidfile.read_text().strip()], capture_output=True)
            time.sleep(0.5)
        self.holder.kill()
        self.holder.wait()
        shutil.rmtree(self.root / "data", ignore_errors=True)


@pytest.fixture
def docker_root(tmp_path):
    require_root()
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed (Debian's docker.io)")
    root = tmp_path
    (root / "etc" / "docker").mkdir(parents=True)
    (root / "etc" / "docker" / "daemon.json").write_text('{"debug": false}\n')
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text(f'console=ttyS0 com.docker.database="{DB}" mobyplatform=windows\n')
    # The mount table says the database is mounted (the real 9p mount is the VM tier's).
    (root / "proc" / "self" / "mountinfo").write_text("40 1 0:40 / /Database rw - 9p db rw,trans=virtio\n")
    db = root / "Database" / "branch" / "master" / "ro" / DB
    (db / "etc" / "docker").mkdir(parents=True)
    d = Dockerd(root)
    (root / "etc" / "moby-agent").mkdir(parents=True)
    (root / "etc" / "moby-agent" / "agent.toml").write_text(
        f'[docker]\nrestart_command = ["{d.start_script}"]\nverify_timeout = 20.0\n')
    d.start()
    yield root, db, d
    d.stop()


def agent_once(root):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "agent", "--root", str(root), "run", "--once"], env=env,
                          capture_output=True, text=True, timeout=120)


def status(root):
    return json.loads((root / "run" / "moby-agent" / "status.json").read_text())


def test_reloadable_change_is_applied_with_sighup_and_verified(docker_root):
    root, db, d = docker_root
    pid = d.pid()
    assert d.info()["Debug"] is False
    (db / "etc" / "docker" / "daemon.json").write_text('{"debug": true, "registry-mirrors": ["https://mirror.test"]}')
    (db / "insecure-registry").write_text("reg.test:5000\n")
    r = agent_once(root)
    assert r.returncode == 0, r.stderr
    written = json.loads((root / "etc" / "docker" / "daemon.json").read_text())
    assert written == {"debug": True, "registry-mirrors": ["https://mirror.test"],
                       "insecure-registries": ["reg.test:5000"]}
    info = d.info()
    assert d.pid() == pid  # reloaded, not restarted
    assert info["Debug"] is True
    assert info["RegistryConfig"]["IndexConfigs"]["reg.test:5000"]["Secure"] is False
    assert "https://mirror.test/" in info["RegistryConfig"]["Mirrors"]
    cap = status(root)["capabilities"]["docker_config"]
    assert cap["state"] == "ok" and "reload-docker (applied and verified)" in cap["last_action"]
    # Applied: a second pass has nothing to do.
    mtime = (root / "etc" / "docker" / "daemon.json").stat().st_mtime_ns
    assert agent_once(root).returncode == 0
    assert (root / "etc" / "docker" / "daemon.json").stat().st_mtime_ns == mtime


def test_a_key_sighup_cannot_reload_restarts_dockerd(docker_root):
    root, db, d = docker_root
    pid = d.pid()
    (db / "etc" / "docker" / "daemon.json").write_text('{"debug": true, "log-level": "warn"}')
    r = agent_once(root)
    assert r.returncode == 0, r.stderr
    assert d.pid() != pid
    assert d.info()["Debug"] is True
    assert "restart-docker (applied and verified)" in status(root)["capabilities"]["docker_config"]["last_action"]


def test_broken_database_file_leaves_dockerd_on_the_old_config(docker_root):
    root, db, d = docker_root
    before = (root / "etc" / "docker" / "daemon.json").read_text()
    pid = d.pid()
    for bad in ('{"debug": tru', '{"debug": "yes"}', '{"no-such-key": 1}'):
        (db / "etc" / "docker" / "daemon.json").write_text(bad)
        agent_once(root)
        assert (root / "etc" / "docker" / "daemon.json").read_text() == before
        assert d.pid() == pid and d.info()["Debug"] is False
        cap = status(root)["capabilities"]["docker_config"]
        assert cap["state"] == "error" and "daemon.json not changed" in cap["last_error"]


def test_dockerd_itself_refuses_what_the_agent_refuses(docker_root, tmp_path):
    """The schema's claim, checked against the real dockerd 20.10: an unknown
    key or a wrong type keeps it from starting."""
    root, db, d = docker_root
    for bad in ('{"no-such-key": 1}', '{"debug": "yes"}'):
        cfg = tmp_path / "bad.json"
        cfg.write_text(bad)
        r = subprocess.run(["nsenter", "-t", str(d.ns_pid), "-m", "-n", "--", "dockerd", "--config-file", str(cfg),
                            "--data-root", str(tmp_path / "d2"), "--exec-root", str(tmp_path / "e2"), "-H",
                            f"unix://{tmp_path}/d2.sock", "--pidfile", str(tmp_path / "d2.pid")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        with pytest.raises(Exception):
            from agent.settings.daemonjson import Layers, render
            render(Layers(database=bad))


def test_dockerd_stopped_mid_run_gets_the_file_and_uses_it_at_its_next_start(docker_root):
    root, db, d = docker_root
    pid = d.pid()
    subprocess.run(["kill", str(pid)], check=True)
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.1)
    (db / "etc" / "docker" / "daemon.json").write_text('{"debug": true}')
    r = agent_once(root)
    assert r.returncode == 0, r.stderr
    assert json.loads((root / "etc" / "docker" / "daemon.json").read_text()) == {"debug": True}
    assert "dockerd not running" in status(root)["capabilities"]["docker_config"]["last_action"]
    t0 = time.monotonic()
    d.start()
    assert d.info()["Debug"] is True
    print(f"dockerd stopped mid-run: answering with the new config {time.monotonic() - t0:.1f} s after its start")


def _dockerd_reads(tmp_path, name, doc):
    """Start the real dockerd on `doc` plus a sentinel value its validation
    refuses (max-concurrent-downloads -1): the sentinel's error means every
    key was known and every value of a type dockerd took; nothing starts.
    The paths dockerd would use are the doc's, never the system's."""
    d = tmp_path / name
    d.mkdir()
    full = {"data-root": str(d / "data"), "exec-root": str(d / "exec"), "pidfile": str(d / "pid"),
            "hosts": [f"unix://{d}/s.sock"], **doc, "max-concurrent-downloads": -1}
    if "graph" in doc:  # its old name: dockerd refuses both
        full["graph"] = full.pop("data-root")
    (d / "daemon.json").write_text(json.dumps(full))
    return subprocess.Popen(["unshare", "--mount", "--net", "--fork", "--kill-child", "timeout", "20", "dockerd",
                             "--config-file", str(d / "daemon.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


SENTINEL = "invalid max concurrent downloads: -1"


def test_every_key_the_agent_knows_for_20_10_is_accepted_by_the_real_dockerd(tmp_path):
    """The agent's 20.10 key list (daemonjson.SCHEMA), each key with a value
    the agent accepts, against Debian's dockerd 20.10, which fails fast at
    start on an unknown key or a wrong type; an unknown key is refused."""
    require_root()
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed (Debian's docker.io)")
    from agent.settings import daemonjson
    from tests.daemonjson_samples import sample

    keys = [k for k in sorted(daemonjson.SCHEMA) if k not in ("data-root", "exec-root", "pidfile", "hosts",
                                                              "max-concurrent-downloads")]
    outputs = {}
    for i in range(0, len(keys), 16):
        procs = {k: _dockerd_reads(tmp_path, f"k{i + j}", {k: sample(k)}) for j, k in enumerate(keys[i:i + 16])}
        for k, p in procs.items():
            outputs[k] = p.communicate(timeout=60)[0]
    refused = {k: out.strip().splitlines()[-1:] for k, out in outputs.items() if SENTINEL not in out}
    assert refused == {}, refused
    for k in ("data-root", "hosts"):  # given in every run above
        assert k in daemonjson.SCHEMA
    out = _dockerd_reads(tmp_path, "unknown", {"no-such-key": 1}).communicate(timeout=60)[0]
    assert "don't match any configuration option: no-such-key" in out and SENTINEL not in out
    out = _dockerd_reads(tmp_path, "badtype", {"debug": "yes"}).communicate(timeout=60)[0]
    assert SENTINEL not in out
