"""daemon.json, rendered by a pure function from layered settings.

Layers, later wins: built-in defaults, drop-ins (/etc/moby-agent/daemon.json.d
/*.json, in name order), the database's etc/docker/daemon.json, then the
legacy keys (insecure-registry, proxy/http, proxy/https, proxy/exclude).
Merge rules: objects are merged key by key (recursively), lists are joined
and de-duplicated keeping the first occurrence, anything else is replaced.
"""

import ipaddress
import json
import os
import shlex
import signal
import stat
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from agent.lazyre import lazy
from agent.record import dataclass

DEFAULTS: Dict[str, Any] = {}

BOOL, STR, INT = "a boolean", "a string", "an integer"
LSTR, OBJ, LOBJ = "a list of strings", "an object", "a list of objects"
SCHEMA: Dict[str, str] = {
    "allow-nondistributable-artifacts": LSTR,
    "api-cors-header": STR,
    "authorization-plugins": LSTR,
    "bip": STR,
    "bridge": STR,
    "builder": OBJ,
    "cgroup-parent": STR,
    "cluster-advertise": STR,
    "cluster-store": STR,
    "cluster-store-opts": OBJ,
    "containerd": STR,
    "containerd-namespace": STR,
    "containerd-plugins-namespace": STR,
    "cpu-rt-period": INT,
    "cpu-rt-runtime": INT,
    "cri-containerd": BOOL,
    "deprecated-key-path": STR,
    "graph": STR,
    "host-gateway-ip": STR,
    "network-control-plane-mtu": INT,
    "network-diagnostic-port": INT,
    "rootless": BOOL,
    "data-root": STR,
    "debug": BOOL,
    "default-address-pools": LOBJ,
    "default-cgroupns-mode": STR,
    "default-gateway": STR,
    "default-gateway-v6": STR,
    "default-ipc-mode": STR,
    "default-runtime": STR,
    "default-shm-size": STR,
    "default-ulimits": OBJ,
    "dns": LSTR,
    "dns-opts": LSTR,
    "dns-search": LSTR,
    "exec-opts": LSTR,
    "exec-root": STR,
    "experimental": BOOL,
    "features": OBJ,
    "fixed-cidr": STR,
    "fixed-cidr-v6": STR,
    "group": STR,
    "hosts": LSTR,
    "icc": BOOL,
    "init": BOOL,
    "init-path": STR,
    "insecure-registries": LSTR,
    "ip": STR,
    "ip-forward": BOOL,
    "ip-masq": BOOL,
    "ip6tables": BOOL,
    "iptables": BOOL,
    "ipv6": BOOL,
    "labels": LSTR,
    "live-restore": BOOL,
    "log-driver": STR,
    "log-level": STR,
    "log-opts": OBJ,
    "max-concurrent-downloads": INT,
    "max-concurrent-uploads": INT,
    "max-download-attempts": INT,
    "metrics-addr": STR,
    "mtu": INT,
    "no-new-privileges": BOOL,
    "node-generic-resources": LSTR,
    "oom-score-adjust": INT,
    "pidfile": STR,
    "raw-logs": BOOL,
    "registry-mirrors": LSTR,
    "runtimes": OBJ,
    "seccomp-profile": STR,
    "selinux-enabled": BOOL,
    "shutdown-timeout": INT,
    "storage-driver": STR,
    "storage-opts": LSTR,
    "swarm-default-advertise-addr": STR,
    "tls": BOOL,
    "tlscacert": STR,
    "tlscert": STR,
    "tlskey": STR,
    "tlsverify": BOOL,
    "userland-proxy": BOOL,
    "userland-proxy-path": STR,
    "userns-remap": STR,
}
PROXIES_SINCE = (23, 0)  # daemon.json "proxies" exists from Docker 23
# The SCHEMA is dockerd 20.10's (tests/integration/test_dockerd.py has the
# real one accept every key); these went in Docker 23.
REMOVED_IN_23: FrozenSet[str] = frozenset({"cluster-advertise", "cluster-store", "cluster-store-opts", "graph",
                                           "deprecated-key-path"})
GO_INT = (-(1 << 63), (1 << 63) - 1)
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
_BAD_CHAR = lazy(r"[\s\x00-\x1f\x7f]")
_SIZE = lazy(r"^\d+(\.\d+)? ?[kKmMgGtTpP]?[iI]?[bB]?$")  # go-units RAMInBytes

