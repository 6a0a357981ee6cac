"""daemon.json's checks and render, and the conf.d reading, at the edges
the other tests do not reach: registry mirrors as dockerd takes them, the
"proxies" object's three keys, Go's int range at both ends, "graph" with
"data-root", the loopback proxy pointed at the host (facts.md: 10.0.75.1),
a comment line holding a quote, a conf.d that is not a plain file, and
running_pid on the real /proc."""

import json
import os
import subprocess
import sys
import time

import pytest

from agent import status
from agent.settings import daemonjson
from agent.settings.daemonjson import ConfigProblem, Layers, check, render


def refused(doc, version=(20, 10)):
    with pytest.raises(ConfigProblem) as exc:
        check(doc, "drop-in a.json", version)
    return str(exc.value)


@pytest.mark.parametrize("mirror", ["http://mirror.example", "https://mirror.example", "https://mirror.example/",
                                    "http://10.0.75.1:5000"])
def test_a_mirror_is_an_http_or_https_url_with_a_host(mirror):
    check({"registry-mirrors": [mirror]}, "drop-in a.json", (20, 10))


@pytest.mark.parametrize("mirror, why", [
    ("ftp://mirror.example", "must be an http:// or https:// URL with a host"),
    ("https://", "must be an http:// or https:// URL with a host"),
    ("https://mirror.example?x=1", "a mirror has no path, query or fragment"),
    ("https://mirror.example#top", "a mirror has no path, query or fragment"),
    ("https://mirror.example/v2", "a mirror has no path, query or fragment"),
    ("https://mirror.example:99999", "is not a URL"),
])
def test_a_mirror_that_is_not_one_is_refused_naming_it(mirror, why):
    message = refused({"registry-mirrors": [mirror]})
    assert message.startswith(f"drop-in a.json: 'registry-mirrors': {json.dumps(mirror)}")
    assert message.endswith(why)


@pytest.mark.parametrize("why, mirror", [
    ("is not a URL", "https://" + "m" * 80 + ":99999"),
    ("must be an http:// or https:// URL with a host", "ftp://" + "m" * 80),
    ("a mirror has no path, query or fragment", "https://m/" + "p" * 80),
])
def test_a_long_mirror_is_named_by_its_first_60_characters_as_every_format_problem(why, mirror):
    """The same cut as the other format checks' (a word, a label, a size)."""
    word = refused({"insecure-registries": ["a b" + "c" * 80]})
    cut = word.split(": ", 2)[2].split(" is empty")[0]
    assert len(cut) == 60
    message = refused({"registry-mirrors": [mirror]})
    assert message.split(": ", 2)[2] in (f"{json.dumps(mirror)[:60]} {why}", f"{json.dumps(mirror)[:60]}: {why}")


def test_the_proxies_object_takes_its_three_keys_from_23():
    proxies = {"http-proxy": "http://p:3128", "https-proxy": "http://p:3128", "no-proxy": "localhost"}
    check({"proxies": proxies}, "drop-in a.json", (23, 0))
    for bad in ({"ftp-proxy": "x"}, {"no-proxy": 1}):
        assert refused({"proxies": bad}, (23, 0)) == (
            "drop-in a.json: 'proxies' must be an object of strings: http-proxy, https-proxy, no-proxy")


@pytest.mark.parametrize("key", ["shutdown-timeout", "cpu-rt-period"])
def test_an_integer_takes_all_of_gos_int_and_nothing_beyond(key):
    low, high = -(1 << 63), (1 << 63) - 1
    check({key: low}, "drop-in a.json", (20, 10))
    check({key: high}, "drop-in a.json", (20, 10))
    assert refused({key: high + 1}) == f"drop-in a.json: {key!r}: {high + 1} is outside Go's int range"
    assert refused({key: low - 1}) == f"drop-in a.json: {key!r}: {low - 1} is outside Go's int range"


def test_graph_and_data_root_together_are_refused():
    """dockerd refuses to start with both (graph is data-root's old name)."""
    with pytest.raises(ConfigProblem) as exc:
        render(Layers(dropins=(("a.json", '{"graph": "/var/lib/a"}'),), database='{"data-root": "/var/lib/b"}'))
    assert str(exc.value) == ('"graph" (the old name of "data-root") and "data-root" both set; dockerd refuses to '
                              "start on that: remove one")
    assert render(Layers(database='{"graph": "/var/lib/a"}'))["graph"] == "/var/lib/a"
    assert render(Layers(database='{"data-root": "/var/lib/b"}'))["data-root"] == "/var/lib/b"


def test_a_loopback_proxy_is_the_host_by_default():
    """The VM's loopback is not the Windows host's: a proxy on localhost is
    the host at 10.0.75.1 (facts.md section 1)."""
    doc = render(Layers(proxy_http="http://localhost:3128"), version=(24, 0))
    assert doc["proxies"] == {"http-proxy": "http://10.0.75.1:3128"}


def sh_docker_opts(tmp_path, text):
    path = tmp_path / "docker.conf"
    path.write_text(text)
    out = subprocess.run(["/bin/sh", "-c", '. "$1"; printf %s "$DOCKER_OPTS"', "sh", str(path)],
                         capture_output=True, text=True, check=True)
    return out.stdout


@pytest.mark.parametrize("text", [
    "# conf.d for docker\n# don't edit by hand\nDOCKER_OPTS=\"--debug\"\n",
    "X=1\n# it's a comment\nDOCKER_OPTS='--debug'\n",
])
def test_a_comment_line_with_a_quote_is_a_comment(tmp_path, text):
    assert daemonjson.docker_opts_from_confd(text) == sh_docker_opts(tmp_path, text) == "--debug"


