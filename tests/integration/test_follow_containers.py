"""Following the containers with Debian's real dockerd 20.10 in its own mount
and network namespaces (tests/integration/test_dockerd.py's Dockerd): a
container with a bind mount is seen, stopped it is let go, dockerd
restarted the follower resyncs, and the agent itself (`run` under --root,
a fixture mount table naming /C a cifs share) lists the root and why."""

import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from agent.livereload.containers import ContainerFollower, sources_of, watched_roots
from tests.conftest import REPO, require_root
from tests.integration.agentproc import AgentProcess
from tests.integration.test_dockerd import Dockerd

PAUSE_C = b"""
#include <signal.h>
#include <unistd.h>
static void bye(int s) { (void)s; _exit(0); }
int main(void) { signal(SIGTERM, bye); signal(SIGINT, bye); for (;;) pause(); }
"""


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.unix)


def call(sock, method, url, body=None, content_type="application/json"):
    conn = Unix(str(sock))
    try:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        conn.request(method, url, data, {"Content-Type": content_type} if data is not None else {})
        r = conn.getresponse()
        out = r.read()
        assert r.status < 300, (method, url, r.status, out[:500])
        return json.loads(out) if out.strip() else None
    finally:
        conn.close()


@pytest.fixture
def dockerd(tmp_path):
    require_root()
    if shutil.which("dockerd") is None or shutil.which("gcc") is None:
        pytest.skip("dockerd (Debian's docker.io) and gcc are needed")
    (tmp_path / "etc" / "docker").mkdir(parents=True)
    (tmp_path / "etc" / "docker" / "daemon.json").write_text("{}\n")
    d = Dockerd(tmp_path)
    d.start()
    # A one-binary image, made here: no registry is reached.
    (tmp_path / "pause.c").write_bytes(PAUSE_C)
    subprocess.run(["gcc", "-static", "-Os", "-o", str(tmp_path / "pause"), str(tmp_path / "pause.c")], check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(tmp_path / "pause"), arcname="pause")
    call(d.socket, "POST", "/images/create?fromSrc=-&repo=pause&tag=t", buf.getvalue(), "application/x-tar")
    yield d
    d.stop()


def run_container(d, name, source, restart=None):
    host = {"Binds": [f"{source}:/app"], "NetworkMode": "none"}
    if restart:
        host["RestartPolicy"] = {"Name": restart}
    cid = call(d.socket, "POST", f"/containers/create?name={name}",
               {"Image": "pause:t", "Cmd": ["/pause"], "HostConfig": host})["Id"]
    call(d.socket, "POST", f"/containers/{cid}/start")
    return cid


def stop_container(d, cid):
    call(d.socket, "POST", f"/containers/{cid}/stop?t=2")


def wait(predicate, timeout=20.0, what="it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_the_follower_sees_bind_mounts_come_and_go_and_resyncs_after_a_dockerd_restart(dockerd, tmp_path):
    d = dockerd
    drive = tmp_path / "C"
    (drive / "app").mkdir(parents=True)
    drives = {str(drive): str(drive)}
    changes = threading.Event()
    follower = ContainerFollower(str(d.socket), changes.set)
    follower.start()
    try:
        wait(lambda: follower.connected, what="following dockerd")

        def roots():
            return watched_roots(sources_of(follower.containers()), drives)

        app = str(drive / "app")
        web = run_container(d, "web", app)
        wait(lambda: roots() == {app: ("container web",)}, what="web's mount watched")
        api = run_container(d, "api", app + "/")
        wait(lambda: roots() == {app: ("container api", "container web")}, what="one root for two containers")
        stop_container(d, web)
        wait(lambda: roots() == {app: ("container api",)}, what="web let go")
        stop_container(d, api)
        wait(lambda: roots() == {}, what="the last container let go")

        # dockerd restarted: the stream breaks, the follower resyncs from the list.
        run_container(d, "always", app, restart="always")
        wait(lambda: roots() == {app: ("container always",)}, what="the restart=always container")
        syncs = follower.syncs
        d.start()  # stops this dockerd (its containers with it) and starts a new one
        wait(lambda: follower.syncs > syncs and follower.connected, what="a resync")
        wait(lambda: roots() == {app: ("container always",)}, what="the container found again")

        # Stopping the follower while its stream is blocked is immediate.
        t0 = time.monotonic()
        follower.stop()
        assert time.monotonic() - t0 < 1.0
        assert not follower._thread.is_alive()
    finally:
        follower.stop()


def test_without_dockerd_the_follower_waits_with_no_timer_and_follows_once_it_starts(tmp_path):
    require_root()
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd (Debian's docker.io) is needed")
    (tmp_path / "etc" / "docker").mkdir(parents=True)
    (tmp_path / "etc" / "docker" / "daemon.json").write_text("{}\n")
    d = Dockerd(tmp_path)
    follower = ContainerFollower(str(d.socket), lambda: None)
    follower.start()
    try:
        wait(lambda: "no socket" in (follower.why or ""), what="the follower saying dockerd is absent")
        task = f"/proc/self/task/{follower._thread.native_id}/status"

        def switches():
            text = open(task).read()
            return int(text.split("voluntary_ctxt_switches:")[1].split()[0])

        first = switches()
        time.sleep(3)
        assert switches() == first  # blocked on inotify, no backoff timer
        d.start()
        wait(lambda: follower.connected, what="following dockerd once it started")
    finally:
        follower.stop()
        d.stop()


def test_the_agent_watches_a_container_s_mount_on_a_shared_drive_and_says_why(dockerd, tmp_path):
    d = dockerd
    root = tmp_path
    (root / "C" / "app").mkdir(parents=True)
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "mountinfo").write_text("40 1 0:40 / /C rw - cifs //10.0.75.1/C rw\n")
    (root / "etc" / "moby-agent").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "moby-agent" / "agent.toml").write_text('log_level = "debug"\n')
    agent = AgentProcess(root)
    try:
        agent.wait_status(lambda doc: "following dockerd" in (doc.get("watch") or {}).get("containers", ""))
        cid = run_container(d, "web", str(root / "C" / "app"))
        doc = agent.wait_status(lambda doc: doc["watch"].get("reasons") == {"/C/app": ["container web"]})
        assert doc["watch"]["roots"] == ["/C/app"]
        r = subprocess.run([sys.executable, "-m", "agent", "--root", str(root), "status"],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert "/C/app: container web" in r.stdout, r.stdout + r.stderr
        stop_container(d, cid)
        doc = agent.wait_status(lambda doc: doc["watch"].get("reasons") == {})
        assert doc["watch"]["roots"] == []
        t0 = time.monotonic()
        assert agent.stop() == 0  # SIGTERM while the stream is open
        assert time.monotonic() - t0 < 3.0
    finally:
        agent.stop()
    assert "Traceback" not in "\n".join(agent.seen)
