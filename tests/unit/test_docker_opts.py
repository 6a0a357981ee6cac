"""DOCKER_OPTS: read from /etc/conf.d/docker and checked against daemon.json.

dockerd refuses to start when a setting is given both as a flag and in
daemon.json (facts section 6). The oracles here are dockerd's own rules
(pflag's syntax, dockerd 20.10's flag list) and the real /bin/sh, never the
agent's output.
"""

import os
import shlex
import time
from collections import Counter

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from agent.settings import daemonjson
from agent.settings.daemonjson import ConfigProblem, Layers, render
from tests.daemonjson_samples import sample

# ---- the clash check --------------------------------------------------------


def test_no_new_privileges_flag_clashes_with_the_key():
    # Issue 19: "--no-new-privileges" was read as a negated "new-privileges".
    with pytest.raises(ConfigProblem, match="no-new-privileges set both in DOCKER_OPTS"):
        render(Layers(database='{"no-new-privileges": true}'), "--no-new-privileges")


@pytest.mark.parametrize(
    "opts, key",
    [
        ("--no-new-privileges=false", "no-new-privileges"),  # a flag set to false is still set
        ("-DH unix:///x.sock", "hosts"),
        ("-DH unix:///x.sock", "debug"),
        ("-Hunix:///x.sock", "hosts"),
        ("-H=unix:///x.sock", "hosts"),
        ("--label a --label=b", "labels"),
        ("--add-runtime r=/bin/r", "runtimes"),
        ("--default-ulimit nofile=1:2", "default-ulimits"),
        ("--mtu 1400", "mtu"),
        ("-s vfs", "storage-driver"),
        ("--iptables=false", "iptables"),
    ],
)
def test_flags_clash_with_their_keys(opts, key):
    value = {"hosts": ["unix://"], "labels": ["x=1"], "runtimes": {}, "default-ulimits": {}, "mtu": 1500,
             "storage-driver": "overlay2"}.get(key, False)
    doc = daemonjson.json.dumps({key: value})
    with pytest.raises(ConfigProblem, match=f"{key} set both in DOCKER_OPTS"):
        render(Layers(database=doc), opts)


@pytest.mark.parametrize(
    "opts",
    [
        "--label --debug",  # "--debug" is the label's value, as pflag reads it
        "-l debug",  # the value "debug" is not the flag --debug
        "-- --debug",  # after "--": not flags
        "--exec-root /debug",
        "",
    ],
)
def test_values_and_arguments_are_not_flags(opts):
    assert "debug" not in daemonjson.flag_keys(opts)
    render(Layers(database='{"debug": true}'), opts)  # no clash


@pytest.mark.parametrize(
    "args, keys",
    [
        (["--debug", "vfs"], {"debug"}),  # a stray word is no flag, nor its letters
        (["--=x", "--debug"], {"debug"}),  # a nameless flag: skipped, the rest still read
        (["-v"], {"v"}),  # a shorthand with no daemon.json key of its own: its name
        (["--unknown-flag"], {"unknown-flag"}),
        (["--unknown-flag", "x", "--debug"], {"unknown-flag", "debug"}),
        (["--unknown-flag", "--debug"], {"unknown-flag", "debug"}),
        (["-", "-D"], {"debug"}),
        (["--label"], {"labels"}),  # a value flag at the end (dockerd: "needs an argument")
        (["-H"], {"hosts"}),
        (["-Dl", "debug", "-s=vfs"], {"debug", "log-level", "storage-driver"}),
        (["-xD"], {"x"}),  # an unknown shorthand takes the rest of the word as its value
    ],
)
def test_args_flag_keys_examples(args, keys):
    assert daemonjson.args_flag_keys(args) == keys


def test_unbalanced_quotes_are_split_on_spaces():
    assert daemonjson.flag_keys('--debug --label "unterminated') == {"debug", "labels"}


# ---- pflag, as a property ---------------------------------------------------

