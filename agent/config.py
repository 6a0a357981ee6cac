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
class HostSettings:
    address: str = "10.0.75.1"


@dataclass(frozen=True)
class KvpSettings:
    pool_dir: str = "/var/lib/hyperv"


@dataclass(frozen=True)
class DatabaseSettings:
    label: str = "com.docker.database"
    cmdline: str = "/proc/cmdline"
    mount_point: str = "/Database"
    tag: str = "db"
    options: str = "trans=virtio,dfltuid=1001,dfltgid=50,version=9p2000"
    poll_seconds: float = 0.0


@dataclass(frozen=True)
class DockerSettings:
    daemon_json: str = "/etc/docker/daemon.json"
    socket: str = "/var/run/docker.sock"
    pidfile: str = "/var/run/docker.pid"
    dropin_dir: str = "/etc/moby-agent/daemon.json.d"
    confd: str = "/etc/conf.d/docker"
    dockerd: str = "dockerd"
    restart_command: Tuple[str, ...] = ("rc-service", "docker", "restart")
    verify_timeout: float = 30.0


@dataclass(frozen=True)
class NetworkSettings:
    interface: str = "eth0"


@dataclass(frozen=True)
class StatusSettings:
    file: str = "/run/moby-agent/status.json"
    guest_pool: bool = True


@dataclass(frozen=True)
class RetrySettings:
    min_seconds: float = 1.0
    max_seconds: float = 60.0


@dataclass(frozen=True)
class WatchSettings:
    settle_ms: int = 1
    shares: Tuple[str, ...] = ()
    skip: Tuple[str, ...] = (".git", "node_modules")
    max_dirs: int = 1000
    state_file: str = "/run/moby-agent/watch.json"
    rescan_seconds: float = 0.0


@dataclass(frozen=True)
class SharesSettings:
    mount_pattern: str = r"^/[A-Za-z]$"
    max_id: int = 65535
    state_file: str = "/run/moby-agent/shares.json"
    mount_timeout: float = 30.0


@dataclass(frozen=True)
class Settings:
    log_level: str = "info"
    host: HostSettings = field(default_factory=HostSettings)
    kvp: KvpSettings = field(default_factory=KvpSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    docker: DockerSettings = field(default_factory=DockerSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    shares: SharesSettings = field(default_factory=SharesSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)


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


def _check(settings: Settings, where: str) -> None:
    if settings.log_level not in LOG_LEVELS:
        raise ConfigError(
            f"{where}: log_level: expected one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}"
        )
    retry = settings.retry
    if not 0 < retry.min_seconds <= retry.max_seconds:
        raise ConfigError(
            f"{where}: retry: expected 0 < min_seconds <= max_seconds, "
            f"got {retry.min_seconds} and {retry.max_seconds}"
        )
    if not 0 <= settings.watch.settle_ms <= 1000:
        raise ConfigError(f"{where}: watch.settle_ms: expected 0 to 1000, got {settings.watch.settle_ms}")
    try:
        re.compile(settings.shares.mount_pattern)
    except re.error as exc:
        raise ConfigError(f"{where}: shares.mount_pattern: expected a regular expression: {exc}") from None
    if not 0 <= settings.shares.max_id <= 2**32 - 2:
        raise ConfigError(f"{where}: shares.max_id: expected 0 to 4294967294, got {settings.shares.max_id}")
    if not settings.docker.restart_command:
        raise ConfigError(f"{where}: docker.restart_command: expected a command (a non-empty list)")
    if not 1 <= settings.watch.max_dirs <= 100_000:
        raise ConfigError(f"{where}: watch.max_dirs: expected 1 to 100000, got {settings.watch.max_dirs}")
    if settings.watch.rescan_seconds < 0:
        got = settings.watch.rescan_seconds
        raise ConfigError(f"{where}: watch.rescan_seconds: expected 0 (off) or more, got {got}")
    if settings.database.poll_seconds < 0:
        got = settings.database.poll_seconds
        raise ConfigError(f"{where}: database.poll_seconds: expected 0 (off) or more, got {got}")
    if not 0 < settings.shares.mount_timeout <= 600:
        got = settings.shares.mount_timeout
        raise ConfigError(f"{where}: shares.mount_timeout: expected 0 < seconds <= 600, got {got}")
    for name, value in _paths(settings):
        if not value.startswith("/"):
            raise ConfigError(f"{where}: {name}: expected an absolute path, got {value!r}")


def _paths(settings: Settings) -> List[Tuple[str, str]]:
    return [
        ("kvp.pool_dir", settings.kvp.pool_dir),
        ("database.cmdline", settings.database.cmdline),
        ("database.mount_point", settings.database.mount_point),
        ("docker.daemon_json", settings.docker.daemon_json),
        ("docker.socket", settings.docker.socket),
        ("docker.pidfile", settings.docker.pidfile),
        ("docker.dropin_dir", settings.docker.dropin_dir),
        ("docker.confd", settings.docker.confd),
        ("status.file", settings.status.file),
        ("shares.state_file", settings.shares.state_file),
        ("watch.state_file", settings.watch.state_file),
    ]


def parse(text: str, where: str = "<string>") -> Settings:
    """Parse agent.toml text; `where` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    settings: Settings = _build(Settings, data, where, "")
    _check(settings, where)
    return settings


def load(path: str, required: bool = False) -> Settings:
    """Read the config file at `path` (already resolved under --root).

    A missing file gives the defaults unless `required` (an explicit --config).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such file") from None
        return Settings()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 at byte {exc.start}") from None
    return parse(text, path)
