"""Issue 14, by boundary: what the host, a file, a pid or a path can do to
the agent. Every test here failed against the code before the fix (or hung:
those run under an alarm)."""

import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import kvp, system
from agent.shares.items import ShareError, parse_mount, redact_item, redact_url
from agent.system import (
    DOCKERD_NAMES,
    agent_pid_is,
    pid_is,
    printable,
    process_start_time,
    read_bytes_safely,
    read_pid,
    read_text,
    remove_stale_credentials,
    resolve_under,
    signal_confirmed,
    under,
)


class Hung(BaseException):
    """Not an OSError: code that catches those must not swallow a hang."""


@contextmanager
def deadline(seconds: int):
    """A call that would hang (a FIFO opened for reading) fails instead."""

    def alarm(signum, frame):
        raise Hung(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---- 1. secrets ------------------------------------------------------------

# The password's letters never occur in an item's other parts nor in any
# problem text, so finding one of them in an output is a leak.
SECRET_LETTERS = "QX"
password_chunks = st.text(alphabet=SECRET_LETTERS, min_size=1, max_size=6)
separators = st.sampled_from([" ", ",", ";", "=", ",,", "", "#", "!", "%", "\\"])


@st.composite
def passwords(draw):
    chunks = draw(st.lists(password_chunks, min_size=1, max_size=4))
    seps = [draw(separators) for _ in chunks[1:]]
    out = chunks[0]
    for sep, chunk in zip(seps, chunks[1:]):
        out += sep + chunk
    return out


@st.composite
def items(draw):
    """A cifsmount value as a careful or careless host writes it, with the
    password where that shape puts it."""
    password = draw(passwords())
    name = draw(st.sampled_from(["password", "PASSWORD", "Pass", "pass", "Password", "pass2", "password2"]))
    space = draw(st.sampled_from(["", " ", "  ", "\t"]))
    double = draw(st.booleans())
    shown = password.replace(",", ",,") if double else password
    before = draw(st.lists(st.sampled_from(["noperm", "nobrl", "mfsymlinks", "bogus"]), max_size=2))
    after = draw(st.lists(st.sampled_from(["noperm", "nobrl", "mfsymlinks", "bogus", "cache=loose"]), max_size=2))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    shape = draw(st.sampled_from(["v1", "v1-nl", "v1-space", "v2", "v2-short", "v2-long", "user%", "v2-in-opts"]))
    opts_before = ",".join(before)
    if shape in ("v1", "v1-nl", "v1-space"):
        sep = " " if shape == "v1-space" else ","
        options = ",".join(filter(None, ["username=me", opts_before]))
        value = f"/c;/C;{options}{sep}{space}{name}={shown}" + "".join("," + a for a in after)
        if shape == "v1-nl":
            value += newline
    elif shape == "user%":
        value = f"/c;/C;username=me%{shown}," + ",".join(after)
    elif shape == "v2":
        value = newline.join(["/c", "/C", "me", password, ",".join(after)])
    elif shape == "v2-short":
        value = newline.join(["/c", "/C", "me", password])
    elif shape == "v2-long":
        value = newline.join(["/c", "/C", "me", password, ",".join(after), ""])
    else:
        value = newline.join(["/c", "/C", "me", "pw", f"{space}{name}={shown}," + ",".join(after)])
    return value, password


def assert_no_secret(text: str, value: str) -> None:
    leaked = [c for c in SECRET_LETTERS if c in text]
    assert not leaked, f"password letters {leaked} in {text!r} (item {value!r})"
    # Problems lower-case option names: a run of the password's letters
    # must not come back in lower case either.
    runs = re.findall(f"[{SECRET_LETTERS}]{{2,}}", value)
    lowered = [r for r in runs if r.lower() in text.lower()]
    assert not lowered, f"password fragments {lowered} (lower-cased) in {text!r} (item {value!r})"


@given(items())
def test_redaction_hides_the_password_whatever_the_item_shape(case):
    value, _password = case
    for key in ("cifsmount", "CIFSMOUNT", " cifsmount"):
        shown = redact_item(key, value)
        assert_no_secret(shown, value)
        assert_no_secret(printable(shown), value)


@given(items())
def test_a_problem_or_a_plan_never_repeats_the_password(case):
    value, _password = case
    try:
        spec = parse_mount(value)
    except ShareError as exc:
        assert_no_secret(str(exc), value)
        return
    assert_no_secret(" ".join(spec.shown_options() + [spec.mountpoint, spec.alias, spec.username]), value)


@pytest.mark.parametrize("value", [
    "/c;/C;username=me, password=QXQX,noperm",  # a space after the comma
    "/c;/C;username=me,PASSWORD=QXQX,noperm",
    "/c;/C;username=me,Pass=QXQX",
    "/c;/C;username=me,password=QXQX\n",  # v1 with a trailing newline
    "/c;/C;username=me,password=QX,QX,noperm",  # an undoubled comma
    "/c;/C;username=me password=QXQX,noperm",  # a space instead of a comma
    "/c;/C;username=me,password=QX;QX,noperm",  # a ';' in the password
    "/c\r\n/C\r\nme\r\nQXQX\r\nnoperm",  # CRLF
    "/c\n/C\nme\nQXQX",  # v2 without its options line
    "/c\n/C\nme\nQXQX\nnoperm\n",  # v2 with a trailing newline
    "/c;/C;username=me%QXQX",
])
def test_known_leaks_are_closed(value):
    assert_no_secret(redact_item("cifsmount", value), value)
    try:
        spec = parse_mount(value)
    except ShareError as exc:
        assert_no_secret(str(exc), value)
    else:
        assert_no_secret(" ".join(spec.shown_options()), value)


def test_a_comma_the_host_did_not_double_is_not_echoed_in_the_problem():
    with pytest.raises(ShareError) as info:
        parse_mount("/c;/C;username=me,password=ab,QXQX,noperm")
    assert "qxqx" not in str(info.value).lower()


def test_proxy_urls_lose_their_credentials():
    assert redact_url("http://user:QXQX@proxy:3128") == "http://user:***@proxy:3128"
    assert redact_url("https://QXQX@proxy") == "https://***@proxy"
    assert redact_url("user:QXQX@proxy:3128") == "user:***@proxy:3128"
    assert redact_url("http://proxy:3128") == "http://proxy:3128"
    assert redact_url("http://u:p@ss@proxy:3128/x") == "http://u:***@proxy:3128/x"
    assert redact_item("proxy/http", "http://me:QXQX@10.0.75.1:3128") == "http://me:***@10.0.75.1:3128"


def test_stale_credentials_files_are_removed(tmp_path):
    (tmp_path / ".credentials-0a1b2c").write_text("password=x\n")
    (tmp_path / ".credentials-dead").symlink_to("/etc/passwd")
    (tmp_path / "shares.json").write_text("{}")
    assert sorted(remove_stale_credentials(str(tmp_path))) == [".credentials-0a1b2c", ".credentials-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shares.json"]
    assert os.path.exists("/etc/passwd")


# ---- 2. processes ----------------------------------------------------------

@pytest.mark.parametrize("text", ["-1", "0", "1", "", "abc", "12abc", "99999999999", "1e3", "0x10", "+5", " -7\n"])
def test_a_pid_file_that_is_not_a_signallable_pid_is_none(tmp_path, text):
    (tmp_path / "docker.pid").write_text(text)
    assert read_pid(str(tmp_path / "docker.pid")) is None


def test_read_pid_takes_a_plain_pid_and_nothing_else(tmp_path):
    good = tmp_path / "docker.pid"
    good.write_text(" 4242\n")
    assert read_pid(str(good)) == 4242
    link = tmp_path / "link.pid"
    link.symlink_to(good)
    assert read_pid(str(link)) is None
    os.mkfifo(tmp_path / "fifo.pid")
    with deadline(5):
        assert read_pid(str(tmp_path / "fifo.pid")) is None
    assert read_pid(str(tmp_path / "missing.pid")) is None
    assert read_pid(str(tmp_path)) is None


def _canary(tmp_path, argv0=None):
    """A process that records every signal it gets."""
    log = tmp_path / "signals"
    code = (
        "import signal, sys, time\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM):\n"
        "    signal.signal(s, lambda n, f: log.write(f'{n}\\n'))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc, log


def test_only_the_process_meant_is_signalled(tmp_path):
    proc, log = _canary(tmp_path)
    try:
        assert not pid_is(proc.pid, DOCKERD_NAMES)
        assert not agent_pid_is(proc.pid, process_start_time(proc.pid))
        assert not signal_confirmed(proc.pid, DOCKERD_NAMES, signal.SIGHUP)
        assert not signal_confirmed(-1, DOCKERD_NAMES, signal.SIGHUP)
        assert not signal_confirmed(0, DOCKERD_NAMES, signal.SIGHUP)
        assert not signal_confirmed(1, ["init", "systemd", "sh", "bash", "tini"], signal.SIGHUP)
        time.sleep(0.2)
        assert not log.exists() or log.read_text() == ""
    finally:
        proc.kill()
        proc.wait()


def test_pid_is_knows_dockerd_by_proc_and_a_stray_agent_package_is_not_the_agent(tmp_path):
    pkg = tmp_path / "agent"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(30)\n")
    agent = subprocess.Popen([sys.executable, "-u", "-m", "agent", "run"], cwd=tmp_path, stdout=subprocess.PIPE)
    fake = tmp_path / "dockerd"
    shutil.copy("/bin/sleep", fake)  # comm "dockerd"
    dockerd = subprocess.Popen([str(fake), "30"])
    try:
        assert agent.stdout.readline().strip() == b"up"
        time.sleep(0.1)
        assert pid_is(dockerd.pid, DOCKERD_NAMES)
        # `python -m agent` of a package that is not this one (tests/unit/test_agent_pid.py)
        assert not agent_pid_is(agent.pid, process_start_time(agent.pid))
        assert not pid_is(agent.pid, DOCKERD_NAMES)
        assert pid_is(os.getpid(), ["pytest"]) or pid_is(os.getpid(), [os.path.basename(sys.argv[0])])
        assert not agent_pid_is(dockerd.pid, process_start_time(dockerd.pid))
    finally:
        for p in (agent, dockerd):
            p.kill()
            p.wait()


# ---- 3. files --------------------------------------------------------------

def test_read_text_refuses_what_is_not_a_regular_file_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "real").write_text("secret")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "big").write_bytes(b"x" * 5000)
    with deadline(5):
        for name in ("fifo", "link"):
            with pytest.raises(OSError):
                read_text(str(tmp_path / name))
        with pytest.raises(OSError):
            read_text("/dev/zero")
        with pytest.raises(OSError):
            read_text(str(tmp_path))
        with pytest.raises(OSError) as info:
            read_bytes_safely(str(tmp_path / "big"), 4096)
        assert info.value.errno == errno.EFBIG
    assert read_text(str(tmp_path / "missing")) is None
    assert read_text(str(tmp_path / "real")) == "secret"
    assert read_text("/proc/self/mountinfo")  # /proc files say size 0


