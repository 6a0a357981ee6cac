"""The user's journey in the stand-in guest: dockerd (Debian's 20.10, with
containerd and runc) under OpenRC beside the agent; a host setting reaching
dockerd's /info; a container reading and writing drive C; a watcher in a
container hearing a host-side edit; a reboot bringing it all back."""

import json
import time

import pytest

from tests.vm.guest import SMB_PASSWORD, SMB_USER, TEST_IMAGE

V1 = f"/c;/C;username={SMB_USER},password={SMB_PASSWORD.replace(',', ',,')},noperm,vers=3.1.1"
SERVICES = ("hv_kvp_daemon", "moby-agent", "docker")


def status(guest):
    return json.loads(guest.read("/run/moby-agent/status.json"))


def assert_services_started(guest):
    states = guest.rc_states()
    assert {s: states.get(s) for s in SERVICES} == {s: "started" for s in SERVICES}, states
    assert "crashed" not in states.values(), states


def bump(guest, generation):
    guest.kvp.set(0, "com.docker.database.generation", str(generation))


def dockerd_pid(guest):
    return guest.read("/var/run/docker.pid").strip()


@pytest.fixture(scope="module")
def docker(guest):
    """dockerd answering, the test image imported, drive C shared."""
    took = guest.wait_dockerd(timeout=120)
    print(f"\ndockerd answering /_ping {took:.1f} s after the guest was ready")
    guest.ensure_image()
    if " /C " not in guest.read("/proc/self/mountinfo"):
        guest.kvp.set(0, "cifsmount", V1)
        guest.wait(lambda: " /C " in guest.read("/proc/self/mountinfo"), timeout=20, what="the share")
    (guest.share / "src").mkdir(exist_ok=True)
    yield guest
    guest.docker("rm", "-f", "watcher")


def test_dockerd_runs_under_openrc_after_the_agent(docker):
    guest = docker
    assert_services_started(guest)
    ps = [line.split(None, 2) for line in guest.run(["ps", "-eo", "pid=,ppid=,args="]).stdout.splitlines()]
    pid = dockerd_pid(guest)
    row = [r for r in ps if r[0] == pid]
    assert row and row[0][2].startswith("/usr/sbin/dockerd"), (pid, row)
    parent = [r for r in ps if r[0] == row[0][1]]
    assert parent and parent[0][2].startswith("supervise-daemon docker"), parent
    # before docker: at boot the agent's first pass (daemon.json) came before dockerd's start.
    log = guest.read("/var/log/docker.log") or ""
    assert "daemon.json" not in log or "unable to configure" not in log, log[-2000:]


def test_a_host_setting_reaches_dockerd_by_sighup_and_by_restart(docker):
    guest = docker
    # Reloadable keys: SIGHUP, the same dockerd.
    pid = dockerd_pid(guest)
    guest.write_db("etc/docker/daemon.json", '{"debug": true, "registry-mirrors": ["https://mirror.test"]}')
    t0 = time.monotonic()
    bump(guest, 101)
    guest.wait(lambda: (i := guest.dockerd_info()) and i["Debug"] and
               "https://mirror.test/" in i["RegistryConfig"]["Mirrors"], timeout=20,
               what="debug and the mirror in dockerd's /info")
    print(f"bump to /info (SIGHUP: debug, registry-mirrors): {time.monotonic() - t0:.2f} s")
    assert dockerd_pid(guest) == pid, "a reloadable key restarted dockerd"
    assert_services_started(guest)
    caps = status(guest)["capabilities"]
    assert caps["docker_config"]["state"] == "ok", caps["docker_config"]

    # A key SIGHUP does not reload: a restart through rc-service, a new dockerd.
    guest.write_db("etc/docker/daemon.json", '{"debug": true, "log-driver": "none"}')
    t0 = time.monotonic()
    bump(guest, 102)
    guest.wait(lambda: (i := guest.dockerd_info()) and i["LoggingDriver"] == "none", timeout=90,
               what="the log driver in dockerd's /info")
    print(f"bump to /info (restart: log-driver): {time.monotonic() - t0:.2f} s")
    assert dockerd_pid(guest) != pid, "dockerd was not restarted"
    guest.wait(lambda: status(guest)["capabilities"]["docker_config"]["state"] == "ok", timeout=30,
               what="docker_config ok after the restart")
    assert_services_started(guest)

    # Back to the default settings for the tests that follow (a restart).
    guest.write_db("etc/docker/daemon.json", "{}")
    bump(guest, 103)
    guest.wait(lambda: (i := guest.dockerd_info()) and i["LoggingDriver"] == "json-file" and not i["Debug"],
               timeout=90, what="dockerd back to its defaults")
    assert_services_started(guest)