# What SIGHUP reloads (facts section 6); any other change needs a restart.
RELOADABLE: FrozenSet[str] = frozenset(
    {
        "debug",
        "labels",
        "live-restore",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "default-runtime",
        "runtimes",
        "authorization-plugins",
        "insecure-registries",
        "registry-mirrors",
        "shutdown-timeout",
        "features",
    }
)

# dockerd flags whose daemon.json key differs from the flag name (dockerd
# matches a flag against daemon.json by its long name, its shorthand, or for
# list options the option's own name, e.g. --label and "labels").
_FLAG_KEYS = {
    "H": "hosts",
    "host": "hosts",
    "D": "debug",
    "l": "log-level",
    "s": "storage-driver",
    "b": "bridge",
    "G": "group",
    "g": "data-root",
    "graph": "data-root",
    "p": "pidfile",
    "insecure-registry": "insecure-registries",
    "registry-mirror": "registry-mirrors",
    "label": "labels",
    "dns-opt": "dns-opts",
    "exec-opt": "exec-opts",
    "storage-opt": "storage-opts",
    "log-opt": "log-opts",
    "add-runtime": "runtimes",
    "authorization-plugin": "authorization-plugins",
    "default-ulimit": "default-ulimits",
    "default-address-pool": "default-address-pools",
    "cluster-store-opt": "cluster-store-opts",
    "node-generic-resource": "node-generic-resources",
    "tlsverify": "tlsverify",
    "feature": "features",
}
# dockerd 20.10's flags that take no value (pflag booleans: "--debug", "-D",
# "--debug=false"; a value needs "="). Every other known flag takes one, as
# "--flag=v", "--flag v" (the next word, whatever it is), "-Hv", "-H v".
# There is no "--no-" negation: --no-new-privileges is the flag of the key
# "no-new-privileges".
BOOL_FLAGS: FrozenSet[str] = frozenset(
    {"D", "h", "v", "help", "version", "validate", "rootless", "cri-containerd"}
    | {key for key, kind in SCHEMA.items() if kind == BOOL}
)
VALUE_FLAGS: FrozenSet[str] = frozenset(
    {"config-file", "cpu-rt-period", "cpu-rt-runtime", "host-gateway-ip", "network-control-plane-mtu"}
    | set(_FLAG_KEYS)
    | {key for key, kind in SCHEMA.items() if kind != BOOL}
) - BOOL_FLAGS


class ConfigProblem(Exception):
    """A layer that cannot be used; the text names the layer and the key."""


@dataclass(frozen=True)
class Layers:
    """What daemon.json is rendered from: drop-ins, the database's keys, DOCKER_OPTS."""

    dropins: Tuple[Tuple[str, str], ...] = ()  # (file name, text)
    database: Optional[str] = None  # etc/docker/daemon.json from the database
    insecure_registry: Optional[str] = None
    proxy_http: Optional[str] = None
    proxy_https: Optional[str] = None
    proxy_exclude: Optional[str] = None


def merge(base: Any, over: Any) -> Any:
    if isinstance(over, dict):  # merged into an object below it; lists inside de-duplicated
        out = dict(base) if isinstance(base, dict) else {}
        for key, value in over.items():
            out[key] = merge(out.get(key), value)
        return out
    if isinstance(over, list):  # joined with a list below it, and always de-duplicated
        out_list: List[Any] = []
        for item in (base if isinstance(base, list) else []) + over:
            if item not in out_list:
                out_list.append(item)
        return out_list
    return over


def _type_ok(kind: str, value: Any) -> bool:
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == STR:
        return isinstance(value, str)
    if kind == LSTR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == OBJ:
        return isinstance(value, dict)
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)  # LOBJ


