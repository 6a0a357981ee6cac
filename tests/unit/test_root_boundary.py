"""--root as a boundary for the doctor's paths, and the live system's rule
for a target file the agent writes as root: a symlink, a FIFO or a loop in
its place is replaced atomically (rename over it), never followed; a
directory is refused and kept."""

import os
import socket
import threading

import pytest

from agent.agentconfig import AgentConfig
from agent.doctor import Doctor
from agent.system import UnsafePath, write_atomic
from tests.integration.writer import make_pool_dir, write_items


def _doctor_lines(root) -> str:
    return "\n".join(c.line() for c in Doctor(AgentConfig(), str(root), probe=lambda address: None).run())


def test_the_doctor_reads_no_pool_through_a_symlinked_pool_directory(tmp_path):
    """var/lib/hyperv a symlink out of the root: the doctor read the
    outside pool (and said the host had pushed a cifsmount) through the
    unresolved last directory."""
    outside, root = tmp_path / "outside", tmp_path / "root"
    make_pool_dir(outside / "hyperv")
    write_items(str(outside / "hyperv" / ".kvp_pool_0"), [("cifsmount", "/c;/C;username=u,password=QXQX")])
    (root / "var" / "lib").mkdir(parents=True)
    (root / "var" / "lib" / "hyperv").symlink_to(outside / "hyperv")
    lines = _doctor_lines(root)
    assert "pushed a cifsmount" not in lines and "1 items" not in lines, lines
    assert "/var/lib/hyperv does not exist" in lines, lines
    # A link inside the root is followed inside it.
    (root / "var" / "lib" / "hyperv").unlink()
    make_pool_dir(root / "real")
    write_items(str(root / "real" / ".kvp_pool_0"), [("cifsmount", "/c;/C;username=u,password=QXQX")])
    (root / "var" / "lib" / "hyperv").symlink_to("/real")
    assert "pushed a cifsmount" in _doctor_lines(root)


def test_the_doctor_connects_to_no_docker_socket_outside_the_root(tmp_path):
    """/var/run/docker.sock a symlink to a socket outside the root: the
    doctor connected to it (on a real machine, the real dockerd)."""
    outside, root = tmp_path / "outside", tmp_path / "root"
    outside.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(outside / "docker.sock"))
    server.listen(4)
    server.settimeout(3)
    accepted = []

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        accepted.append(conn)
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        (root / "var" / "run").mkdir(parents=True)
        (root / "var" / "run" / "docker.sock").symlink_to(outside / "docker.sock")
        lines = _doctor_lines(root)
    finally:
        server.close()
        thread.join()
    assert not accepted, f"the doctor connected to a socket outside the root:\n{lines}"
    assert "dockerd answers" not in lines, lines


def test_the_doctor_sees_no_device_outside_the_root(tmp_path):
    outside, root = tmp_path / "outside", tmp_path / "root"
    (outside / "vmbus").mkdir(parents=True)
    (outside / "vmbus" / "hv_kvp").write_text("")
    (root / "dev" / "vmbus").mkdir(parents=True)
    (root / "dev" / "vmbus" / "hv_kvp").symlink_to(outside / "vmbus" / "hv_kvp")
    assert "/dev/vmbus/hv_kvp is present" not in _doctor_lines(root)


@pytest.mark.parametrize("hazard", ["symlink", "fifo", "loop", "dangling"])
def test_a_live_target_that_is_not_a_plain_file_is_replaced_never_followed(tmp_path, hazard):
    """Without --root (paths as they are), as the agent writes daemon.json,
    the proxy file or a certificate as root."""
    victim = tmp_path / "victim"
    victim.write_text("VICTIM\n")
    target = tmp_path / "etc" / "daemon.json"
    target.parent.mkdir()
    if hazard == "symlink":
        target.symlink_to(victim)
    elif hazard == "fifo":
        os.mkfifo(target)
    elif hazard == "loop":
        target.symlink_to(target.name)
    else:
        target.symlink_to(tmp_path / "nowhere" / "file")
    write_atomic(str(target), b'{"debug": true}\n', mode=0o600)
    assert not target.is_symlink() and target.read_bytes() == b'{"debug": true}\n'
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    assert victim.read_text() == "VICTIM\n"
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["daemon.json"]  # no temporary file left


def test_a_live_target_that_is_a_directory_is_refused_and_kept(tmp_path):
    target = tmp_path / "daemon.json"
    target.mkdir()
    (target / "kept").write_text("kept")
    with pytest.raises(UnsafePath, match="is a directory: not replaced"):
        write_atomic(str(target), b"{}")
    assert (target / "kept").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.json"]