def test_a_host_proxy_reaches_dockerd_20_10_through_its_environment(docker):
    """dockerd 20.10 has no daemon.json proxies: the agent writes the
    environment file the docker service sources and restarts it; the host's
    own localhost (a cntlm) becomes the host's address; the password stays
    out of every output."""
    guest = docker
    pid = dockerd_pid(guest)
    guest.write_db("proxy/http", "http://corp:Qx9Secret@localhost:3128")
    guest.write_db("proxy/https", "http://127.0.0.1:3129")
    guest.write_db("proxy/exclude", "localhost,.corp.example")
    t0 = time.monotonic()
    bump(guest, 201)
    guest.wait(lambda: (i := guest.dockerd_info()) and "10.0.75.1:3128" in (i.get("HttpProxy") or ""), timeout=90,
               what="the proxy in dockerd's /info")
    print(f"bump to the proxy in /info (environment, restart): {time.monotonic() - t0:.2f} s")
    info = guest.dockerd_info()
    assert info["HttpsProxy"] == "http://10.0.75.1:3129" and info["NoProxy"] == "localhost,.corp.example", info
    assert dockerd_pid(guest) != pid, "proxies need a restart"
    assert guest.sh("stat -c %a /etc/docker/moby-agent-proxy.env").stdout.strip() == "600"
    assert "Qx9Secret" not in json.dumps(info)  # dockerd masks it too
    for where in ("/var/log/moby-agent.log", "/run/moby-agent/status.json"):
        assert "Qx9Secret" not in (guest.read(where) or ""), where
    for command in (["moby-agent", "status"], ["moby-agent", "daemon-json"], ["moby-agent", "plan"]):
        r = guest.run(command)
        assert "Qx9Secret" not in r.stdout + r.stderr, command
    assert "Qx9Secret" not in json.dumps(guest.kvp.enumerate(1))
    assert_services_started(guest)
    # The host drops the proxies: gone from dockerd's environment.
    guest.remove_db("proxy")
    bump(guest, 202)
    guest.wait(lambda: (i := guest.dockerd_info()) and not i.get("HttpProxy") and not i.get("HttpsProxy"),
               timeout=90, what="no proxy in dockerd's /info")
    assert_services_started(guest)



def test_a_registry_ca_from_the_database_lands_in_certs_d(docker):
    """No reload needed: dockerd reads certs.d at each pull."""
    import subprocess

    guest = docker
    key = guest.dir / "ca.key"
    cert = guest.dir / "ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=registry.test"], check=True, capture_output=True)
    pid = dockerd_pid(guest)
    guest.write_db("etc/docker/certs.d/registry.test:5000/ca.crt", cert.read_text())
    bump(guest, 203)
    guest.wait(lambda: guest.read("/etc/docker/certs.d/registry.test:5000/ca.crt") == cert.read_text(), timeout=20,
               what="the CA in /etc/docker/certs.d")
    assert dockerd_pid(guest) == pid, "a certificate needs no restart"
    guest.remove_db("etc/docker/certs.d")
    bump(guest, 204)
    guest.wait(lambda: guest.run(["test", "-e", "/etc/docker/certs.d/registry.test:5000/ca.crt"]).returncode != 0,
               timeout=20, what="the CA removed with the host's key")


