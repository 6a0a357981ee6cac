"""`moby-agent doctor` against real files, processes and a private network."""

import subprocess
import sys
import textwrap

from agent import kvp
from tests.conftest import require_root


def doctor(root, *, netns_script="", agent_env=None):
    """Run doctor inside a new network namespace (only loopback unless the
    script adds more), so no probe can leave this machine."""
    cmd = f"{sys.executable} -m agent --root {root} doctor"
    script = f"ip link set lo up; {netns_script}\n{cmd}; rc=$?; kill $(jobs -p) 2>/dev/null; exit $rc"
    return subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, env=agent_env)


def test_fixture_root_reports_each_check(tmp_path, agent_env):
    require_root()
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    (pool_dir / ".kvp_pool_0").write_bytes(kvp.encode([("cifsmount", "/c;/C;username=u,password=pw,noperm")]))
    (tmp_path / "etc" / "docker").mkdir(parents=True)
    (tmp_path / "etc" / "docker" / "daemon.json").write_text("{not json")
    r = doctor(tmp_path, agent_env=agent_env)
    assert r.returncode == 1
    out = r.stdout
    assert "FAIL  vmbus" in out
    assert "OK    pools        pool 0 parses: 1 items" in out
    assert "OK    cifsmount" in out
    assert "FAIL  daemon.json" in out and "not valid JSON" in out
    assert "pw" not in out.replace("pools", "")


def test_host_checks_in_a_private_network(tmp_path, agent_env):
    require_root()
    # 10.0.75.1 exists only inside this namespace; nothing leaves it.
    net = "ip addr add 10.0.75.1/24 dev lo"
    r = doctor("/", netns_script=net, agent_env=agent_env)
    assert "OK    host         10.0.75.1 is on-link" in r.stdout
    assert "FAIL  smb" in r.stdout
    listen = textwrap.dedent(
        f"""\
        {sys.executable} -c 'import socket,time
        s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("10.0.75.1", 445)); s.listen(); time.sleep(30)' >/dev/null 2>&1 &
        sleep 0.5
        """
    )
    r = doctor("/", netns_script=net + "\n" + listen, agent_env=agent_env)
    assert "OK    smb          10.0.75.1:445 answers" in r.stdout
    r = doctor("/", agent_env=agent_env)
    assert "FAIL  host         no route to 10.0.75.1" in r.stdout