def test_a_cifsumount_item_shows_only_its_mount_point_and_alias():
    """A v2 mount item pushed under the cifsumount key carries the password
    in its fourth line: kvp dump and the log showed it."""
    assert redact_item("cifsumount", "/c\r\n/C\r\nme\r\nHunt3rZZ\r\n") == "/c\r\n/C\r\n***\n***\n"
    assert redact_item("CIFSUMOUNT", "/c;/C;username=me,password=Hunt3rZZ") == "/c;/C;***"
    assert redact_item("cifsumount", "/c;/C") == "/c;/C"
    assert redact_item("cifsumount", "/c\n/C\n") == "/c\n/C\n"


@pytest.mark.parametrize("value", [
    "/c;/C;username=me,password=QXQXQX9,noperm\n",
    "/c;/C;username=me,password=QXQXQX9,noperm\r\n",
    "/c;/C;username=me,password=QXQXQX9\n/C\n",
    "/c\nusername=me,password=QXQXQX9\n",
    "/c;password=QXQXQX9",
    "password=QXQXQX9;/C",
])
def test_a_cifsumount_item_shows_no_password_in_any_field(value):
    """A v1 mount item with a trailing newline pushed under cifsumount was
    split at the newline and its first line, options and all, shown."""
    shown = redact_item("cifsumount", value)
    assert "QXQXQX9" not in shown
    assert shown.startswith("/c") or shown.startswith("***")