def test_a_container_reads_and_writes_drive_c(docker):
    guest = docker
    (guest.share / "src" / "hello.txt").write_text("hello from Windows\n")
    t0 = time.monotonic()
    r = guest.docker("run", "--rm", "-v", "/C/src:/src", TEST_IMAGE, "cat", "/src/hello.txt", timeout=120)
    print(f"docker run ... cat /src/hello.txt: {time.monotonic() - t0:.2f} s")
    assert (r.returncode, r.stdout) == (0, "hello from Windows\n"), r.stderr
    out = guest.share / "src" / "from-container.txt"
    out.unlink(missing_ok=True)
    r = guest.docker("run", "--rm", "-v", "/C/src:/src", TEST_IMAGE, "sh", "-c",
                     "echo written in a container > /src/from-container.txt", timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "written in a container\n"
    assert_services_started(guest)


def container_events(guest, name, container="watcher"):
    out = []
    for line in guest.docker("logs", container).stdout.splitlines()[1:]:
        t, n, kind = line.split(" ")
        if n == name:
            out.append((float(t), kind))
    return out


def test_a_watcher_in_a_container_hears_a_host_edit(docker):
    guest = docker
    src = guest.share / "src"
    (src / "app.js").write_text("v0\n")
    guest.docker("rm", "-f", "watcher")
    r = guest.docker("run", "-d", "--name", "watcher", "-v", "/C/src:/src", TEST_IMAGE, "inotify-watch", "/src",
                     timeout=120)
    assert r.returncode == 0, r.stderr
    guest.wait(lambda: guest.docker("logs", "watcher").stdout.startswith("ready"), timeout=30,
               what="the container's watcher")
    assert guest.run(["moby-agent", "watch", "add", "/C/src"]).returncode == 0
    try:
        guest.wait(lambda: status(guest).get("watch", {}).get("directories"), timeout=15, what="the watch")
        time.sleep(1)
        took = []
        for i in range(3):
            t0 = guest.monotonic()
            (src / "app.js").write_text(f"v{i + 1}\n")
            seen = guest.wait(lambda: [t for t, _k in container_events(guest, "app.js") if t > t0], timeout=20,
                              what="the host edit in the container's watcher")
            took.append(min(seen) - t0)
        print("host edit to the container's watcher: " + ", ".join(f"{t * 1000:.0f} ms" for t in took))
    finally:
        guest.run(["moby-agent", "watch", "remove", "/C/src"])
        guest.docker("rm", "-f", "watcher")
    assert_services_started(guest)


def followed(guest, name):
    """The watched roots that are /C/app (or /c/app, the same files) and why."""
    reasons = status(guest).get("watch", {}).get("reasons") or {}
    return {root: whys for root, whys in reasons.items() if root.lower() == f"/c/{name}"}


def test_a_container_s_bind_mount_is_watched_with_no_watch_add_and_let_go_when_it_stops(docker):
    """watch.follow_containers (on by default): `docker run -v /C/app:/app`
    is all it takes for a watcher in the container to hear host edits;
    removing the container lets the directory go."""
    guest = docker
    app = guest.share / "app"
    (app / "lib").mkdir(parents=True, exist_ok=True)
    (app / "app.js").write_text("v0\n")
    guest.docker("rm", "-f", "follower")
    assert followed(guest, "app") == {}
    t0 = time.monotonic()
    r = guest.docker("run", "-d", "--name", "follower", "-v", "/C/app:/app", TEST_IMAGE, "inotify-watch", "/app",
                     timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        guest.wait(lambda: guest.docker("logs", "follower").stdout.startswith("ready"), timeout=30,
                   what="the container's watcher")
        guest.wait(lambda: any("container follower" in w for w in followed(guest, "app").values()), timeout=15,
                   what="/C/app followed with no watch add")
        guest.wait(lambda: status(guest).get("watch", {}).get("directories", 0) >= 2, timeout=15,
                   what="/C/app and lib watched")
        print(f"docker run to its bind mount watched: {time.monotonic() - t0:.2f} s")
        shown = guest.run(["moby-agent", "status"]).stdout
        assert "container follower" in shown and "containers: following dockerd" in shown, shown
        time.sleep(1)
        took = []
        for i in range(3):
            t0 = guest.monotonic()
            (app / "app.js").write_text(f"v{i + 1}\n")
            seen = guest.wait(lambda: [t for t, _k in container_events(guest, "app.js", "follower") if t > t0],
                              timeout=20, what="the host edit in the container's watcher")
            took.append(min(seen) - t0)
        print("host edit to the followed container's watcher: " + ", ".join(f"{t * 1000:.0f} ms" for t in took))
    finally:
        guest.docker("rm", "-f", "follower")
    guest.wait(lambda: followed(guest, "app") == {}, timeout=15, what="/C/app let go")
    watch = status(guest)["watch"]
    assert not [r for r in watch["roots"] if r.lower() == "/c/app"], watch
    assert_services_started(guest)


def test_a_reboot_brings_back_the_share_the_settings_and_docker(docker):
    """Hyper-V re-sends pool 0 when the new hv_kvp_daemon registers; nothing
    else is done from the host side."""
    guest = docker
    guest.write_db("etc/docker/daemon.json", '{"labels": ["after=reboot"]}')
    bump(guest, 104)
    guest.wait(lambda: (i := guest.dockerd_info()) and "after=reboot" in i["Labels"], timeout=30,
               what="the label before the reboot")
    items = [(k, v) for k, v in guest.kvp.enumerate(0)]
    t0 = time.monotonic()
    guest.reboot(samba=True)
    for key, value in items:  # what Hyper-V does for the new daemon
        guest.kvp.set(0, key, value)
    guest.wait(lambda: " /C " in guest.read("/proc/self/mountinfo"), timeout=30, what="the share after the reboot")
    took = guest.wait_dockerd(timeout=120)
    guest.wait(lambda: (i := guest.dockerd_info()) and "after=reboot" in i["Labels"], timeout=30,
               what="the label after the reboot")
    print(f"reboot to share, settings and dockerd back: {time.monotonic() - t0:.1f} s (dockerd {took:.1f} s "
          f"after the boot was ready)")
    guest.ensure_image()
    (guest.share / "src" / "hello.txt").write_text("after the reboot\n")
    r = guest.docker("run", "--rm", "-v", "/C/src:/src", TEST_IMAGE, "cat", "/src/hello.txt", timeout=120)
    assert (r.returncode, r.stdout) == (0, "after the reboot\n"), r.stderr
    assert_services_started(guest)
    guest.write_db("etc/docker/daemon.json", "{}")
    bump(guest, 105)
    guest.wait(lambda: (i := guest.dockerd_info()) and not i["Labels"], timeout=30, what="the label removed")
