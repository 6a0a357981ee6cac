"""agent.toml -> typed settings.

Every setting has a default, so no file is needed. An unknown key or a value
of the wrong type is a ConfigError naming the file, the key and what was
expected; the agent does not start on it.
"""

import dataclasses
import ipaddress
import math
import sys
import typing
from dataclasses import field
from typing import Any, Dict, List, Mapping, Tuple, Union

from agent.lazyre import LazyPattern, lazy
from agent.record import dataclass
from agent.shares.items import FORBIDDEN, Limits, ShareError, compile_pattern
from agent.system import UnsafePath, printable, read_bytes_safely

DEFAULT_PATH = "/etc/moby-agent/agent.toml"
MAX_CONFIG = 1 << 20
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """The configuration file is unreadable or names a bad setting."""


@dataclass(frozen=True)
class HostConfig:
    """[host]: the Windows host's address on DockerNAT."""

    address: str = "10.0.75.1"


@dataclass(frozen=True)
class KvpConfig:
    """[kvp]: where hv_kvp_daemon keeps the pool files."""

    pool_dir: str = "/var/lib/hyperv"


@dataclass(frozen=True)
class DatabaseConfig:
    """[database]: the host's configuration database (kernel command line label, 9p mount)."""

    label: str = "com.docker.database"
    cmdline: str = "/proc/cmdline"
    mount_point: str = "/Database"
    tag: str = "db"
    options: str = "trans=virtio,dfltuid=1001,dfltgid=50,version=9p2000"
    poll_seconds: float = 0.0


@dataclass(frozen=True)
class DockerConfig:
    """[docker]: dockerd's files, socket and pid file, and how to restart it."""

    daemon_json: str = "/etc/docker/daemon.json"
    socket: str = "/var/run/docker.sock"
    pidfile: str = "/var/run/docker.pid"
    dropin_dir: str = "/etc/moby-agent/daemon.json.d"
    confd: str = "/etc/conf.d/docker"
    proxy_env: str = "/etc/docker/moby-agent-proxy.env"
    dockerd: str = "dockerd"
    restart_command: Tuple[str, ...] = ("rc-service", "docker", "restart")
    verify_timeout: float = 30.0


@dataclass(frozen=True)
class NetworkConfig:
    """[network]: the interface a static address goes on."""

    interface: str = "eth0"


@dataclass(frozen=True)
class StatusConfig:
    """[status]: the status file, and whether pool 1 carries the agent's items."""

    file: str = "/run/moby-agent/status.json"
    guest_pool: bool = True


@dataclass(frozen=True)
class RetryConfig:
    """[retry]: the backoff of a failed mount."""

    min_seconds: float = 1.0
    max_seconds: float = 60.0


@dataclass(frozen=True)
class WatchConfig:
    """[watch]: the pool watcher's settle time; live reload's paths and bounds."""

    settle_ms: int = 1
    shares: Tuple[str, ...] = ()
    skip: Tuple[str, ...] = (".git", "node_modules")
    max_dirs: int = 1000
    state_file: str = "/run/moby-agent/watch.json"
    rescan_seconds: float = 0.0
    follow_containers: bool = True
    notify: str = "auto"
    tree: bool = False


NOTIFY_MODES = ("auto", "notify", "rescan")


@dataclass(frozen=True)
class SharesConfig:
    """[shares]: what cifsmount items may name, the share state file, the mount timeout."""

    mount_pattern: str = r"^/[A-Za-z]$"
    max_id: int = 65535
    state_file: str = "/run/moby-agent/shares.json"
    mount_timeout: float = 30.0