@pytest.mark.parametrize("value", [
    "/c\n/C\nme\n/QXQXQX9\nnoperm\n",  # a line added: 6 lines
    "/c\n/C\nme\n/QXQXQX9",  # a line missing: 4 lines
    "/c\n/C\nme\nnoperm\n/QXQXQX9\n",
    "/c;/C;username=me,password=x,username=QXQXQX9",  # an undoubled comma
    "/c;/C;password=x,user=QXQXQX9,noperm",
    "/c;/C;username=me,password=x,username=QXQXQX9\n",
])
def test_a_misshapen_mount_item_hides_every_line_that_may_be_the_password(value):
    """Lines after the first two of a misshapen v2 item were shown when
    they looked like a path (/QXQXQX9); a password tail reading
    'username=...' after an undoubled comma was shown."""
    assert "QXQXQX9" not in redact_item("cifsmount", value)


def test_the_agents_own_json_files_are_read_as_outside_input(tmp_path):
    """watch.json and status.json that are FIFOs or symlinks: no hang, no
    read through the link (`watch list` hung on a FIFO before)."""
    from agent import status
    from agent.loop import watch_list

    os.mkfifo(tmp_path / "watch.json")
    (tmp_path / "real.json").write_text('["/C/secret"]')
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    with deadline(5):
        assert watch_list(str(tmp_path / "watch.json")) == []
        assert watch_list(str(tmp_path / "link.json")) == []
        with pytest.raises(OSError):
            status.load(str(tmp_path / "watch.json"))
    assert watch_list(str(tmp_path / "real.json")) == ["/C/secret"]
    assert status.load(str(tmp_path / "missing.json")) is None


# ---- 4. --root is a boundary -------------------------------------------------

def test_under_refuses_dotdot_and_resolves_symlinks_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to("/run")  # absolute: the root's /run
    (root / "run").mkdir()
    (root / "escape").symlink_to("../../..")
    (root / "loop").symlink_to("loop")
    (root / "etc" / "abs").symlink_to("/etc/passwd")
    r = str(root)
    with pytest.raises(OSError):
        under(r, "/../../etc/passwd")
    with pytest.raises(OSError):
        under(r, "/etc/../../x")
    assert under(r, "/var/run/docker.pid") == os.path.join(os.path.realpath(r), "run", "docker.pid")
    with pytest.raises(OSError):
        under(r, "/escape/etc/passwd")
    with pytest.raises(OSError):
        resolve_under(r, "/loop/x")
    assert resolve_under(r, "/etc/abs") == os.path.join(os.path.realpath(r), "etc", "passwd")
    assert under(r, "/etc/abs") == os.path.join(os.path.realpath(r), "etc", "abs")  # the last one is opened O_NOFOLLOW
    assert under(r, "/new/dir/file") == os.path.join(os.path.realpath(r), "new", "dir", "file")
    assert under("/", "/etc/passwd") == "/etc/passwd"
    (root / "hostside").symlink_to(root / "etc")  # made on the host side, pointing inside the root
    assert resolve_under(r, "/hostside/x") == os.path.join(os.path.realpath(r), "etc", "x")


