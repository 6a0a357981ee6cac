"""agent.toml -> typed settings.

Every setting has a default, so no file is needed. An unknown key or a value
of the wrong type is a ConfigError naming the file, the key and what was
expected; the agent does not start on it.
"""

import dataclasses
import re
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Alpine's 3.9/3.10
    import tomli as tomllib

DEFAULT_PATH = "/etc/moby-agent/agent.toml"
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """The configuration file is unreadable or names a bad setting."""


@dataclass(frozen=True)
class HostConfig:
    address: str = "10.0.75.1"


@dataclass(frozen=True)
class KvpConfig:
    pool_dir: str = "/var/lib/hyperv"


@dataclass(frozen=True)
class DatabaseConfig:
    label: str = "com.docker.database"
    cmdline: str = "/proc/cmdline"
    mount_point: str = "/Database"
    tag: str = "db"
    options: str = "trans=virtio,dfltuid=1001,dfltgid=50,version=9p2000"
    poll_seconds: float = 0.0


@dataclass(frozen=True)
class DockerConfig:
    daemon_json: str = "/etc/docker/daemon.json"
    socket: str = "/var/run/docker.sock"
    pidfile: str = "/var/run/docker.pid"
    dropin_dir: str = "/etc/moby-agent/daemon.json.d"
    confd: str = "/etc/conf.d/docker"
    dockerd: str = "dockerd"
    restart_command: Tuple[str, ...] = ("rc-service", "docker", "restart")
    verify_timeout: float = 30.0


@dataclass(frozen=True)
class NetworkConfig:
    interface: str = "eth0"


@dataclass(frozen=True)
class StatusConfig:
    file: str = "/run/moby-agent/status.json"
    guest_pool: bool = True


@dataclass(frozen=True)
class RetryConfig:
    min_seconds: float = 1.0
    max_seconds: float = 60.0


@dataclass(frozen=True)
class WatchConfig:
    settle_ms: int = 1
    shares: Tuple[str, ...] = ()
    skip: Tuple[str, ...] = (".git", "node_modules")
    max_dirs: int = 1000
    state_file: str = "/run/moby-agent/watch.json"
    rescan_seconds: float = 0.0


@dataclass(frozen=True)
class SharesConfig:
    mount_pattern: str = r"^/[A-Za-z]$"
    max_id: int = 65535
    state_file: str = "/run/moby-agent/shares.json"
    mount_timeout: float = 30.0


@dataclass(frozen=True)
class AgentConfig:
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


def _check(conf: AgentConfig, where: str) -> None:
    if conf.log_level not in LOG_LEVELS:
        raise ConfigError(
            f"{where}: log_level: expected one of {', '.join(LOG_LEVELS)}, got {conf.log_level!r}"
        )
    retry = conf.retry
    if not 0 < retry.min_seconds <= retry.max_seconds:
        raise ConfigError(
            f"{where}: retry: expected 0 < min_seconds <= max_seconds, "
            f"got {retry.min_seconds} and {retry.max_seconds}"
        )
    if not 0 <= conf.watch.settle_ms <= 1000:
        raise ConfigError(f"{where}: watch.settle_ms: expected 0 to 1000, got {conf.watch.settle_ms}")
    try:
        re.compile(conf.shares.mount_pattern)
    except re.error as exc:
        raise ConfigError(f"{where}: shares.mount_pattern: expected a regular expression: {exc}") from None
    if not 0 <= conf.shares.max_id <= 2**32 - 2:
        raise ConfigError(f"{where}: shares.max_id: expected 0 to 4294967294, got {conf.shares.max_id}")
    if not conf.docker.restart_command:
        raise ConfigError(f"{where}: docker.restart_command: expected a command (a non-empty list)")
    if not 1 <= conf.watch.max_dirs <= 100_000:
        raise ConfigError(f"{where}: watch.max_dirs: expected 1 to 100000, got {conf.watch.max_dirs}")
    if conf.watch.rescan_seconds < 0:
        got = conf.watch.rescan_seconds
        raise ConfigError(f"{where}: watch.rescan_seconds: expected 0 (off) or more, got {got}")
    if conf.database.poll_seconds < 0:
        got = conf.database.poll_seconds
        raise ConfigError(f"{where}: database.poll_seconds: expected 0 (off) or more, got {got}")
    if not 0 < conf.shares.mount_timeout <= 600:
        got = conf.shares.mount_timeout
        raise ConfigError(f"{where}: shares.mount_timeout: expected 0 < seconds <= 600, got {got}")
    for name, value in _paths(conf):
        if not value.startswith("/"):
            raise ConfigError(f"{where}: {name}: expected an absolute path, got {value!r}")


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
        ("status.file", conf.status.file),
        ("shares.state_file", conf.shares.state_file),
        ("watch.state_file", conf.watch.state_file),
    ]


def parse(text: str, where: str = "<string>") -> AgentConfig:
    """Parse agent.toml text; `where` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    conf: AgentConfig = _build(AgentConfig, data, where, "")
    _check(conf, where)
    return conf


def load(path: str, required: bool = False) -> AgentConfig:
    """Read the config file at `path` (already resolved under --root).

    A missing file gives the defaults unless `required` (an explicit --config).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such file") from None
        return AgentConfig()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 at byte {exc.start}") from None
    return parse(text, path)