# (long name, shorthand, daemon.json key, takes a value): dockerd 20.10's flags
# as `dockerd --help` lists them (a sample, both kinds, every shorthand).
DOCKERD_FLAGS = [
    ("debug", "D", "debug", False),
    ("host", "H", "hosts", True),
    ("log-level", "l", "log-level", True),
    ("storage-driver", "s", "storage-driver", True),
    ("bridge", "b", "bridge", True),
    ("group", "G", "group", True),
    ("pidfile", "p", "pidfile", True),
    ("data-root", None, "data-root", True),
    ("insecure-registry", None, "insecure-registries", True),
    ("registry-mirror", None, "registry-mirrors", True),
    ("label", None, "labels", True),
    ("dns", None, "dns", True),
    ("dns-opt", None, "dns-opts", True),
    ("exec-opt", None, "exec-opts", True),
    ("storage-opt", None, "storage-opts", True),
    ("log-opt", None, "log-opts", True),
    ("add-runtime", None, "runtimes", True),
    ("mtu", None, "mtu", True),
    ("no-new-privileges", None, "no-new-privileges", False),
    ("live-restore", None, "live-restore", False),
    ("iptables", None, "iptables", False),
    ("ip-masq", None, "ip-masq", False),
    ("selinux-enabled", None, "selinux-enabled", False),
    ("experimental", None, "experimental", False),
    ("tlsverify", None, "tlsverify", False),
    ("userland-proxy", None, "userland-proxy", False),
    ("config-file", None, "config-file", True),
]
SHORT_FLAGS = [f for f in DOCKERD_FLAGS if f[1]]
# Values, hostile ones included: a value that looks like a flag is still the
# value of a flag that takes one ("--label --debug").
flag_values = st.sampled_from(["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375", "--debug", "-D", "a b", "x=y",
                               "", "-", "--", "debug", "=", "vfs"])


@st.composite
def dockerd_argv(draw):
    """argv words that set some flags, in every syntax pflag accepts, with the
    keys they set (from the table above: the oracle)."""
    words, keys, styles_used = [], set(), []
    for _ in range(draw(st.integers(1, 5))):
        long, short, key, valued = draw(st.sampled_from(DOCKERD_FLAGS if draw(st.booleans()) else SHORT_FLAGS))
        keys.add(key)
        styles = ["long", "long="] + (["short", "short=", "combined"] if short else [])
        style = draw(st.sampled_from(styles))
        event(f"style {style}, {'value' if valued else 'boolean'}")
        styles_used.append(style)
        value = draw(flag_values)
        if style == "combined":
            # -D then this one's shorthand in the same word: "-DH v", "-DHv", "-DD".
            keys.add("debug")
            if valued and value and draw(st.booleans()):
                words.append(f"-D{short}{value}")
            else:
                words += [f"-D{short}", value] if valued else [f"-D{short}"]
        elif style == "long=":
            words.append(f"--{long}={value if valued else draw(st.sampled_from(['true', 'false']))}")
        elif style == "short=":
            words.append(f"-{short}={value if valued else draw(st.sampled_from(['true', 'false']))}")
        elif style == "long":
            words += [f"--{long}", value] if valued else [f"--{long}"]
        else:
            words += [f"-{short}", value] if valued else [f"-{short}"]
    if draw(st.booleans()):
        # Everything after "--" is an argument, not a flag.
        words += ["--", draw(st.sampled_from(["--debug", "-D", "--label=x", "x"]))]
        event("with arguments after --")
        styles_used.append("--")
    return words, keys, styles_used


@given(dockerd_argv())
def test_flag_keys_are_the_keys_pflag_sets(case):
    words, keys, _ = case
    assert daemonjson.args_flag_keys(words) == keys
    # The same through the string OpenRC evals.
    assert daemonjson.flag_keys(" ".join(shlex.quote(w) for w in words)) == keys


@given(dockerd_argv(), st.sampled_from(sorted(daemonjson.SCHEMA)))
def test_render_refuses_exactly_the_keys_set_twice(case, key):
    words, keys, _ = case
    opts = " ".join(shlex.quote(w) for w in words)
    value = sample(key)
    layers = Layers(database=daemonjson.json.dumps({key: value}))
    if key in keys:
        event("clash")
        with pytest.raises(ConfigProblem, match=f"{key} set both in DOCKER_OPTS"):
            render(layers, opts)
    else:
        assert render(layers, opts) == {key: value}


@pytest.mark.reach
def test_the_argv_generator_reaches_every_syntax():
    """The property above sees every syntax: counted over 300 examples."""
    seen = Counter()

    @settings(max_examples=300, database=None)
    @given(dockerd_argv())
    def collect(case):
        seen.update(set(case[2]))
    collect()
    # Each syntax in at least a tenth of the examples.
    assert all(seen[k] >= 30 for k in ("long", "long=", "short", "short=", "combined", "--")), seen


# ---- /etc/conf.d/docker, read without running it ----------------------------