# ---- 6. text from outside ------------------------------------------------------

def test_printable_escapes_what_drives_a_terminal_or_forges_a_line():
    assert printable("a\nb") == "a\\nb"
    assert printable("\x1b[31mred") == "\\x1b[31mred"
    assert printable("x\r\ty\x7f\x9b") == "x\\r\\ty\\x7f\\x9b"
    assert printable("\u202egnp.exe") == "\\u202egnp.exe"
    assert printable("ok: é /C") == "ok: é /C"
    assert printable("bad \udcff") == "bad \\udcff"


@given(st.text())
def test_printable_is_one_line_without_control_characters(text):
    out = printable(text)
    assert out.isprintable()
    if text.isprintable():
        assert out == text


# ---- 3. pool files -------------------------------------------------------------

def test_pool_files_that_are_not_regular_files_are_a_kvp_error(tmp_path):
    pools = tmp_path / "hyperv"
    pools.mkdir()
    os.mkfifo(pools / ".kvp_pool_0")
    (pools / ".kvp_pool_1").mkdir()
    (pools / ".kvp_pool_2").symlink_to(pools / ".kvp_pool_2")
    with deadline(5):
        for n in (0, 1, 2):
            with pytest.raises(kvp.KvpError):
                kvp.read_pool(kvp.pool_path(str(pools), n))
        with pytest.raises(kvp.KvpError):
            kvp.update_pool(kvp.pool_path(str(pools), 0), {"a": "1"})
    flat = tmp_path / "flat"
    flat.write_text("a file where the pool directory should be")
    with pytest.raises(kvp.KvpError):
        kvp.read_pool(kvp.pool_path(str(flat), 0))
    with pytest.raises(kvp.KvpError):
        kvp.write_guest_items(str(flat), 1, {"a": "1"})
    assert kvp.read_pool(kvp.pool_path(str(tmp_path / "missing"), 0)).items == ()


def test_a_symlinked_pool_1_is_never_written_through(tmp_path):
    pools = tmp_path / "hyperv"
    pools.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (pools / ".kvp_pool_1").symlink_to(victim)
    with pytest.raises(kvp.KvpError):
        kvp.write_guest_items(str(pools), 1, {"moby-agent.state": "running"})
    with pytest.raises(kvp.KvpError):
        kvp.read_pool(str(pools / ".kvp_pool_1"))
    assert victim.read_bytes() == b"precious"


def test_an_unreadable_pool_is_a_kvp_error(tmp_path, monkeypatch):
    path = tmp_path / ".kvp_pool_0"
    path.write_bytes(kvp.encode([("a", "1")]))

    def eacces(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", eacces)
    with pytest.raises(kvp.KvpError):
        kvp.read_pool(str(path))
    with pytest.raises(kvp.KvpError):
        kvp.update_pool(str(path), {"b": "2"})


def test_a_lock_wait_ends_when_asked_to_stop(tmp_path):
    path = tmp_path / ".kvp_pool_1"
    path.write_bytes(kvp.encode([("a", "1")]))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
         "print('locked', flush=True)\n"
         "time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        stop_at = time.monotonic() + 0.3
        t0 = time.monotonic()
        with pytest.raises(kvp.KvpLockWait):
            kvp.read_pool(str(path), should_stop=lambda: time.monotonic() > stop_at)
        with pytest.raises(kvp.KvpLockWait):
            kvp.update_pool(str(path), {"b": "2"}, should_stop=lambda: time.monotonic() > stop_at)
        with pytest.raises(kvp.KvpLockWait):
            kvp.update_pool(str(path), {"b": "2"}, timeout=0.2)
        assert time.monotonic() - t0 < 2
    finally:
        holder.kill()
        holder.wait()
    assert kvp.read_pool(str(path), should_stop=lambda: True).items == (("a", "1"),)  # free: no wait


# ---- 3. the database -------------------------------------------------------------

def _hostile_tree(tmp_path):
    import socket

    from agent.settings import database

    top = tmp_path / "db"
    (top / "etc" / "docker" / "certs.d" / "r").mkdir(parents=True)
    (top / "etc" / "hosts").write_text("10.0.0.1 a\n")
    (top / "etc" / "docker" / "certs.d" / "r" / "client.key").write_bytes(b"\x30\x82\x04\xa4\xff\xfe\x00binary")
    secret = tmp_path / "shadow"
    secret.write_text("root:SECRET:")
    (top / "etc" / "resolv.conf").symlink_to(secret)  # out of the tree
    (top / "etc" / "inside").symlink_to(top / "etc" / "hosts")  # in the tree: still not followed
    (top / "etc" / "loop").symlink_to("loop")
    os.mkfifo(top / "etc" / "sysctl.conf")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(top / "etc" / "sock"))
    (top / "etc" / "big").write_bytes(b"x" * (database.MAX_FILE + 1))
    (top / "etc" / "bad\x1b[2Jname").write_text("x")
    (top / "linkdir").symlink_to(tmp_path)
    return top, sock