def test_a_confd_that_is_not_a_plain_file_gives_no_options(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text('DOCKER_OPTS="--debug"\n')
    link = tmp_path / "docker"
    link.symlink_to(target)
    assert daemonjson.docker_opts_from_file(str(link)) == ""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert daemonjson.docker_opts_from_file(str(fifo)) == ""


def test_running_pid_reads_the_real_proc_by_default():
    from agent.system import AGENT_PROGRAM, process_start_time

    child = subprocess.Popen([AGENT_PROGRAM, "-c", "import time; time.sleep(30)"], executable=sys.executable)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/cmdline", "rb") as f:
                if f.read().startswith(AGENT_PROGRAM.encode() + b"\0"):
                    break
            time.sleep(0.02)
        start = process_start_time(child.pid)
        doc = {"state": "running", "pid": child.pid, "start_time": start}
        assert status.running_pid(doc) == child.pid
        assert status.running_pid(dict(doc, start_time=start + 1)) is None
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("text", [
    # A comment after a command, holding a quote (right after the #, after an operator).
    ": run #it's\nDOCKER_OPTS=--debug\n",
    ": run # it's\nDOCKER_OPTS=--debug\n",
    ": a&# it's\nDOCKER_OPTS=--debug\n",
    # A command's quoted word spanning lines.
    ": 'one\nDOCKER_OPTS=--wrong'\nDOCKER_OPTS=--debug\n",
    ": X\nDOCKER_OPTS=--debug\n",
    ": DOCKER_OPTS=--wrong\nX=1\n",  # an argument, not an assignment
    ": \"$A\" ${B} x\nDOCKER_OPTS=--debug\n",
    # Several assignments on a line, the later ones seeing the earlier.
    "A=1 DOCKER_OPTS=--debug\n",
    "A=1 XOPTS=--debug DOCKER_OPTS=\"$XOPTS\"\n",
    "A=1\tB=2  DOCKER_OPTS=\"--debug$A$B\"\n",
    # The last line a command with a comment and no newline.
    "DOCKER_OPTS=--debug\n: x # the end",
    "DOCKER_OPTS=--debug\n# the end",
])
def test_confd_commands_comments_and_assignments_read_as_the_shell_reads_them(tmp_path, text):
    assert daemonjson.docker_opts_from_confd(text) == sh_docker_opts(tmp_path, text)


def confd(tmp_path, text, mode=0o644, uid=None):
    path = tmp_path / "docker"
    path.write_text(text)
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, -1)
    return str(path)


def test_a_confd_runs_in_slash_with_only_path_in_its_environment(tmp_path):
    """OpenRC's view: the working directory /, an environment holding only PATH."""
    assert daemonjson.evaluate_confd(confd(tmp_path, 'DOCKER_OPTS="$(pwd)"\n')) == "/"
    path = daemonjson.evaluate_confd(confd(tmp_path, 'DOCKER_OPTS="$PATH|${HOME-unset}"\n'))
    assert path == daemonjson._SAFE_PATH + "|unset"
    assert set(daemonjson._SAFE_PATH.split(":")) >= {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}


def test_a_confds_undecodable_output_is_replaced_not_raised(tmp_path):
    assert daemonjson.evaluate_confd(confd(tmp_path, "DOCKER_OPTS=\"--label=$(printf 'a\\377')\"\n")) == \
        "--label=a\ufffd"


def test_who_may_own_and_write_a_confd_that_is_run(tmp_path):
    """Run: owned by root (or us), writable by its owner only (group or others
    may read and execute it). Not run: another owner, or writable by others."""
    text = 'DOCKER_OPTS="--debug"\n'
    assert daemonjson.evaluate_confd(confd(tmp_path, text, 0o755)) == "--debug"
    if os.geteuid() == 0:  # the suite runs as root (as the agent does); chown needs it
        assert daemonjson.evaluate_confd(confd(tmp_path, text, 0o644, uid=1)) is None
    assert daemonjson.evaluate_confd(confd(tmp_path, text, 0o664)) is None
    assert daemonjson.evaluate_confd(confd(tmp_path, text, 0o646)) is None


def session_of(pid):
    """The session id of a live process, or None once it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[3])


def test_a_confd_whose_child_escapes_holding_the_pipe_is_given_up_after_the_timeout(tmp_path):
    """The docstring's rule: the shell is killed with its process group after
    `timeout` seconds and the file is then not taken as run (None; it is
    read instead). A child that left the process group for a session of its
    own (setsid) is not killed; when it holds the shell's stdout, the pipe
    the agent reads, the agent must give up on the pipe rather than wait
    for that child to end. (`.` runs the file with stdout on /dev/null, so
    the child reaches for the shell's saved descriptor in /proc/$$/fd.)"""
    pidfile = tmp_path / "pids"
    text = ("DOCKER_OPTS=-D\n"
            "for fd in /proc/$$/fd/*; do\n"
            f'  if [ -p "$fd" ]; then setsid sleep 30 >"$fd" & echo $! >>{pidfile}; fi\n'
            "done\n"
            "wait\n")
    path = confd(tmp_path, text)
    try:
        start = time.monotonic()
        assert daemonjson.evaluate_confd(path, timeout=0.5) is None
        elapsed = time.monotonic() - start
        assert elapsed < 8, f"waited {elapsed:.1f} s for a child the kill could not reach"
        # The hostile part happened: a child alive after the return, in
        # another session than the agent's.
        pids = [int(x) for x in pidfile.read_text().split()]
        assert pids and all(session_of(pid) not in (None, os.getsid(0)) for pid in pids), pids
        assert daemonjson.docker_opts_from_file(path, timeout=0.5) == "-D"
    finally:
        for pid in (int(x) for x in pidfile.read_text().split()) if pidfile.exists() else ():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
