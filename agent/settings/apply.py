"""The settings capabilities' side effects: what they observe (the database
tree, drop-ins, DOCKER_OPTS, the files in place, dockerd) and the executors
of their actions (mount the database, write files, sysctl, reload or restart
dockerd and verify it through its API)."""

import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from agent.agentconfig import AgentConfig
from agent.network.plan import static_network
from agent.outcome import Executor
from agent.settings import daemonjson, database
from agent.settings.plan import COPIED, ApplyDocker, ApplySysctl, HostInputs, MountDatabase, WriteFile
from agent.shares.mountinfo import MountEntry
from agent.system import read_text, run_command, under, write_atomic

if TYPE_CHECKING:
    from agent.hub import Context

log = logging.getLogger("moby-agent")

_VERSION_CACHE: Dict[str, Tuple[int, int]] = {}


def _dockerd_version(conf: AgentConfig) -> Tuple[int, int]:
    result = run_command([conf.docker.dockerd, "--version"], 10)
    return daemonjson.version_of(result.output) if result.returncode == 0 else (20, 10)


def read_pid(path: str) -> Optional[int]:
    text = read_text(path)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def dockerd_pid(conf: AgentConfig, root: str) -> Optional[int]:
    """dockerd's pid from its pidfile, if it is running."""
    from agent.system import pid_alive

    pid = read_pid(under(root, conf.docker.pidfile))
    return pid if pid is not None and pid_alive(pid) else None


def observe_host(conf: AgentConfig, root: str, mounts: Tuple[MountEntry, ...], live: bool) -> HostInputs:
    """The database tree, drop-ins, DOCKER_OPTS, current files, dockerd and
    (only when the database asks for a static address) the interface."""
    dbs = conf.database
    name = database.parse_cmdline(read_text(under(root, dbs.cmdline)) or "", dbs.label)
    mounted = any(m.target == dbs.mount_point for m in mounts)
    tree: Optional[Dict[str, str]] = None
    error = None
    if name is not None and mounted:
        top = under(root, database.base(dbs.mount_point, name))
        if os.path.isdir(top):
            try:
                tree = database.read_tree(top)
            except (OSError, database.DatabaseError) as exc:
                error = str(exc)
        else:
            error = f"{database.base(dbs.mount_point, name)} does not exist"
    dropin_dir = under(root, conf.docker.dropin_dir)
    try:
        names = daemonjson.dropin_names(os.listdir(dropin_dir))
    except (FileNotFoundError, NotADirectoryError):
        names = []
    dropins = tuple((n, read_text(os.path.join(dropin_dir, n)) or "") for n in names)
    files: Dict[str, Optional[str]] = {}
    for key in list(tree or {}):
        target = COPIED.get(key)
        if target is None and key.startswith("etc/docker/"):
            target = "/" + key
        if target:
            files[target] = read_text(under(root, target))
    version = _VERSION_CACHE.get(conf.docker.dockerd)
    if version is None and (tree or dropins):
        version = _VERSION_CACHE[conf.docker.dockerd] = _dockerd_version(conf)
    net = None
    try:
        static = static_network(tree or {})
    except ValueError:
        static = None
    if static is not None and live:
        from agent.network.apply import read_net

        net = read_net(conf.network.interface)
    return HostInputs(
        database_name=name,
        database_mounted=mounted,
        database=tree,
        database_error=error,
        dropins=dropins,
        docker_opts=daemonjson.docker_opts_from_confd(read_text(under(root, conf.docker.confd)) or ""),
        daemon_json=read_text(under(root, conf.docker.daemon_json)),
        dockerd_running=dockerd_pid(conf, root) is not None,
        dockerd_version=version or (20, 10),
        files=files,
        interface=conf.network.interface,
        net=net,
    )


def mount_database(action: MountDatabase, ctx: "Context") -> None:
    os.makedirs(ctx.path(action.target), exist_ok=True)
    result = run_command(["mount", "-t", "9p", "-o", action.options, action.tag, ctx.path(action.target)], 30,
                         ctx.should_stop)
    if result.returncode != 0:
        raise RuntimeError(f"mount 9p {action.tag} at {action.target}: {result.output}")
    ctx.rerun = True  # read the database in a pass of its own
    log.info("database mounted at %s", action.target)


def write_file(action: WriteFile, ctx: "Context") -> None:
    write_atomic(ctx.path(action.path), action.content.encode())
    log.info("wrote %s (from %s)", action.path, action.source)


def apply_sysctl(action: ApplySysctl, ctx: "Context") -> None:
    result = run_command(["sysctl", "-p", ctx.path(action.path)], 10, ctx.should_stop)
    if result.returncode != 0:
        raise RuntimeError(f"sysctl -p {action.path}: {result.output}")


def apply_docker(action: ApplyDocker, ctx: "Context") -> None:
    """Reload or restart dockerd, then check /info: returns once it shows the
    new settings (applied and verified), raises with what differs."""
    from agent.settings.dockerapi import DockerAPI, DockerError

    docker = ctx.conf.docker
    if action.how == "reload":
        pid = read_pid(ctx.path(docker.pidfile))
        if pid is None:
            raise RuntimeError(f"no pid in {docker.pidfile}")
        os.kill(pid, signal.SIGHUP)
        log.info("dockerd (pid %d) reloaded with SIGHUP for %s", pid, ", ".join(action.changed))
    else:
        result = run_command(list(docker.restart_command), docker.verify_timeout + 30, ctx.should_stop)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(docker.restart_command)}: {result.output}")
        log.info("dockerd restarted for %s", ", ".join(action.changed))
    api = DockerAPI(ctx.path(docker.socket), timeout=5)
    deadline = time.monotonic() + docker.verify_timeout
    diffs: List[str] = ["dockerd did not answer"]
    try:
        while time.monotonic() < deadline and not ctx.should_stop():
            try:
                if api.ping():
                    diffs = daemonjson.differences(api.info(), action.expected)
                    if not diffs:
                        return
            except DockerError as exc:
                diffs = [str(exc)]
            time.sleep(0.2)
    finally:
        api.close()
    raise RuntimeError("applied, but " + "; ".join(diffs))


EXECUTORS: Dict[type, Executor] = {
    MountDatabase: mount_database,
    WriteFile: write_file,
    ApplySysctl: apply_sysctl,
    ApplyDocker: apply_docker,
}