def test_database_read_tree_keeps_good_keys_and_reports_each_bad_one(tmp_path):
    from agent.settings import database

    top, sock = _hostile_tree(tmp_path)
    try:
        with deadline(10):
            tree, problems = database.read_tree_checked(str(top))
            old_shape = database.read_tree(str(top))
    finally:
        sock.close()
    assert tree["etc/hosts"] == "10.0.0.1 a\n"
    assert tree["etc/docker/certs.d/r/client.key"] == b"\x30\x82\x04\xa4\xff\xfe\x00binary"  # byte-exact
    assert old_shape == {"etc/hosts": "10.0.0.1 a\n"}
    for key in ("etc/resolv.conf", "etc/inside", "etc/loop", "etc/sysctl.conf", "etc/sock", "etc/big", "linkdir"):
        assert key in problems and key not in tree, key
    assert "etc/bad\\x1b[2Jname" in problems  # named printably
    assert all("SECRET" not in str(v) for v in list(tree.values()) + list(problems.values()))
    assert database.copy_mode("etc/docker/certs.d/r/client.key", tree["etc/docker/certs.d/r/client.key"]) == 0o600
    assert database.copy_mode("etc/x", "-----BEGIN RSA PRIVATE KEY-----\n") == 0o600
    assert database.copy_mode("etc/hosts", tree["etc/hosts"]) == 0o644


def test_mobyconfig_get_never_follows_a_symlink_nor_hangs(tmp_path):
    from agent.settings import database

    top, sock = _hostile_tree(tmp_path)
    try:
        with deadline(10):
            for key in ("etc/resolv.conf", "etc/sysctl.conf", "etc/big", "linkdir/shadow"):
                with pytest.raises(database.DatabaseError):
                    database.get(str(top), key)
            assert not database.exists(str(top), "linkdir")
            assert database.get(str(top), "etc/hosts") == "10.0.0.1 a\n"
            assert database.get_bytes(str(top), "etc/docker/certs.d/r/client.key").endswith(b"binary")
            assert "etc/resolv.conf" not in database.find(str(top), "")
    finally:
        sock.close()


def test_deep_json_is_a_value_error_not_a_recursion_error():

    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError):
        system.loads_limited(deep)
    assert system.json_depth('{"a": "[[[[[[", "b": [[1]]}') == 3
    assert system.loads_limited('{"debug": true, "x": [[1]]}') == {"debug": True, "x": [[1]]}
    with pytest.raises(ValueError):
        system.loads_limited('{"a":' * 65 + "1" + "}" * 65)


# ---- 5. config ---------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "[database]\npoll_seconds = inf",
    "[database]\npoll_seconds = nan",
    "[watch]\nrescan_seconds = inf",
    "[retry]\nmin_seconds = 1\nmax_seconds = inf",
    "[docker]\nverify_timeout = inf",
    "[docker]\nverify_timeout = 1e12",
    "[database]\npoll_seconds = 1e300",
    "[host]\naddress = \"evil.example.com\"",
    "[host]\naddress = \"10.0.75.1 ; rm -rf /\"",
    "[host]\naddress = \"0.0.0.0\"",
    "[database]\ntag = \"-oremount\"",
    "[database]\ntag = \"\"",
    "[database]\noptions = \"-o rw\"",
    "[network]\ninterface = \"-x\"",
    "[network]\ninterface = \"\"",
    "[docker]\nrestart_command = [\"-rf\"]",
    "[docker]\nrestart_command = [\"\"]",
    "[docker]\ndockerd = \"--help\"",
    "[shares]\nmount_pattern = \"^(a+)+$\"",
    "[shares]\nmount_pattern = \"^/(x|xx)*$\"",
    "[shares]\nmount_pattern = \"" + "a" * 500 + "\"",
    # A quantifier inside a fixed repeat is nested too: 2^n backtracking.
    "[shares]\nmount_pattern = '^/(?:[a-z]?){30}[a-z]{30}$'",
    "[shares]\nmount_pattern = '^/(?:a|ab){20}$'",
    "[database]\nmount_point = \"/\"",
    "[database]\nmount_point = \"/etc\"",
    "[kvp]\npool_dir = \"/var/lib/../../etc\"",
    "[watch]\nshares = [\"relative\"]",
    "[watch]\nskip = [\"\"]",
])
def test_config_refuses_what_would_kill_or_mislead_the_agent(text):
    from agent import agentconfig

    with pytest.raises(agentconfig.ConfigError) as info:
        agentconfig.parse(text, "/etc/moby-agent/agent.toml")
    assert "\n" not in str(info.value)


