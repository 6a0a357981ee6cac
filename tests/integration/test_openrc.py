"""The project's OpenRC scripts under Debian's real OpenRC (supervise-daemon)."""

import textwrap
import time

import pytest

from tests.conftest import require_root
from tests.integration.openrc_ns import Chroot, agent_pids, build_rootfs, make_install

FAST = textwrap.dedent(
    """\
    respawn_delay=1
    respawn_max=3
    respawn_period=30
    healthcheck_delay=2
    healthcheck_timer=2
    health_timeout=2
    retry="TERM/2/KILL/2"
    """
)


@pytest.fixture(scope="module")
def base():
    require_root()
    return build_rootfs()


@pytest.fixture(scope="module")
def stage(base, tmp_path_factory):
    stage = tmp_path_factory.mktemp("stage")
    make_install(stage)
    with open(stage / "etc" / "conf.d" / "moby-agent", "a") as f:
        f.write(FAST)
    return stage


@pytest.fixture
def ch(base, stage, tmp_path):
    ch = Chroot(base, stage, tmp_path / "ov")
    ch.run("/bin/busybox", "syslogd", "-O", "/var/log/messages", check=True)
    # It forks before binding /dev/log: a message sent before that is lost.
    ch.wait(lambda: ch.run("test", "-S", "/dev/log").returncode == 0, timeout=10, what="syslogd's /dev/log")
    ch.run("rc-update", "add", "moby-agent", "default", check=True)
    ch.run("rc-update", "add", "hv_kvp_daemon", "default", check=True)
    yield ch
    ch.close()


def start(ch):
    r = ch.run("rc-service", "moby-agent", "start")
    assert r.returncode == 0, r.stdout + r.stderr
    pid = ch.wait(lambda: agent_pids(ch), what="the agent process")[0]
    ch.wait(lambda: status_pid(ch) == pid, what="the agent's first status")
    return pid


def status_pid(ch):
    import json

    text = ch.read("/run/moby-agent/status.json")
    return json.loads(text)["pid"] if text else None


def test_start_shows_started_and_status_works(ch):
    pid = start(ch)
    assert ch.service_state("moby-agent") == "started"
    r = ch.run("rc-service", "moby-agent", "status")
    assert r.returncode == 0 and "started" in r.stdout
    r = ch.run("moby-agent", "status")
    assert "moby-agent 0." in r.stdout and f"pid {pid}" in r.stdout


def test_kill_9_respawns_and_never_shows_crashed(ch):
    """rc-status sampled through the whole respawn window (respawn_delay 1 s,
    then the new agent's start), not only before and after it."""
    pid = start(ch)
    ch.run("kill", "-9", str(pid), check=True)
    samples = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:
        samples.append(ch.service_state("moby-agent"))
    new = ch.wait(lambda: [p for p in agent_pids(ch) if p != pid], what="a respawned agent")[0]
    ch.wait(lambda: status_pid(ch) == new, what="the new agent's status")
    samples.append(ch.service_state("moby-agent"))
    print(f"rc-status sampled {len(samples)} times over the respawn window: {sorted(set(samples))}")
    assert len(samples) >= 10 and set(samples) == {"started"}, samples


def test_a_stuck_loop_is_caught_by_the_healthcheck(ch):
    pid = start(ch)
    ch.run("kill", "-STOP", str(pid), check=True)  # alive, but its loop is stuck
    new = ch.wait(lambda: [p for p in agent_pids(ch) if p != pid], timeout=30, what="a restart")[0]
    assert pid not in agent_pids(ch)
    assert ch.service_state("moby-agent") == "started"
    ch.wait(lambda: status_pid(ch) == new, what="the new agent's status")
    assert "healthcheck failed" in (ch.read("/var/log/messages") or "")


def test_reload_rereads_the_config(ch):
    """The new setting takes effect: after the reload, daemon.json is
    rendered to the newly configured path."""
    ch.sh("mkdir -p /etc/moby-agent/daemon.json.d && echo '{\"debug\": true}' > /etc/moby-agent/daemon.json.d/10.json",
          check=True)
    pid = start(ch)
    ch.wait(lambda: ch.read("/etc/docker/daemon.json"), what="daemon.json rendered")
    assert ch.read("/etc/docker/reloaded.json") is None
    ch.sh("printf '[docker]\\ndaemon_json = \"/etc/docker/reloaded.json\"\\n' > /etc/moby-agent/agent.toml", check=True)
    r = ch.run("rc-service", "moby-agent", "reload")
    assert r.returncode == 0, r.stdout + r.stderr
    ch.wait(lambda: '"debug": true' in (ch.read("/etc/docker/reloaded.json") or ""), what="the reloaded setting in use")
    assert agent_pids(ch) == [pid]  # reloaded, not restarted
    ch.sh("rm -rf /etc/moby-agent/daemon.json.d/10.json /etc/docker/reloaded.json /etc/docker/daemon.json; "
          "rm -f /etc/moby-agent/agent.toml")


