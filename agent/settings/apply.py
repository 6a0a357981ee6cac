"""The settings capabilities' side effects: what they observe (the database
tree, drop-ins, DOCKER_OPTS, the files in place, dockerd) and the executors
of their actions (mount the database, write files, sysctl, reload or restart
dockerd and verify it through its API)."""

import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

from agent import system
from agent.agentconfig import AgentConfig
from agent.network.plan import static_network
from agent.outcome import Executor, Problem
from agent.settings import certs, daemonjson, database
from agent.settings.plan import (
    ApplyDocker,
    ApplySysctl,
    HostInputs,
    MountDatabase,
    RemoveFile,
    WriteFile,
    copied_to,
    text_keys,
)
from agent.shares import mountinfo
from agent.shares.mountinfo import MountEntry
from agent.system import printable, read_text, run_command, under, under_dir, write_atomic

if TYPE_CHECKING:
    from agent.hub import Context

log = logging.getLogger("moby-agent")

_VERSION_CACHE: Dict[str, Tuple[int, int]] = {}


def _dockerd_version(conf: AgentConfig) -> Tuple[int, int]:
    # 30 s: the binary's start alone took 11 s in the stand-in guest (TCG).
    result = run_command([conf.docker.dockerd, "--version"], 30)
    return daemonjson.version_of(result.output) if result.returncode == 0 else (20, 10)


def dockerd_pid(conf: AgentConfig, root: str) -> Optional[int]:
    """dockerd's pid from its pidfile, only if /proc confirms it is a
    running dockerd (never a pid <= 1 or a stranger that reused the number)
    and, under --root, one that runs against that root."""
    pid = system.confirmed_pid(under(root, conf.docker.pidfile), system.DOCKERD_NAMES)
    if pid is not None and root not in ("", "/") and not system.same_root(root, system.process_args(pid)):
        return None
    return pid


def _under(root: str, path: str, what: str, capability: str, problems: List[Problem]) -> Optional[str]:
    """`path` under the root, or None and a problem for that file only when
    a directory on its way leads out of the root or loops: it is not read
    (and writing it fails, saying so), the other files go on."""
    try:
        return under(root, path)
    except OSError as exc:
        problems.append(Problem(capability, what, f"{printable(exc.strerror or exc)}; not read"))
        return None


def _dockerd_running(conf: AgentConfig, root: str) -> bool:
    try:
        return dockerd_pid(conf, root) is not None
    except OSError:  # the pid file's directory leads out of the root: no dockerd of this root
        return False


def _read(path: Optional[str], what: str, capability: str, problems: List[Problem]) -> Optional[str]:
    """A file's text, None if absent; anything that is not a plain file (a
    symlink, a FIFO, a directory) is a problem for that file only."""
    if path is None:
        return None
    try:
        return read_text(path)
    except OSError as exc:
        problems.append(Problem(capability, what, f"{printable(what)}: {printable(exc.strerror or exc)}; ignored"))
        return None