def test_every_system_directory_and_the_database_mount_point_are_refused():
    from agent import agentconfig
    from agent.shares.items import Limits

    conf = agentconfig.parse('[shares]\nmount_pattern = "^/.*$"\n[database]\nmount_point = "/cfg"')
    limits = agentconfig.share_limits(conf)
    for bad in ("/", "/etc", "/usr", "/proc", "/sys", "/dev", "/run", "/var", "/bin", "/sbin", "/lib", "/boot",
                "/root", "/tmp", "/home", "/opt", "/srv", "/lib64", "/cfg", "/cfg/x", "/Database"):
        with pytest.raises(ShareError):
            parse_mount(f"{bad};/C;username=u,password=p", limits)
    assert parse_mount("/mnt/c;/C;username=u,password=p", Limits(pattern="^/.*$")).mountpoint == "/mnt/c"
    # wider, but bounded, settings still pass
    conf = agentconfig.parse('[shares]\nmount_pattern = "^/(host/)?[A-Za-z]$"\n[database]\npoll_seconds = 5\n')
    assert conf.database.poll_seconds == 5.0


def test_a_fifo_as_agent_toml_is_a_config_error_not_a_hang(tmp_path):
    from agent import agentconfig

    os.mkfifo(tmp_path / "agent.toml")
    with deadline(5), pytest.raises(agentconfig.ConfigError):
        agentconfig.load(str(tmp_path / "agent.toml"))


def test_read_json_and_confirmed_pid(tmp_path):
    from agent.system import DOCKERD_NAMES, confirmed_pid, read_json

    (tmp_path / "ok.json").write_text('{"a": [1]}')
    assert read_json(str(tmp_path / "ok.json")) == {"a": [1]}
    (tmp_path / "deep.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ValueError):
        read_json(str(tmp_path / "deep.json"))
    (tmp_path / "link.json").symlink_to(tmp_path / "ok.json")
    os.mkfifo(tmp_path / "fifo.json")
    with deadline(5):
        for name in ("link.json", "fifo.json"):
            with pytest.raises(OSError):
                read_json(str(tmp_path / name))
    fake = tmp_path / "dockerd"
    shutil.copy("/bin/sleep", fake)
    dockerd = subprocess.Popen([str(fake), "30"])
    other = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.1)
        (tmp_path / "docker.pid").write_text(f"{dockerd.pid}\n")
        assert confirmed_pid(str(tmp_path / "docker.pid"), DOCKERD_NAMES) == dockerd.pid
        (tmp_path / "docker.pid").write_text(f"{other.pid}\n")  # a stale pid, reused
        assert confirmed_pid(str(tmp_path / "docker.pid"), DOCKERD_NAMES) is None
    finally:
        for p in (dockerd, other):
            p.kill()
            p.wait()


tree_entries = st.lists(st.tuples(
    st.sampled_from(["a", "etc", "etc/docker", "etc/docker/certs.d", "x/y/z"]),
    st.text(alphabet="abcz._-\x1b\n ", min_size=1, max_size=8),
    st.sampled_from(["text", "binary", "symlink-out", "symlink-in", "symlink-dir", "loop", "fifo", "socket", "big",
                     "mode-000", "dir"]),
    st.binary(max_size=64)), max_size=12)


@given(tree_entries)
def test_read_tree_checked_never_raises_and_accounts_for_every_entry(tmp_path_factory, entries):
    from agent.settings import database

    base = tmp_path_factory.mktemp("t")
    top = base / "db"
    top.mkdir()
    (base / "outside").write_text("QXQX")
    made = {}
    for directory, name, kind, data in entries:
        if "/" in name or name in (".", ".."):
            continue
        d = top / directory
        try:
            d.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            continue
        path = d / name
        if os.path.lexists(path):
            continue
        if kind == "text":
            path.write_text(data.decode("latin-1").replace("Q", "q").replace("X", "x"))
        elif kind == "binary":
            path.write_bytes(b"\xff" + data)
        elif kind == "symlink-out":
            path.symlink_to(base / "outside")
        elif kind == "symlink-in":
            path.symlink_to(top)
        elif kind == "symlink-dir":
            path.symlink_to("..")
        elif kind == "loop":
            path.symlink_to(name)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            os.mknod(path, stat.S_IFSOCK | 0o600)
        elif kind == "big":
            with open(path, "wb") as f:
                f.truncate(database.MAX_FILE + 1)
        elif kind == "mode-000":
            path.write_text("x")
            path.chmod(0)
        else:
            path.mkdir()
            continue
        made[f"{directory}/{name}"] = (kind, data)
    with deadline(10):
        tree, problems = database.read_tree_checked(str(top))
    for key, (kind, data) in made.items():
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", key):  # not a plain key: a problem, named printably
            assert key not in tree and printable(key) in problems, key
            continue
        if kind == "binary":
            assert tree.get(key) == b"\xff" + data  # byte-exact
        if kind in ("symlink-out", "symlink-in", "symlink-dir", "loop", "fifo", "socket", "big"):
            assert key not in tree
    assert all("QXQX" not in str(v) for v in tree.values())
    assert all(str(k).isprintable() and str(v).isprintable() for k, v in problems.items())


# ---- the agent's own share state is outside input ----------------------------