@pytest.mark.parametrize(
    "text, opts",
    [
        ('DOCKER_OPTS=""\n# comment\nexport DOCKER_OPTS="-H tcp://0.0.0.0:2375 --debug"\n',
         "-H tcp://0.0.0.0:2375 --debug"),
        ('DOCKER_OPTS="--debug"\nDOCKER_OPTS="$DOCKER_OPTS --mtu 1400"\n', "--debug --mtu 1400"),
        ('DOCKER_OPTS="--debug"\nDOCKER_OPTS="${DOCKER_OPTS} --label \'a b\'"\n', "--debug --label 'a b'"),
        ('DOCKER_OPTS="--debug\n  --mtu 1400"\n', "--debug\n  --mtu 1400"),
        ("DOCKER_OPTS='$DOCKER_OPTS'\n", "$DOCKER_OPTS"),  # single quotes: no expansion
        ('X=--iptables=false\nDOCKER_OPTS="-D $X" # trailing comment\n', "-D --iptables=false"),
        ("DOCKER_OPTS=--debug\\\n--mtu=1\n", "--debug--mtu=1"),
        ('echo "DOCKER_OPTS=--debug"\n', ""),  # a command's argument is no assignment
        ('DOCKER_LOGFILE=/var/log/docker.log; DOCKER_OPTS="-D"\n', "-D"),
        ("", ""),
    ],
)
def test_docker_opts_from_confd(text, opts):
    assert daemonjson.docker_opts_from_confd(text) == opts


# conf.d files from the grammar of what such files hold: assignments, appends,
# exports, comments, quoting, values over several lines.
opt_words = st.sampled_from(["--debug", "-D", "--mtu 1400", "-H unix:///x.sock", "--label a=b", "--label 'a b'",
                             "--iptables=false", "--no-new-privileges", "-s vfs"])


@st.composite
def confd_files(draw):
    lines = [draw(st.sampled_from(["", "# /etc/conf.d/docker", 'DOCKER_LOGFILE="/var/log/docker.log"']))]
    for _ in range(draw(st.integers(1, 4))):
        words = draw(st.lists(opt_words, min_size=0, max_size=3))
        sep = draw(st.sampled_from([" ", "\n  ", " \\\n  "]))
        value = sep.join(words)
        append = draw(st.booleans())
        ref = draw(st.sampled_from(["$DOCKER_OPTS", "${DOCKER_OPTS}"]))
        quote = draw(st.sampled_from(['"', "'"])) if "'" not in value else '"'
        if append:
            event("append")
            body = f'"{ref} {value}"'
        else:
            body = f"{quote}{value}{quote}"
        if "\n" in value:
            event("multi-line value")
        prefix = draw(st.sampled_from(["", "export "]))
        comment = draw(st.sampled_from(["", "  # the flags"]))
        lines.append(f"{prefix}DOCKER_OPTS={body}{comment}")
    return "\n".join(lines) + "\n"


@settings(max_examples=min(60, settings().max_examples))  # each example runs /bin/sh
@given(confd_files())
def test_reading_confd_agrees_with_the_shell(tmp_path_factory, text):
    """The pure reader and /bin/sh sourcing the file give the same DOCKER_OPTS."""
    path = tmp_path_factory.mktemp("confd") / "docker"
    path.write_text(text)
    os.chmod(path, 0o644)
    assert daemonjson.docker_opts_from_confd(text) == daemonjson.evaluate_confd(str(path))


# ---- /etc/conf.d/docker, evaluated by a shell -------------------------------