def _read_bytes(path: Optional[str], what: str, problems: List[Problem]) -> Optional[bytes]:
    """A file the agent owns, as bytes; None if absent. Not a plain file: a
    problem, and None (it is written anew: a link is replaced, not followed)."""
    if path is None:
        return None
    try:
        return system.read_bytes_safely(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        problems.append(Problem("docker_config", what, f"{printable(what)}: {printable(exc.strerror or exc)}; "
                                "written anew"))
        return None


# conf.d evaluated by a shell, by (path, inode, size, mtime): one fork per change, not per pass.
_CONFD_CACHE: Dict[str, Tuple[Tuple[int, int, int], str]] = {}


def _docker_opts(path: Optional[str], text: Optional[str], run_programs: bool) -> str:
    """DOCKER_OPTS as the docker init script sees it: /etc/conf.d/docker
    sourced by a shell (appends, multi-line values, quoting), else read as
    text. Under --root a fixture's conf.d is never run, only read."""
    if text is None or path is None:
        return ""
    if not run_programs:
        return daemonjson.docker_opts_from_confd(text)
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return daemonjson.docker_opts_from_confd(text)
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _CONFD_CACHE.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    opts = daemonjson.docker_opts_from_file(path, text=text)
    _CONFD_CACHE[path] = (key, opts)
    return opts


def observe_host(conf: AgentConfig, root: str, mounts: Tuple[MountEntry, ...], live: bool,
                 run_programs: bool = False) -> HostInputs:
    """The database tree, drop-ins, DOCKER_OPTS, current files, dockerd and
    (only when the database asks for a static address) the interface.
    Programs (`dockerd --version`, a shell sourcing conf.d) run only when
    run_programs (the agent's own passes, not plan or daemon-json) on a
    live system: never under --root, where docker.dockerd may name any
    program; else dockerd's version is unknown (taken as 20.10, the oldest
    supported) and conf.d is read as text."""
    run_programs = run_programs and live
    dbs = conf.database
    problems: List[Problem] = []
    name = database.parse_cmdline(_read(_under(root, dbs.cmdline, dbs.cmdline, "database", problems), dbs.cmdline,
                                        "database", problems) or "", dbs.label)
    mounted = mountinfo.is_mounted(mounts, dbs.mount_point)
    tree: Optional[Dict[str, Union[str, bytes]]] = None
    error = None
    if name is not None and mounted:
        try:
            top: Optional[str] = under(root, database.base(dbs.mount_point, name))
        except OSError as exc:
            top, error = None, printable(exc.strerror or exc)
        if top is None:
            pass
        elif os.path.isdir(top) and not os.path.islink(top):
            try:
                tree, bad = database.read_tree_checked(top)
            except (OSError, database.DatabaseError) as exc:
                error = printable(exc)
            else:
                # One bad key is a problem for that key only.
                problems.extend(Problem("database", key, text) for key, text in sorted(bad.items()))
        else:
            error = f"{printable(database.base(dbs.mount_point, name))} does not exist"
    try:
        dropin_dir = under_dir(root, conf.docker.dropin_dir)
        names = daemonjson.dropin_names(os.listdir(dropin_dir))
    except OSError:
        dropin_dir, names = "", []
    # A drop-in that cannot be read (a FIFO, a symlink) is its own problem
    # and is left out: read as "" it failed the whole render as bad JSON.
    read_dropins = ((n, _read(os.path.join(dropin_dir, n), f"{conf.docker.dropin_dir}/{n}", "docker_config",
                              problems)) for n in names)
    dropins = tuple((n, text) for n, text in read_dropins if text is not None)
    files: Dict[str, Optional[bytes]] = {}
    for key in list(tree or {}):
        target = copied_to(key)
        if target:
            try:
                files[target] = system.read_bytes_safely(under(root, target))
            except OSError:
                files[target] = None  # absent, or not a plain file: written anew (a link is replaced, not followed)
    version = _VERSION_CACHE.get(conf.docker.dockerd)
    text = text_keys(tree)
    texts = [t for _n, t in dropins] + [text.get("etc/docker/daemon.json")]
    proxy_set = any(text.get(k) for k in ("proxy/http", "proxy/https", "proxy/exclude"))
    if version is None and run_programs and daemonjson.version_matters(texts, proxy_set):
        version = _VERSION_CACHE[conf.docker.dockerd] = _dockerd_version(conf)
    net = None
    try:
        static = static_network(text)
    except ValueError:
        static = None
    if static is not None and live:
        from agent.network.apply import read_net

        net = read_net(conf.network.interface)
    confd = _under(root, conf.docker.confd, conf.docker.confd, "docker_config", problems)
    return HostInputs(
        database_name=name,
        database_mounted=mounted,
        database=tree,
        database_error=error,
        dropins=dropins,
        docker_opts=_docker_opts(confd, _read(confd, conf.docker.confd, "docker_config", problems), run_programs),
        daemon_json=_read(_under(root, conf.docker.daemon_json, conf.docker.daemon_json, "docker_config", problems),
                          conf.docker.daemon_json, "docker_config", problems),
        proxy_env=_read_bytes(_under(root, conf.docker.proxy_env, conf.docker.proxy_env, "docker_config", problems),
                              conf.docker.proxy_env, problems),
        certs_record=_read_bytes(_under(root, certs.RECORD, certs.RECORD, "docker_config", problems), certs.RECORD,
                                 problems),
        problems=tuple(problems),
        dockerd_running=_dockerd_running(conf, root),
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
    write_atomic(ctx.path(action.path), action.content, mode=action.mode)
    log.info("wrote %s (from %s)", action.path, printable(action.source))


def remove_file(action: RemoveFile, ctx: "Context") -> None:
    path = ctx.path(action.path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    try:
        os.rmdir(os.path.dirname(path))  # the registry's directory, once empty
    except OSError:
        pass
    log.info("removed %s (the host removed it)", printable(action.path))


def apply_sysctl(action: ApplySysctl, ctx: "Context") -> None:
    result = run_command(["sysctl", "-p", ctx.path(action.path)], 10, ctx.should_stop)
    if result.returncode != 0:
        raise RuntimeError(f"sysctl -p {action.path}: {result.output}")


def restart_program(program: str, root: str) -> str:
    """The restart command's program as it is run, or RuntimeError. Live:
    found through PATH (shutil.which), never through the working
    directory. Under --root no system command is run: only a program of
    the fixture itself, named by an absolute path that resolves (links
    followed) inside the root; a bare name (`rc-service`) is refused."""
    import shutil

    if root in ("", "/"):
        found = shutil.which(program) if "/" not in program else program
        if not found or not os.path.isabs(found):
            raise RuntimeError(f"{printable(program)} is not found in PATH (give an absolute path)")
        return found
    inside = os.path.realpath(root).rstrip("/") + "/"
    if not os.path.isabs(program) or not os.path.realpath(program).startswith(inside):
        raise RuntimeError(f"not done under --root {printable(root)}: {printable(program)} is a system command "
                           "(only a program of the root, by its absolute path, is run)")
    return program


def apply_docker(action: ApplyDocker, ctx: "Context") -> None:
    """Reload or restart dockerd, then check /info: returns once it shows the
    new settings (applied and verified), raises with what differs."""
    from agent.settings.dockerapi import DockerAPI, DockerError

    docker = ctx.conf.docker
    if action.how == "reload":
        pid = dockerd_pid(ctx.conf, ctx.root)
        if pid is None:
            raise RuntimeError(f"no running dockerd confirmed from {docker.pidfile}; not signalled")
        os.kill(pid, signal.SIGHUP)
        log.info("dockerd (pid %d) reloaded with SIGHUP for %s", pid, ", ".join(action.changed))
    else:
        program = restart_program(docker.restart_command[0], ctx.root)
        # Not stopped by SIGTERM: a docker restart cut half-way can leave
        # dockerd down (bounded by its timeout; OpenRC's stop waits for it).
        result = run_command([program, *docker.restart_command[1:]], docker.verify_timeout + 30, detach=True)
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
    RemoveFile: remove_file,
    ApplySysctl: apply_sysctl,
    ApplyDocker: apply_docker,
}