def test_a_drive_in_the_share_state_passes_the_rules_of_a_fresh_item(tmp_path):
    """shares.json with a drive at /etc bound onto /, with exec, suid and
    credentials= options and a user name carrying a line break, was
    planned as it stood (mount at /etc, bind /etc onto /)."""
    import json

    from agent.shares.apply import load_shares
    from agent.shares.items import Limits
    from agent.shares.plan import SharesState

    good = parse_mount("/c\n/C\nCORP\\me\npw,x\nnoperm,vers=3.0")
    bad = [
        {"mountpoint": "/etc", "alias": "/", "username": "me\ncredentials=/x", "password": "QXQXQX9",
         "domain": None, "options": ["exec", "suid", "credentials=/root/.smb"]},
        {"mountpoint": "/d", "alias": "/D", "username": "me", "password": "QXQXQX9", "domain": None,
         "options": ["exec"]},
        {"mountpoint": "/e", "alias": "/c", "username": "me", "password": "QXQXQX9", "domain": None,
         "options": []},  # the alias of another drive
        {"mountpoint": "/f", "alias": "/F", "username": "me", "password": "QXQXQX9", "domain": None,
         "options": ["VERS=3.0"]},  # not in its checked form
        {"mountpoint": "/g", "alias": "/G", "username": 7, "password": "QXQXQX9", "domain": None,
         "options": []},
    ]
    state = SharesState((good,), (("/c", "fp"),), made=("/C",))
    doc = json.loads(state.to_json())
    doc["drives"] += bad
    doc["mounted"].append(["/etc", "fp"])
    doc["made"].append("/usr")  # a directory the agent would remove at an alias change
    path = tmp_path / "shares.json"
    path.write_text(json.dumps(doc))
    loaded, problem = load_shares(str(path), Limits())
    assert loaded == state
    assert problem is not None and "QXQXQX9" not in problem
    for drive in ("'/etc'", "'/d'", "'/e'", "'/f'", "'/g'"):
        assert f"drive {drive}" in problem
    assert "mounted: mount point '/etc' is a system directory" in problem
    assert "made: mount point '/usr' is a system directory" in problem
    # Under a narrower pattern a drive saved before is dropped too.
    assert load_shares(str(path), Limits(r"^/[a-b]$"))[0].drives == ()
    path.write_text(state.to_json().decode())
    assert load_shares(str(path), Limits()) == (state, None)


# ---- no system command from a read-only command or under --root ---------------

def test_dockerd_version_is_asked_only_by_the_agents_own_passes_on_a_live_system(tmp_path):
    """plan and daemon-json (read-only) ran `dockerd --version`, and did so
    under --root too, where docker.dockerd can name any program."""
    from dataclasses import replace

    from agent.agentconfig import AgentConfig
    from agent.settings import apply as settings_apply

    marker = tmp_path / "ran"
    fake = tmp_path / "fake-dockerd"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\necho 'Docker version 24.0.7, build x'\n")
    fake.chmod(0o755)
    conf = AgentConfig()
    conf = replace(conf, docker=replace(conf.docker, dockerd=str(fake)))
    dropins = tmp_path / "etc/moby-agent/daemon.json.d"
    dropins.mkdir(parents=True)
    (dropins / "10-debug.json").write_text('{"debug": true}')
    settings_apply._VERSION_CACHE.clear()
    # A document whose render is the same for every engine: never asked
    # (the binary's start took 11 s in the guest).
    inputs = settings_apply.observe_host(conf, str(tmp_path), (), live=True, run_programs=True)
    assert not marker.exists() and inputs.dockerd_version == (20, 10)
    (dropins / "20-graph.json").write_text('{"graph": "/var/lib/docker"}')  # gone in 23: the version matters
    for live, run_programs in ((False, True), (False, False), (True, False)):
        inputs = settings_apply.observe_host(conf, str(tmp_path), (), live=live, run_programs=run_programs)
        assert not marker.exists() and inputs.dockerd_version == (20, 10)
    inputs = settings_apply.observe_host(conf, str(tmp_path), (), live=True, run_programs=True)
    assert marker.exists() and inputs.dockerd_version == (24, 0)
    settings_apply._VERSION_CACHE.clear()


def test_the_restart_command_is_never_a_system_command_under_root(tmp_path, monkeypatch):
    """With the working directory inside the root, a bare `rc-service`
    passed the guard (realpath resolved it against the cwd) and the
    system's rc-service ran from PATH."""
    from agent.settings.apply import restart_program

    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "rc-service").write_text("#!/bin/sh\n")
    (root / "bin" / "restart").write_text("#!/bin/sh\n")
    (root / "bin" / "sh").symlink_to(shutil.which("sh"))
    monkeypatch.chdir(root)
    for program in ("rc-service", "bin/restart", str(root / "bin" / "sh"), shutil.which("sh")):
        with pytest.raises(RuntimeError, match="not done under --root"):
            restart_program(program, str(root))
    assert restart_program(str(root / "bin" / "restart"), str(root)) == str(root / "bin" / "restart")
    # Live: found through PATH, never through the working directory.
    assert restart_program("sh", "/") == shutil.which("sh")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match="not found in PATH"):
        restart_program("rc-service", "/")