def _confd(tmp_path, text, mode=0o644):
    path = tmp_path / "docker"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def test_the_shell_evaluates_what_the_reader_cannot(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_OPTS", "--from-our-environment")
    path = _confd(tmp_path, 'if true; then DOCKER_OPTS="${EXTRA:---debug}"; fi\necho noise\n'
                            'DOCKER_OPTS="$DOCKER_OPTS $(echo --mtu=1)"\n')
    assert daemonjson.evaluate_confd(path) == "--debug --mtu=1"
    assert daemonjson.docker_opts_from_file(path) == "--debug --mtu=1"


def test_the_shell_starts_with_an_empty_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_OPTS", "--debug")
    assert daemonjson.evaluate_confd(_confd(tmp_path, "# nothing\n")) == ""


def test_a_file_others_may_write_is_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = _confd(tmp_path, f'touch {marker}\nDOCKER_OPTS="--debug"\n', mode=0o666)
    assert daemonjson.evaluate_confd(path) is None
    assert not marker.exists()
    assert daemonjson.docker_opts_from_file(path) == "--debug"  # read, not run


def test_a_failing_file_falls_back_to_reading(tmp_path):
    path = _confd(tmp_path, 'DOCKER_OPTS="--debug"\nexit 3\n')
    assert daemonjson.evaluate_confd(path) is None
    assert daemonjson.docker_opts_from_file(path) == "--debug"


def test_a_missing_file_is_no_opts(tmp_path):
    assert daemonjson.docker_opts_from_file(str(tmp_path / "absent")) == ""


def test_a_file_that_hangs_is_killed_with_what_it_started(tmp_path):
    pidfile = tmp_path / "pid"
    path = _confd(tmp_path, f'DOCKER_OPTS=-D\nsleep 60 & echo $! > {pidfile}\nwait\n')
    start = time.monotonic()
    assert daemonjson.evaluate_confd(path, timeout=0.5) is None
    assert time.monotonic() - start < 3
    pid = int(pidfile.read_text())
    for _ in range(100):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    break  # killed; its new parent has not reaped it yet
        except FileNotFoundError:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"sleep {pid} outlived the timeout")
    assert daemonjson.docker_opts_from_file(path, timeout=0.5) == "-D"


# The pure reader against the shell on the awkward parts of shell words.
SHELL_CASES = [
    'DOCKER_OPTS=--label\\ a\\ b\n',
    'DOCKER_OPTS="a \\$HOME \\\\ \\" \\` b"\n',
    'DOCKER_OPTS="x\\ny"\n',
    "DOCKER_OPTS='a \\ b'\n",
    'DOCKER_OPTS=$\n',
    'DOCKER_OPTS="$ $1 x"\n',
    'X=1\nDOCKER_OPTS=${X}y$X\n',
    'DOCKER_OPTS=a#b\n',
    'DOCKER_OPTS=a # b\n',
    '  # comment\n\tDOCKER_OPTS="-D"   # more\n',
    'DOCKER_OPTS=-D;DOCKER_OPTS="$DOCKER_OPTS -H x"\n',
    'export DOCKER_OPTS=--debug X=1\n',
    "DOCKER_OPTS='it'\\''s'\n",
    'DOCKER_OPTS=""""\n',
    'DOCKER_OPTS=a"b"\'c\'d\n',
    'DOCKER_OPTS="\\a\\b"\n',
    "DOCKER_OPTS=x\n#",
    'DOCKER_OPTS=x',
]


@pytest.mark.parametrize("text", SHELL_CASES)
def test_the_reader_reads_shell_words_as_the_shell_does(tmp_path, text):
    path = _confd(tmp_path, text)
    assert daemonjson.docker_opts_from_confd(text) == daemonjson.evaluate_confd(path)


@pytest.mark.parametrize("text, opts", [("DOCKER_OPTS='unterminated\n", "unterminated\n"),
                                        ('DOCKER_OPTS="open', "open"), ("DOCKER_OPTS=end\\", "end")])
def test_what_the_shell_refuses_is_read_as_far_as_it_goes(text, opts):
    assert daemonjson.docker_opts_from_confd(text) == opts


def test_a_conf_d_that_is_not_utf8_is_read_all_the_same(tmp_path):
    path = tmp_path / "docker"
    path.write_bytes(b'# caf\xe9\nDOCKER_OPTS="-D"\n')
    os.chmod(path, 0o666)  # not run: read
    assert daemonjson.docker_opts_from_file(str(path)) == "-D"
    os.chmod(path, 0o644)
    assert daemonjson.docker_opts_from_file(str(path)) == "-D"


def test_the_timeout_is_passed_on(tmp_path):
    path = _confd(tmp_path, "DOCKER_OPTS=-D\nsleep 30\n")
    start = time.monotonic()
    assert daemonjson.docker_opts_from_file(path, timeout=0.3) == "-D"
    assert time.monotonic() - start < 3


@pytest.mark.parametrize(
    "args, keys",
    [
        (["-D=false"], {"debug"}),
        (["-D", "--label=x"], {"debug", "labels"}),
        (["-H", "--debug"], {"hosts"}),
    ],
)
def test_more_args(args, keys):
    assert daemonjson.args_flag_keys(args) == keys


def test_the_clash_message():
    with pytest.raises(ConfigProblem) as info:
        render(Layers(database='{"debug": true, "hosts": []}'), "-D -H x")
    assert str(info.value) == ("debug, hosts set both in DOCKER_OPTS (/etc/conf.d/docker) and in daemon.json; "
                               "dockerd refuses to start on that: remove one")