@dataclass(frozen=True)
class AgentConfig:
    """agent.toml, parsed and checked: every key at its default unless set."""

    log_level: str = "info"
    host: HostConfig = field(default_factory=HostConfig)
    kvp: KvpConfig = field(default_factory=KvpConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    docker: DockerConfig = field(default_factory=DockerConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    shares: SharesConfig = field(default_factory=SharesConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _convert(where: str, key: str, value: Any, kind: Any) -> Any:
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {key}: expected a list of strings, got {value!r}")
        return tuple(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        # Bounded on the integer itself first: float() of a 400-digit
        # integer raises OverflowError.
        if key in _BOUNDS:
            _check_bound(where, key, value)
        return float(value)
    if kind in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: {key}: expected {_TYPE_NAMES[kind]}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {key}: expected {_TYPE_NAMES[kind]}, got {value!r}")
    return value


def _build(cls: Any, data: Mapping[str, Any], where: str, prefix: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: Dict[str, Any] = {}
    for key, value in data.items():
        name = prefix + key
        if key not in known:
            allowed = ", ".join(sorted(prefix + k for k in known))
            raise ConfigError(f"{where}: unknown key {name!r} (known: {allowed})")
        kind = _field_types(cls)[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {name}: expected a table [{name}], got {value!r}")
            kwargs[key] = _build(kind, value, where, name + ".")
        else:
            kwargs[key] = _convert(where, name, value, kind)
    return cls(**kwargs)


def _field_types(cls: Any) -> Dict[str, Any]:
    return {f.name: f.type for f in dataclasses.fields(cls)}


# (low, high) for every number: finite, and within what the agent can use
# (inf or nan in a timeout or a sleep kills the loop). 0 means "off" where
# the README says so.
_BOUNDS: Dict[str, Tuple[float, float]] = {
    "database.poll_seconds": (0.0, 86400.0),
    "docker.verify_timeout": (0.1, 600.0),
    "retry.min_seconds": (0.01, 3600.0),
    "retry.max_seconds": (0.01, 86400.0),
    "watch.settle_ms": (0, 1000),
    "watch.max_dirs": (1, 100_000),
    "watch.rescan_seconds": (0.0, 86400.0),
    "shares.max_id": (0, 2**32 - 2),
    "shares.mount_timeout": (0.1, 600.0),
}
_ZERO_IS_OFF = ("database.poll_seconds", "watch.rescan_seconds")
_NAME = lazy(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$")  # a tag, a label, an interface, a program
_OPTIONS = lazy(r"^[A-Za-z0-9][A-Za-z0-9._=,:/-]*$")


def _number(conf: AgentConfig, dotted: str) -> Union[int, float]:
    """The setting as it was read: an int stays an int (never float(): a
    huge integer would raise OverflowError), so bounds compare exactly."""
    section, _, name = dotted.partition(".")
    value: Union[int, float] = getattr(getattr(conf, section), name)
    return value


def _shown(value: Union[int, float]) -> str:
    """A number for an error message: a huge integer described by its
    length (str() of one past 4300 digits raises ValueError)."""
    if isinstance(value, int) and value.bit_length() > 64:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_bound(where: str, dotted: str, value: Union[int, float]) -> None:
    """ConfigError unless `value` is finite and within _BOUNDS[dotted]
    (int and float compare exactly in Python: no conversion)."""
    low, high = _BOUNDS[dotted]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {dotted}: expected a finite number, got {value}")
    if dotted in _ZERO_IS_OFF and value < 0:
        raise ConfigError(f"{where}: {dotted}: expected 0 (off) or more, got {_shown(value)}")
    if dotted in _ZERO_IS_OFF and value == 0:
        return
    if not low <= value <= high:
        raise ConfigError(f"{where}: {dotted}: expected {_shown(low)} to {_shown(high)}, got {_shown(value)}")


def _word(where: str, key: str, value: str, pattern: "LazyPattern[str]" = _NAME, max_len: int = 255) -> None:
    """A string handed to a command or the kernel: non-empty, bounded, not
    option-like (-x), printable, and of the expected characters."""
    if not value:
        raise ConfigError(f"{where}: {key}: expected a non-empty string")
    if value.startswith("-"):
        raise ConfigError(f"{where}: {key}: must not start with '-' (it would be read as an option), "
                          f"got {printable(value)!r}")
    if len(value) > max_len or not pattern.fullmatch(value):
        raise ConfigError(f"{where}: {key}: unexpected characters or too long: {printable(value)!r}")


def _check(conf: AgentConfig, where: str) -> None:
    if conf.log_level not in LOG_LEVELS:
        raise ConfigError(
            f"{where}: log_level: expected one of {', '.join(LOG_LEVELS)}, got {printable(conf.log_level)!r}"
        )
    for dotted in _BOUNDS:
        _check_bound(where, dotted, _number(conf, dotted))
    retry = conf.retry
    if not 0 < retry.min_seconds <= retry.max_seconds:
        raise ConfigError(
            f"{where}: retry: expected 0 < min_seconds <= max_seconds, "
            f"got {retry.min_seconds} and {retry.max_seconds}"
        )
    try:
        ipaddress.IPv4Address(conf.host.address)
    except ValueError:
        raise ConfigError(f"{where}: host.address: expected an IPv4 address, got {printable(conf.host.address)!r}") \
            from None
    host = ipaddress.IPv4Address(conf.host.address)
    if host.is_unspecified or host.is_multicast or host == ipaddress.IPv4Address("255.255.255.255"):
        raise ConfigError(f"{where}: host.address: expected a host's address, got {conf.host.address}")
    _word(where, "database.tag", conf.database.tag, max_len=31)
    _word(where, "database.label", conf.database.label)
    _word(where, "database.options", conf.database.options, _OPTIONS, 1024)
    _word(where, "network.interface", conf.network.interface, max_len=15)
    _word(where, "docker.dockerd", conf.docker.dockerd, _PROGRAM, 4096)
    if not conf.docker.restart_command:
        raise ConfigError(f"{where}: docker.restart_command: expected a command (a non-empty list)")
    _word(where, "docker.restart_command[0]", conf.docker.restart_command[0], _PROGRAM, 4096)
    for i, arg in enumerate(conf.docker.restart_command[1:], 1):
        if not arg or "\0" in arg or not arg.isprintable() or len(arg) > 4096:
            raise ConfigError(f"{where}: docker.restart_command[{i}]: expected a non-empty printable argument")
    if conf.watch.notify not in NOTIFY_MODES:
        raise ConfigError(f"{where}: watch.notify: expected one of {', '.join(NOTIFY_MODES)}, "
                          f"got {printable(conf.watch.notify)!r}")
    if conf.watch.notify == "rescan" and conf.watch.rescan_seconds <= 0:
        raise ConfigError(f"{where}: watch.notify: \"rescan\" needs watch.rescan_seconds above 0")
    for i, name in enumerate(conf.watch.skip):
        if not name or "/" in name or name in (".", "..") or not name.isprintable():
            raise ConfigError(f"{where}: watch.skip[{i}]: expected a directory name, got {printable(name)!r}")
    try:
        compile_pattern(conf.shares.mount_pattern)
    except ShareError as exc:
        raise ConfigError(f"{where}: shares.mount_pattern: {exc}") from None
    named: List[Tuple[str, str]] = [(f"watch.shares[{i}]", p) for i, p in enumerate(conf.watch.shares)]
    for name, path in _paths(conf) + named:
        _check_path(where, name, path)
    mount_point = conf.database.mount_point
    if mount_point == "/" or any(mount_point == f or mount_point.startswith(f + "/")
                                 for f in FORBIDDEN if f != "/Database"):
        raise ConfigError(f"{where}: database.mount_point: {printable(mount_point)} is a system directory")


_PROGRAM = lazy(r"^[A-Za-z0-9/][A-Za-z0-9._/+-]*$")


def _check_path(where: str, name: str, path: str) -> None:
    """A configured path must be absolute and in the one spelling the kernel
    uses ('/D', never '/D/', '/D/.', '//D', '/./D' or '/X/../D').

    Refused rather than normalised: the agent compares these paths as
    strings with what the kernel reports (mountinfo targets: is /Database
    mounted?) and with what the host sends (a cifsmount of the database
    mount point is refused). Normalising here would leave every other
    reader of the setting (doctor, the CLI, the README's examples) one more
    place to forget it; refusing keeps a single spelling everywhere, and the
    message says which one. A reload with such a path keeps the old config.
    """
    if not path.startswith("/"):
        raise ConfigError(f"{where}: {name}: expected an absolute path, got {printable(path)!r}")
    if "\0" in path or not path.isprintable() or len(path) > 4096:
        raise ConfigError(f"{where}: {name}: expected a printable path of at most 4096 characters, "
                          f"got {printable(path)!r}")
    if path != "/" and any(part in ("", ".", "..") for part in path[1:].split("/")):
        plain = "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
        hint = "" if ".." in path.split("/") else f" (write {plain!r})"
        raise ConfigError(f"{where}: {name}: expected a plain absolute path (no '..', '.', '//' or trailing '/')"
                          f"{hint}, got {printable(path)!r}")


def share_limits(conf: AgentConfig) -> Limits:
    """What a cifsmount item may ask for under this config: the mount
    pattern, the highest uid/gid, and the database mount point refused as
    a mount point or alias (with every system directory, always)."""
    return Limits(conf.shares.mount_pattern, conf.shares.max_id, (conf.database.mount_point,))


def _paths(conf: AgentConfig) -> List[Tuple[str, str]]:
    return [
        ("kvp.pool_dir", conf.kvp.pool_dir),
        ("database.cmdline", conf.database.cmdline),
        ("database.mount_point", conf.database.mount_point),
        ("docker.daemon_json", conf.docker.daemon_json),
        ("docker.socket", conf.docker.socket),
        ("docker.pidfile", conf.docker.pidfile),
        ("docker.dropin_dir", conf.docker.dropin_dir),
        ("docker.confd", conf.docker.confd),
        ("docker.proxy_env", conf.docker.proxy_env),
        ("status.file", conf.status.file),
        ("shares.state_file", conf.shares.state_file),
        ("watch.state_file", conf.watch.state_file),
    ]


# A TOML document of blank lines and comments only (what TOML allows in a
# comment: no control character but tab; lines end with \n or \r\n).
_ONLY_COMMENTS = lazy(r"(?:[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?\r?\n)*[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?")


def only_comments(text: str) -> bool:
    """True for an agent.toml that sets nothing (the installed one: every
    key commented out at its default), which is then an empty table without
    importing the TOML parser (about 6 ms of every start: datetime and its
    regular expressions)."""
    return _ONLY_COMMENTS.fullmatch(text) is not None


def parse(text: str, where: str = "<string>") -> AgentConfig:
    """Parse agent.toml text; `where` names the file in errors."""
    data = {} if only_comments(text) else _toml(text, where)
    conf: AgentConfig = _build(AgentConfig, data, where, "")
    _check(conf, where)
    return conf


def _toml(text: str, where: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Alpine's 3.9/3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {printable(exc)}") from None
    except RecursionError:  # deeply nested arrays or tables
        raise ConfigError(f"{where}: not valid TOML: nested too deeply") from None
    except ValueError as exc:  # an integer past Python's 4300-digit conversion limit
        raise ConfigError(f"{where}: not valid TOML: {printable(exc)}") from None
    return data


def load(path: str, required: bool = False) -> AgentConfig:
    """Read the config file at `path` (already resolved under --root).

    A missing file gives the defaults unless `required` (an explicit --config).
    """
    try:
        raw = read_bytes_safely(path, MAX_CONFIG)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{printable(path)}: no such file") from None
        return AgentConfig()
    except UnsafePath as exc:  # a FIFO, a symlink, a device, too large
        raise ConfigError(f"{printable(path)}: cannot read: {exc.strerror}") from None
    except OSError as exc:
        raise ConfigError(f"{printable(path)}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 at byte {exc.start}") from None
    return parse(text, path)