def test_a_symlinked_last_directory_stays_inside_the_root(tmp_path):
    """var/lib/hyperv and daemon.json.d symlinked out of the root: the pool
    was read (and pool 1 written) and the drop-ins rendered from outside,
    through the unresolved last directory."""
    from agent import hub
    from agent.agentconfig import AgentConfig
    from agent.settings.apply import observe_host
    from tests.integration.writer import make_pool_dir, write_items

    outside, root = tmp_path / "outside", tmp_path / "root"
    make_pool_dir(outside / "hyperv")
    write_items(str(outside / "hyperv" / ".kvp_pool_0"), [("secret", "QXQXQX9")])
    (outside / "dropins").mkdir()
    (outside / "dropins" / "10-x.json").write_text('{"debug": true}')
    (root / "var/lib").mkdir(parents=True)
    (root / "etc/moby-agent").mkdir(parents=True)
    (root / "var/lib/hyperv").symlink_to(outside / "hyperv")
    (root / "etc/moby-agent/daemon.json.d").symlink_to(outside / "dropins")
    obs = hub.observe(AgentConfig(), str(root), None)
    assert all(not pool.items for pool in obs.pools.values())
    assert observe_host(AgentConfig(), str(root), (), live=False).dropins == ()
    # A link inside the root is followed inside it.
    (root / "var/lib/hyperv").unlink()
    make_pool_dir(root / "real")
    write_items(str(root / "real" / ".kvp_pool_0"), [("k", "v")])
    (root / "var/lib/hyperv").symlink_to("/real")
    assert [i[0] for i in hub.observe(AgentConfig(), str(root), None).pools[0].items] == ["k"]


def test_legitimate_mount_patterns_plan_in_linear_time():
    """The cost check refuses nested repeats; the usual patterns pass and
    match a long path at once."""
    from agent.shares.items import Limits, compile_pattern

    for pattern in (r"^/[A-Za-z]$", r"^/[a-z]+$", r"^/(c|d|host)$", r"^/(host/)?[A-Za-z]$", r"^/[a-z]{2}[0-9]{3}$"):
        compiled = compile_pattern(pattern)
        with deadline(2):
            for _ in range(1000):
                compiled.fullmatch("/" + "a" * 60 + "A")
            with pytest.raises(ShareError):
                parse_mount("/" + "a" * 30 + "A;;username=me,password=x", Limits(pattern))


def test_a_mount_pattern_whose_worst_case_is_exponential_is_refused_naming_the_key_and_the_bound():
    """No quantifier at all, under 200 characters, nothing nested: 39
    alternations in a row try 2^39 ways on a path that fails at its end
    (2^24 took 0.4 s here: hours for this one). Planning must never meet it:
    agent.toml refuses it, saying which key and what bound."""
    from agent.shares import items
    from agent.shares.items import compile_pattern

    hostage = "^/" + "(a|a)" * 39 + "b$"
    assert len(hostage) <= 200
    with pytest.raises(ShareError, match=r"shares\.mount_pattern.*1,000,000"):
        compile_pattern(hostage)
    assert items.MAX_PATTERN_WAYS == 1_000_000
    # Just under the bound still works; at it, refused.
    compile_pattern("^/" + "(ab|cd)" * 19 + "$")
    with pytest.raises(ShareError, match="ways"):
        compile_pattern("^/" + "(ab|cd)" * 20 + "$")
    # Three unbounded quantifiers in a row (65^3 ways) are fine, as before.
    compile_pattern(r"^/[a-z]*[0-9]*[A-Z]*$")


def test_agent_toml_with_a_hostage_mount_pattern_is_a_config_error(tmp_path):
    from agent.agentconfig import ConfigError, load

    path = tmp_path / "agent.toml"
    path.write_text('[shares]\nmount_pattern = "^/' + "(a|a)" * 39 + 'b$"\n')
    with pytest.raises(ConfigError, match=r"shares\.mount_pattern: .*more than 1,000,000 ways \(the bound\)"):
        load(str(path), required=True)


def test_a_drive_in_the_share_state_may_not_take_any_earlier_drive_s_paths(tmp_path):
    """Not only the drive just before: the third drive reusing the first's
    mount point as its alias is dropped."""
    import json

    from agent.shares.apply import load_shares
    from agent.shares.items import Limits
    from agent.shares.plan import SharesState

    c = parse_mount("/c\n/C\nme\npw\nnoperm")
    d = parse_mount("/d\n/D\nme\npw\nnoperm")
    doc = json.loads(SharesState((c, d)).to_json())
    doc["drives"].append({"mountpoint": "/e", "alias": "/c", "username": "me", "password": "QXQXQX9",
                          "domain": None, "options": ["noperm"]})
    path = tmp_path / "shares.json"
    path.write_text(json.dumps(doc))
    loaded, problem = load_shares(str(path), Limits())
    assert loaded.drives == (c, d)
    assert problem is not None and "drive '/e'" in problem and "QXQXQX9" not in problem