def test_stop_leaves_no_process(ch):
    start(ch)
    r = ch.run("rc-service", "moby-agent", "stop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert agent_pids(ch) == []
    assert not [p for p, args in ch.processes() if "supervise-daemon" in args]
    assert ch.service_state("moby-agent") == "stopped"
    assert '"state": "stopped"' in (ch.read("/run/moby-agent/status.json") or "")


def test_restart_gives_a_new_agent(ch):
    pid = start(ch)
    assert ch.run("rc-service", "moby-agent", "restart").returncode == 0
    new = ch.wait(lambda: [p for p in agent_pids(ch) if p != pid], what="the restarted agent")
    assert len(new) == 1 and ch.service_state("moby-agent") == "started"


def test_hv_kvp_daemon_without_vmbus_is_stopped_not_crashed(ch):
    r = ch.run("rc-service", "hv_kvp_daemon", "start")
    assert r.returncode != 0
    assert "no VMBus KVP device /dev/vmbus/hv_kvp" in r.stdout + r.stderr
    assert ch.service_state("hv_kvp_daemon") == "stopped"
    assert not [p for p, args in ch.processes() if "hv_kvp_daemon" in args]


def test_a_crash_loop_ends_failed_with_a_message(ch):
    ch.sh("echo 'broken = true' > /etc/moby-agent/agent.toml", check=True)
    ch.run("rc-service", "moby-agent", "start")
    ch.wait(lambda: ch.service_state("moby-agent") == "failed", timeout=30, what="the service to fail")
    assert agent_pids(ch) == []
    message = 'respawned "/usr/bin/moby-agent" too many times, exiting'
    try:
        ch.wait(lambda: message in (ch.read("/var/log/messages") or ""), timeout=20,
                what="the supervisor's message in syslog")
    except AssertionError as exc:  # say what was there (it failed once in CI-like runs, unexplained)
        raise AssertionError(f"{exc}\n/var/log/messages:\n{ch.read('/var/log/messages')}\nprocesses: "
                             f"{ch.processes()}") from None
    assert "unknown key 'broken'" in (ch.read("/var/log/moby-agent.log") or "")


def test_doctor_reads_the_real_rc_status(ch):
    start(ch)
    r = ch.run("unshare", "-n", "moby-agent", "doctor")  # no network: nothing is probed outside
    expected = "OK    rc-status    no service crashed, failed or unsupervised; moby-agent started"
    assert expected in r.stdout, r.stdout + r.stderr
    assert "FAIL  kvp daemon" in r.stdout
    assert r.returncode == 1
    ch.run("kill", "-9", *[str(p) for p, args in ch.processes() if args.startswith("supervise-daemon moby-agent")])
    ch.wait(lambda: ch.service_state("moby-agent") != "started", what="rc-status to notice the dead supervisor")
    r = ch.run("unshare", "-n", "moby-agent", "doctor")
    assert "FAIL  rc-status    moby-agent unsupervised" in r.stdout, r.stdout


def test_a_service_after_the_agent_starts_once_its_first_pass_is_done(ch):
    """`before docker` is worth something only when daemon.json is rendered:
    start_post waits for the first pass. A stand-in docker service records
    what status.json held when OpenRC started it."""
    ch.sh("cat > /etc/init.d/docker <<'EOF'\n#!/sbin/openrc-run\n"
          "depend() { after moby-agent; }\n"
          "start() { cp /run/moby-agent/status.json /tmp/seen-by-docker.json 2>/dev/null"
          " || echo null > /tmp/seen-by-docker.json; }\nEOF\nchmod 755 /etc/init.d/docker", check=True)
    ch.run("rc-update", "add", "docker", "default", check=True)
    r = ch.run("openrc", "default")
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    seen = json.loads(ch.read("/tmp/seen-by-docker.json") or "null")
    assert isinstance(seen, dict) and seen.get("last_pass") is not None, seen
    assert seen["pid"] in agent_pids(ch)


def test_health_first_pass_waits_for_a_running_agent_only(ch):
    r = ch.run("moby-agent", "health", "--first-pass", "--timeout", "0.5")
    assert r.returncode == 1 and "no first pass within 0.5 s" in r.stderr
    start(ch)
    assert ch.run("moby-agent", "health", "--first-pass", "--timeout", "10").returncode == 0
    ch.run("rc-service", "moby-agent", "stop", check=True)
    # The stopped agent's status has a pass, but its pid is gone.
    assert ch.run("moby-agent", "health", "--first-pass", "--timeout", "0.5").returncode == 1