def _ip(value: str) -> Optional[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{json.dumps(value)[:60]} is not an IP address"
    return None


def _cidr(value: str) -> Optional[str]:
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return f"{json.dumps(value)[:60]} is not an address with a prefix (CIDR)"
    return None


def _word(value: str) -> Optional[str]:
    if not value or _BAD_CHAR.search(value):
        return f"{json.dumps(value)[:60]} is empty or holds a space, newline or control character"
    return None


def _mirror(value: str) -> Optional[str]:
    from urllib.parse import urlsplit

    bad = _word(value)
    if bad:
        return bad
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{json.dumps(value)[:60]} is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{json.dumps(value)[:60]} must be an http:// or https:// URL with a host"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"{json.dumps(value)[:60]}: a mirror has no path, query or fragment"
    return None


def _label(value: str) -> Optional[str]:
    return None if "=" in value else f"{json.dumps(value)[:60]} is not key=value"


def _size(value: str) -> Optional[str]:
    return None if _SIZE.match(value) else f"{json.dumps(value)[:60]} is not a size such as 64M"


def _range(low: int, high: int) -> Any:
    def check_range(value: int) -> Optional[str]:
        return None if low <= value <= high else f"{value} is not from {low} to {high}"
    return check_range


def _each(check_one: Any) -> Any:
    def check_all(values: List[str]) -> Optional[str]:
        for v in values:
            bad = check_one(v)
            if bad:
                return bad
        return None
    return check_all


# Values dockerd 20.10 refuses (it does not start, or fails at a reload),
# and counts that make no sense; every INT is also within Go's int.
FORMATS: Dict[str, Any] = {
    "max-concurrent-downloads": _range(0, GO_INT[1]),
    "max-concurrent-uploads": _range(0, GO_INT[1]),
    "max-download-attempts": _range(1, GO_INT[1]),
    "mtu": _range(0, 65535),
    "network-control-plane-mtu": _range(0, 65535),
    "oom-score-adjust": _range(-1000, 1000),
    "network-diagnostic-port": _range(0, 65535),
    "log-level": lambda v: None if v in LOG_LEVELS else f"{json.dumps(v)[:60]} is not one of {', '.join(LOG_LEVELS)}",
    "insecure-registries": _each(_word),
    "allow-nondistributable-artifacts": _each(_word),
    "registry-mirrors": _each(_mirror),
    "labels": _each(_label),
    "dns": _each(_ip),
    "ip": _ip,
    "host-gateway-ip": _ip,
    "default-gateway": _ip,
    "default-gateway-v6": _ip,
    "bip": _cidr,
    "fixed-cidr": _cidr,
    "fixed-cidr-v6": _cidr,
    "hosts": _each(_word),
    "default-shm-size": _size,
}


def check(doc: Mapping[str, Any], where: str, version: Tuple[int, int]) -> None:
    """Each key as dockerd of that version checks it: known, of its type,
    within its range, in its format."""
    for key, value in doc.items():
        kind = SCHEMA.get(key)
        if key in REMOVED_IN_23 and version >= PROXIES_SINCE:
            kind = None
        if key == "proxies" and version >= PROXIES_SINCE:
            kind = OBJ
            if not isinstance(value, dict) or not all(
                    k in ("http-proxy", "https-proxy", "no-proxy") and isinstance(v, str) for k, v in value.items()):
                raise ConfigProblem(f"{where}: 'proxies' must be an object of strings: http-proxy, https-proxy, "
                                    "no-proxy")
        if kind is None:
            raise ConfigProblem(f"{where}: {key!r} is not a daemon.json key dockerd {version[0]}.{version[1]} knows")
        if not _type_ok(kind, value):
            raise ConfigProblem(f"{where}: {key!r} must be {kind}, not {json.dumps(value)[:60]}")
        if kind == INT and not GO_INT[0] <= value <= GO_INT[1]:
            raise ConfigProblem(f"{where}: {key!r}: {value} is outside Go's int range")
        bad = FORMATS[key](value) if key in FORMATS else None
        if bad:
            raise ConfigProblem(f"{where}: {key!r}: {bad}")


def _parse(text: str, where: str, version: Tuple[int, int]) -> Dict[str, Any]:
    from agent.system import loads_limited

    try:
        doc = loads_limited(text)  # a value nested too deep is refused, never a RecursionError
    except ValueError as exc:
        raise ConfigProblem(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigProblem(f"{where}: must be a JSON object")
    check(doc, where, version)
    return doc


def flag_keys(docker_opts: str) -> FrozenSet[str]:
    """The daemon.json keys that DOCKER_OPTS sets as flags. The words are
    split as OpenRC's `eval` of command_args splits them (shell quoting);
    then read as dockerd's flag parser (pflag) reads them."""
    try:
        words = shlex.split(docker_opts)
    except ValueError:
        words = docker_opts.split()
    return args_flag_keys(words)


def args_flag_keys(args: Sequence[str]) -> FrozenSet[str]:
    """The daemon.json keys that dockerd's argv sets, read as pflag does:
    "--flag=v", "--flag v" (the next word, whatever it is), "-H v", "-Hv",
    "-H=v", combined shorthands ("-DH v": -D, then -H with the next word),
    "--" ends the flags. A word that is no flag and no flag's value is
    skipped (dockerd takes no arguments; it refuses to start on one, as on
    an unknown flag, which is also taken to be its key)."""
    keys = set()
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            break
        if not word.startswith("-"):
            continue
        if word.startswith("--"):
            name, eq, _ = word[2:].partition("=")
            if name:
                keys.add(_FLAG_KEYS.get(name, name))
                if not eq and name in VALUE_FLAGS:
                    i += 1  # its value is the next word
            continue
        shorts = word[1:]
        while shorts:
            name, shorts = shorts[0], shorts[1:]
            keys.add(_FLAG_KEYS.get(name, name))
            if shorts.startswith("=") or (shorts and name not in BOOL_FLAGS):
                break  # the rest of the word is the value
            if not shorts and name in VALUE_FLAGS:
                i += 1  # its value is the next word
    return frozenset(keys)


_ASSIGNMENT = lazy(r"(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=")
_WORD_END = " \t\n;&|<>()"
_PARAMETER = lazy(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*|[0-9])")


def _shell_word(text: str, i: int, variables: Mapping[str, str]) -> Tuple[str, int]:
    """One shell word from text[i:] as an assignment's value: quotes removed
    (a quoted value may span lines), backslash escapes, and $NAME / ${NAME}
    replaced by what the file assigned before (unset: empty). No field
    splitting (an assignment has none)."""
    out: List[str] = []
    n = len(text)

    def expand(j: int) -> int:
        """text[j] is '$': append the expansion, return the index after it."""
        m = _PARAMETER.match(text, j + 1)
        if not m:
            out.append("$")
            return j + 1
        out.append(variables.get(m.group(1) or m.group(2), ""))
        return m.end()

    while i < n and text[i] not in _WORD_END:
        c = text[i]
        if c == "\\":
            if text[i + 1 : i + 2] == "\n":
                i += 2  # line continuation
            else:
                out.append(text[i + 1 : i + 2])
                i += 2
        elif c == "'":
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            out.append(text[i + 1 : end])
            i = end + 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and text[i + 1 : i + 2] in ('"', "\\", "$", "`", "\n"):
                    out.append("" if text[i + 1] == "\n" else text[i + 1])
                    i += 2
                elif text[i] == "$":
                    i = expand(i)
                else:
                    out.append(text[i])
                    i += 1
            i += 1
        elif c == "$":
            i = expand(i)
        else:
            out.append(c)
            i += 1
    return "".join(out), i


def docker_opts_from_confd(text: str) -> str:
    """DOCKER_OPTS as /etc/conf.d/docker leaves it, read without running it.

    Pure. Understood: assignments (also after `export`, several on a line),
    comments, quotes (values spanning lines), backslash escapes, and
    $NAME / ${NAME} of variables the file assigned before, so that
    `DOCKER_OPTS="$DOCKER_OPTS --debug"` appends. Not evaluated: commands,
    conditionals, ${X:-default}, command substitution; for those,
    docker_opts_from_file() has a shell source the file as the init script
    does."""
    variables: Dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        # At the start of a statement.
        while i < n and text[i] in " \t\n;":
            i += 1
        if i >= n:
            break
        if text[i] == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        m = _ASSIGNMENT.match(text, i)
        while m:
            value, i = _shell_word(text, m.end(), variables)
            variables[m.group(1)] = value
            while i < n and text[i] in " \t":
                i += 1
            m = _ASSIGNMENT.match(text, i)
        # Whatever else the statement holds (a command): skipped, word by word.
        while i < n and text[i] not in "\n;":
            # A word's first character (after a blank or an operator such as
            # `&`): a comment, as the shell reads it.
            if text[i] == "#" and (i == 0 or text[i - 1] in _WORD_END):
                end = text.find("\n", i)
                i = n if end < 0 else end
                break
            if text[i] in _WORD_END:
                i += 1
                continue
            _, i = _shell_word(text, i, {})
    return variables.get("DOCKER_OPTS", "")


_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def evaluate_confd(path: str, timeout: float = 5.0) -> Optional[str]:
    """DOCKER_OPTS after `/bin/sh` sources `path` as OpenRC does before
    starting dockerd, or None (the shell failed, timed out, or the file is
    writable by someone else than its owner, or owned by another user than
    root or us: then it is not run).

    Sourcing runs whatever the file holds, with the agent's rights (root in
    the VM): OpenRC sources the same file as root, so this is no worse, but
    it runs in its own session with stdin from /dev/null, an environment
    holding only PATH, its output discarded, and it is killed (with anything
    it started in its process group) after `timeout` seconds."""
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022 or not stat.S_ISREG(st.st_mode):
        return None
    # No positional parameters inside the file ($1 would be its path).
    script = 'moby_agent_confd=$1; set --; . "$moby_agent_confd" </dev/null >/dev/null 2>&1 || exit 1; ' \
        'printf %s "${DOCKER_OPTS-}"'
    import subprocess  # only here: about 3 ms of start-up for the commands that never run it

    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script, "sh", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PATH": _SAFE_PATH},
            cwd="/",
            start_new_session=True,
        )
    except OSError:
        return None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            pass  # something it started in another session holds the pipe
        if proc.stdout is not None:
            proc.stdout.close()
        proc.kill()
        proc.wait()
        return None
    if proc.returncode != 0:
        return None
    return out.decode("utf-8", "replace")


def docker_opts_from_file(path: str, timeout: float = 5.0, text: Optional[str] = None) -> str:
    """DOCKER_OPTS from /etc/conf.d/docker (`path`): as a shell sourcing it
    sees it (evaluate_confd), or, when it cannot be run, as
    docker_opts_from_confd reads its text (`text` when the caller has read
    it already). A missing file, or one that is not a plain file (a
    symlink, a FIFO: never followed, never waited on): ""."""
    if text is None:
        from agent.system import read_text

        try:
            text = read_text(path)
        except OSError:
            return ""
        if text is None:
            return ""
    evaluated = evaluate_confd(path, timeout)
    return docker_opts_from_confd(text) if evaluated is None else evaluated


def proxy_values(layers: Layers) -> Dict[str, Optional[str]]:
    return {"proxy/http": layers.proxy_http, "proxy/https": layers.proxy_https, "proxy/exclude": layers.proxy_exclude}


def version_matters(texts: Sequence[Optional[str]], proxy_set: bool) -> bool:
    """Whether the engine's version can change the rendered daemon.json:
    only for proxies and the keys dockerd 23 removed. Asking `dockerd
    --version` costs a start of a 70 MB Go binary (11 s under the stand-in
    guest's TCG), so the pass asks only then; for every other document the
    render is the same whatever the version. A text that does not parse is
    the render's problem to name."""
    from agent.system import loads_limited

    if proxy_set:
        return True
    for text in texts:
        try:
            doc = loads_limited(text) if text else None
        except ValueError:
            continue
        if isinstance(doc, dict) and set(doc) & (REMOVED_IN_23 | {"proxies"}):
            return True
    return False


def render(layers: Layers, docker_opts: str = "", version: Tuple[int, int] = (20, 10),
           host_address: str = "10.0.75.1") -> Dict[str, Any]:
    """The daemon.json document, or ConfigProblem naming the bad part. The
    proxy/* keys become "proxies" from dockerd 23 (a bad one is left out:
    proxy.settings names it); before 23 they are no part of daemon.json
    (the environment file carries them)."""
    from agent.settings import proxy
    doc: Dict[str, Any] = dict(DEFAULTS)
    for name, text in layers.dropins:
        doc = merge(doc, _parse(text, f"drop-in {name}", version))
    if layers.database is not None:
        doc = merge(doc, _parse(layers.database, "database key etc/docker/daemon.json", version))
    if layers.insecure_registry and layers.insecure_registry.strip():
        doc = merge(doc, {"insecure-registries": [layers.insecure_registry.strip()]})
    proxies, _bad = proxy.settings(proxy_values(layers), host_address)
    if proxies and version >= PROXIES_SINCE:
        doc = merge(doc, {"proxies": proxies})
    if "graph" in doc and "data-root" in doc:
        raise ConfigProblem('"graph" (the old name of "data-root") and "data-root" both set; dockerd refuses to '
                            "start on that: remove one")
    clashes = sorted(flag_keys(docker_opts) & set(doc))
    if clashes:
        raise ConfigProblem(
            f"{', '.join(clashes)} set both in DOCKER_OPTS (/etc/conf.d/docker) and in daemon.json; dockerd refuses "
            "to start on that: remove one"
        )
    return doc


def encode(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def changed_keys(old: Optional[str], new: Mapping[str, Any]) -> FrozenSet[str]:
    """Top-level keys whose value differs (old unreadable: every key)."""
    from agent.system import loads_limited

    try:
        before = loads_limited(old) if old else {}
    except ValueError:
        before = None
    if not isinstance(before, dict):
        return frozenset(new) | {"<unreadable>"}
    return frozenset(k for k in set(before) | set(new) if before.get(k) != new.get(k))


def removed_keys(old: Optional[str], new: Mapping[str, Any]) -> FrozenSet[str]:
    """Top-level keys the old daemon.json had and the new one has not."""
    from agent.system import loads_limited

    try:
        before = loads_limited(old) if old else {}
    except ValueError:
        return frozenset()
    return frozenset(set(before) - set(new)) if isinstance(before, dict) else frozenset()


def how_to_apply(changed: FrozenSet[str], running: bool, removed: FrozenSet[str] = frozenset()) -> str:
    """'none' (dockerd not running, or nothing changed), 'reload' (SIGHUP:
    every changed key is reloadable) or 'restart'. A key removed from the
    file needs a restart even when SIGHUP reloads it: dockerd's reload sets
    only the keys the file has and keeps the rest (labels, debug and the
    registries stayed as they were; seen with the guest's dockerd 20.10)."""
    if not running or not changed:
        return "none"
    return "reload" if changed <= RELOADABLE and not removed else "restart"


def version_of(text: str) -> Tuple[int, int]:
    """'Docker version 20.10.24+dfsg1, build 297e128' -> (20, 10)."""
    for word in text.replace(",", " ").split():
        parts = word.split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1][:2].isdigit():
            return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    return (20, 10)


def expected_info(doc: Mapping[str, Any], removed: FrozenSet[str] = frozenset()) -> Dict[str, Any]:
    """What /info must show once doc is in effect (the keys we can check);
    a removed key, its default."""
    out: Dict[str, Any] = {}
    if "debug" in doc or "debug" in removed:
        out["Debug"] = doc.get("debug", False)
    if "insecure-registries" in doc:
        out["insecure"] = sorted(doc["insecure-registries"])
    if "registry-mirrors" in doc or "registry-mirrors" in removed:
        out["mirrors"] = sorted(m.rstrip("/") + "/" for m in doc.get("registry-mirrors", []))
    if "labels" in doc or "labels" in removed:
        out["Labels"] = sorted(doc.get("labels", []))
    return out


def differences(info: Mapping[str, Any], expected: Mapping[str, Any]) -> List[str]:
    diffs = []
    if "Debug" in expected and info.get("Debug") != expected["Debug"]:
        diffs.append(f"Debug is {info.get('Debug')}, want {expected['Debug']}")
    registry = info.get("RegistryConfig") or {}
    if "insecure" in expected:
        index = registry.get("IndexConfigs") or {}
        for reg in expected["insecure"]:
            if (index.get(reg) or {}).get("Secure", True):
                diffs.append(f"registry {reg} is not insecure in /info")
    if "mirrors" in expected:
        mirrors = registry.get("Mirrors") or []
        for m in expected["mirrors"]:
            if m not in mirrors:
                diffs.append(f"mirror {m} is not in /info")
        for m in sorted(set(mirrors) - set(expected["mirrors"])):
            diffs.append(f"mirror {m} is still in /info")
    if "Labels" in expected:
        labels = info.get("Labels") or []
        for label in expected["Labels"]:
            if label not in labels:
                diffs.append(f"label {label} is not in /info")
        for label in sorted(set(labels) - set(expected["Labels"])):
            diffs.append(f"label {label} is still in /info")
    return diffs


def dropin_names(names: Sequence[str]) -> List[str]:
    return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))
