"""moby-agent's command line: argument parsing and wiring only."""

import argparse
import json
import logging
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from agent import __version__, agentconfig, kvp
from agent.system import printable, read_text, under, under_dir, valid_pid

log = logging.getLogger("moby-agent")


class _Formatter(argparse.HelpFormatter):
    """argparse's, asking the terminal's width only when it formats text:
    add_argument makes one to check each argument, and asking imports shutil
    (bz2, lzma, fnmatch: about 8 M instructions at every start)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: Optional[int] = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, 0 if width is None else width)
        if width is None:  # what HelpFormatter sets from the width, set at the first read (__getattr__)
            del self._width, self._max_help_position
            self._wanted_position = max_help_position

    def __getattr__(self, name: str) -> Any:
        if name not in ("_width", "_max_help_position") or "_wanted_position" not in self.__dict__:
            raise AttributeError(name)
        import shutil

        width = shutil.get_terminal_size().columns - 2
        self._width = width
        self._max_help_position = min(self._wanted_position, max(width - 20, self._indent_increment * 2))
        return self.__dict__[name]


class _Later:
    """A command's parser, made when that command is parsed (argparse's
    parser_class for add_subparsers): making the 13 commands' parsers, a help
    formatter for every argument, cost about 12 M instructions at every
    start. add_parser(name, help=..., fill=f): f adds the arguments."""

    def __init__(self, fill: Callable[[argparse.ArgumentParser], object] = lambda parser: None,
                 **kwargs: Any) -> None:
        self._fill = fill
        self._kwargs = kwargs
        self._parser: Optional[argparse.ArgumentParser] = None

    def made(self) -> argparse.ArgumentParser:
        if self._parser is None:
            parser = argparse.ArgumentParser(formatter_class=_Formatter, **self._kwargs)
            self._fill(parser)
            self._parser = parser
        return self._parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moby-agent", description="The guest agent of the Docker for Windows VM.",
                                formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"moby-agent {__version__}")
    p.add_argument("--root", default="/", help="resolve every absolute path under DIR (default /)")
    p.add_argument("--config", default=agentconfig.DEFAULT_PATH,
                   help=f"the agent's config (default {agentconfig.DEFAULT_PATH})")
    later: Any = _Later  # not an ArgumentParser to typeshed; made into one when used
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=later)
    sub.required = True

    sub.add_parser("run", help="run the agent in the foreground", fill=lambda run: run.add_argument(
        "--once", action="store_true", help="run one pass and exit (non-zero if an action failed)"))

    sub.add_parser("plan", help="observe and plan; print the actions without applying them",
                   fill=lambda plan: plan.add_argument("--json", action="store_true"))

    sub.add_parser("status", help="what the running agent reports",
                   fill=lambda st: st.add_argument("--json", action="store_true"))

    def health(health: argparse.ArgumentParser) -> None:
        health.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
        health.add_argument("--first-pass", action="store_true",
                            help="wait until the running agent has finished its first pass (OpenRC's start_post: "
                                 "daemon.json is rendered before docker starts); no signal is sent")

    sub.add_parser("health", help="ask the running agent's loop for a heartbeat (the OpenRC healthcheck)",
                   fill=health)

    def cfg(cfg: argparse.ArgumentParser) -> None:
        cfg.add_argument("verb", choices=["get", "exists", "dir", "path", "find", "set"])
        cfg.add_argument("key", nargs="?", default="")
        cfg.add_argument("value", nargs="?")

    sub.add_parser("config", help="read the host's configuration database (mobyconfig)", fill=cfg)

    def watch(watch: argparse.ArgumentParser) -> None:
        watch.add_argument("verb", choices=["add", "remove", "list"])
        watch.add_argument("path", nargs="?")

    sub.add_parser("watch", help="re-emit host-side changes in a shared path to the guest's watchers", fill=watch)

    sub.add_parser("daemon-json", help="print the daemon.json the agent would write (or why it would not)")

    sub.add_parser("doctor", help="check what the agent depends on; OK / WARN / FAIL, exit 1 on any FAIL")

    def kv(kv: argparse.ArgumentParser) -> None:
        kvs = kv.add_subparsers(dest="kvp_command", metavar="SUBCOMMAND", parser_class=later)
        kvs.required = True

        def dump(dump: argparse.ArgumentParser) -> None:
            dump.add_argument("--pool", type=int, default=0)
            dump.add_argument("--json", action="store_true")
            dump.add_argument("--show-secrets", action="store_true", help="show passwords instead of ***")

        kvs.add_parser("dump", help="the items of a pool, in file order", fill=dump)

        def get(get: argparse.ArgumentParser) -> None:
            get.add_argument("key")
            get.add_argument("--pool", type=int, default=0)
            get.add_argument("--show-secrets", action="store_true")

        kvs.add_parser("get", help="one item's value", fill=get)

        def put(put: argparse.ArgumentParser) -> None:
            put.add_argument("key")
            put.add_argument("value")
            put.add_argument("--pool", type=int, default=kvp.GUEST_POOL)

        kvs.add_parser("set", help=f"set an item in pool {kvp.GUEST_POOL} (the guest's pool)", fill=put)

        def delete(delete: argparse.ArgumentParser) -> None:
            delete.add_argument("key")
            delete.add_argument("--pool", type=int, default=kvp.GUEST_POOL)

        kvs.add_parser("delete", help=f"delete an item from pool {kvp.GUEST_POOL}", fill=delete)

    sub.add_parser("kvp", help="read and write KVP pool items", fill=kv)
    return p


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s.%(msecs)03d moby-agent %(levelname)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )


def _print_items(items: List[kvp.Item], as_json: bool, show_secrets: bool) -> None:
    from agent.shares.items import redact_item

    shown = [(k, v if show_secrets else redact_item(k, v)) for k, v in items]
    if as_json:  # ASCII JSON: escape sequences and bidi controls arrive as \u001b, \u202e
        print(json.dumps([{"key": k, "value": v} for k, v in shown], indent=1, ensure_ascii=True))
    else:
        for k, v in shown:
            print(f"{printable(k)}={printable(v)}")


def _cmd_kvp(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    pool_dir = under_dir(args.root, conf.kvp.pool_dir)
    path = kvp.pool_path(pool_dir, args.pool)
    if args.kvp_command in ("dump", "get"):
        pool = kvp.read_pool(path, timeout=10.0)
        for warning in pool.warnings:
            print(f"moby-agent: {printable(path)}: {printable(warning)}", file=sys.stderr)
        if args.kvp_command == "dump":
            _print_items(list(pool.items), args.json, args.show_secrets)
            return 0
        value = pool.get(args.key)
        if value is None:
            print(f"moby-agent: no item {printable(args.key)!r} in pool {args.pool}", file=sys.stderr)
            return 1
        from agent.shares.items import redact_item

        print(printable(value if args.show_secrets else redact_item(args.key, value)))
        return 0
    if not os.path.isdir(pool_dir):
        print(f"moby-agent: pool directory {printable(pool_dir)} does not exist; is hv_kvp_daemon running?",
              file=sys.stderr)
        return 1
    change = {args.key: args.value if args.kvp_command == "set" else None}
    kvp.write_guest_items(pool_dir, args.pool, change, timeout=10.0)
    return 0


def _cmd_plan(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    from agent import hub
    plan = hub.plan(hub.observe(conf, args.root, None))
    if args.json:
        print(json.dumps(plan.as_dict(), indent=1, ensure_ascii=True))
        return 0
    for action in plan.actions:
        fields = {k: v for k, v in action.as_dict().items() if k != "action"}
        print(printable(action.name() + " " + " ".join(f"{k}={v}" for k, v in fields.items())))
    for problem in plan.problems:
        print(f"problem: {printable(problem)}")
    if not plan.actions and not plan.problems:
        print("nothing to do")
    return 0


def _read_status(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> Optional[dict]:
    from agent import status

    try:
        return status.load(under(args.root, conf.status.file))
    except OSError as exc:  # a symlink, a FIFO, a directory, too large: not the agent's file
        print(f"moby-agent: {printable(conf.status.file)}: {printable(exc.strerror or exc)}", file=sys.stderr)
        return None


def running_agent(args: argparse.Namespace, doc: Optional[dict]) -> Optional[int]:
    from agent import status

    return status.running_pid(doc, args.root)


def _signal_agent(args: argparse.Namespace, doc: Optional[dict], sig: int) -> Optional[int]:
    pid = running_agent(args, doc)
    if pid is None:
        return None
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return None
    return pid


def _cmd_status(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    from agent import status
    doc = _read_status(args, conf)
    if doc is None:
        print(f"moby-agent is not running (no valid status in {printable(conf.status.file)})", file=sys.stderr)
        return 1
    alive = running_agent(args, doc) is not None
    try:
        text, code = status.describe(doc, alive)
    except (AttributeError, TypeError, ValueError, KeyError):
        print("moby-agent: the status file is not what the agent writes", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True))
    else:
        print("\n".join(printable(line) for line in text.split("\n")))
    return code


def _cmd_health(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    if args.first_pass:
        return _wait_first_pass(args, conf)
    doc = _read_status(args, conf)
    if doc is None or valid_pid(doc.get("pid")) is None or doc.get("state") == "stopped":
        print("moby-agent health: no running agent in the status file", file=sys.stderr)
        return 1
    before = doc.get("heartbeat")
    if _signal_agent(args, doc, signal.SIGUSR1) is None:
        print(f"moby-agent health: pid {doc['pid']} is not a running moby-agent", file=sys.stderr)
        return 1
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        doc = _read_status(args, conf)
        if doc is not None and doc.get("heartbeat") != before:
            return 0
    print(f"moby-agent health: the loop did not answer within {args.timeout:g} s (stuck?)", file=sys.stderr)
    return 1


def _wait_first_pass(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    """0 once the status file is a running agent's (confirmed through /proc)
    with a finished pass; the status of an agent that is gone (a restart)
    does not count."""
    deadline = time.monotonic() + args.timeout
    while True:
        doc = _read_status(args, conf)
        if doc is not None and doc.get("last_pass") is not None and running_agent(args, doc) is not None:
            return 0
        if time.monotonic() >= deadline:
            print(f"moby-agent health: no first pass within {args.timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(0.05)


def _cmd_config(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    """mobyconfig's verbs, with its messages and exit codes."""
    from agent.settings import database
    if args.verb == "set":
        print(database.IMMUTABLE, file=sys.stderr)
        return 1
    dbs = conf.database
    name = database.parse_cmdline(read_text(under(args.root, dbs.cmdline)) or "", dbs.label)
    if name is None:
        print(database.NOT_FOUND, file=sys.stderr)
        return 1
    top = under(args.root, database.base(dbs.mount_point, name))
    try:
        if args.verb == "path":
            print(printable(database.path(database.base(dbs.mount_point, name), args.key)))
            return 0
        if args.verb == "exists":
            return 0 if database.exists(top, args.key) else 1
        if args.verb == "dir":
            print("\n".join(printable(k) for k in database.listdir(top, args.key)))
            return 0
        if args.verb == "find":
            print("\n".join(printable(k) for k in database.find(top, args.key)))
            return 0
        value = database.get_bytes(top, args.key)
    except (database.DatabaseError, OSError) as exc:
        print(f"mobyconfig: {printable(exc)}", file=sys.stderr)
        return 1
    if value is None:
        return 1
    if sys.stdout.isatty():  # a person reads it: no terminal control from the host
        text = value.decode("utf-8", "replace")
        sys.stdout.write("\n".join(printable(line) for line in text.split("\n")))
    else:  # a script reads it (mobyconfig get): the bytes exactly
        sys.stdout.flush()
        sys.stdout.buffer.write(value)
    return 0


def _drives(args: argparse.Namespace) -> Dict[str, str]:
    """The shared drives in the mount table (containers.shared_drives)."""
    from agent.livereload.containers import shared_drives
    from agent.shares.mountinfo import parse_mountinfo

    return shared_drives(parse_mountinfo(read_text(under(args.root, "/proc/self/mountinfo")) or ""))


def _watch_refusal(args: argparse.Namespace, path: str) -> Optional[str]:
    """Why path cannot be watched, or None: it must be on a shared drive
    (a cifs mount or its alias in the mount table) and a directory there,
    reached inside --root."""
    from agent.livereload.containers import on_drive

    drives = _drives(args)
    if on_drive(path, drives) is None:
        shared = ", ".join(sorted(drives)) or "none is mounted"
        return (f"{path} is not on a shared drive (shared drives: {shared}); only the host's changes there "
                "need re-emitting")
    try:
        real = under_dir(args.root, path)
    except OSError as exc:  # '..' or a symlink leading out of --root
        return f"{path}: {exc.strerror or exc}"
    if not os.path.exists(real):
        return f"{path} does not exist"
    if not os.path.isdir(real):
        return f"{path} is not a directory (watch the directory holding it)"
    return None


def _cmd_watch(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    from agent.livereload.containers import normalize
    from agent.loop import watch_list
    from agent.system import write_atomic

    state = under(args.root, conf.watch.state_file)
    paths = watch_list(state)
    if args.verb == "list":
        for p in list(conf.watch.shares) + paths:
            print(printable(p))
        return 0
    if not args.path or not args.path.startswith("/"):
        print("moby-agent watch: give an absolute path, e.g. /C/src", file=sys.stderr)
        return 2
    path = normalize(args.path)
    if path is None or not path.isprintable():
        print("moby-agent watch: give a plain absolute path (no '..')", file=sys.stderr)
        return 2
    listed = [normalize(p) for p in paths]
    if args.verb == "add":
        if path in listed:
            # Still a reload: a root left unwatched (no change notify then) is tried again.
            print(f"moby-agent watch: {printable(path)} is already added; the agent tries it again",
                  file=sys.stderr)
            _signal_agent(args, _read_status(args, conf), signal.SIGHUP)
            return 0
        why = _watch_refusal(args, path)
        if why is not None:
            print(f"moby-agent watch: not watched: {printable(why)}", file=sys.stderr)
            return 1
        paths.append(path)
    else:
        if path not in listed:
            print(f"moby-agent watch: {printable(path)} is not watched: {printable(_not_added(args, conf, path))}",
                  file=sys.stderr)
            return 1
        paths = [p for p in paths if normalize(p) != path]
    write_atomic(state, (json.dumps(paths) + "\n").encode())
    _signal_agent(args, _read_status(args, conf), signal.SIGHUP)  # the running agent picks it up now
    return 0


def _not_added(args: argparse.Namespace, conf: agentconfig.AgentConfig, path: str) -> str:
    """What watches path if `watch add` did not: agent.toml, or containers."""
    from agent.livereload.containers import normalize, on_drive

    if path in [normalize(p) for p in conf.watch.shares]:
        return "it is in agent.toml (watch.shares); remove it there"
    doc = _read_status(args, conf) or {}
    reasons = (doc.get("watch") or {}).get("reasons") or {}
    spelled = on_drive(path, _drives(args)) or path
    for root, whys in reasons.items():
        if root == spelled or spelled.startswith(root.rstrip("/") + "/"):
            return f"{root} is watched for {', '.join(whys)}, not by watch add; it is let go when they stop"
    return "it was never added with watch add"


def _cmd_daemon_json(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    from agent import hub
    from agent.settings import daemonjson
    from agent.settings.plan import daemon_json_layers

    inputs = hub.observe(conf, args.root, None).host_inputs
    try:
        doc = daemonjson.render(daemon_json_layers(inputs), inputs.docker_opts, inputs.dockerd_version,
                                conf.host.address)
    except daemonjson.ConfigProblem as exc:
        print(f"moby-agent: daemon.json would not be written: {printable(exc)}", file=sys.stderr)
        return 1
    from agent.shares.items import redact_url

    if isinstance(doc.get("proxies"), dict):  # a proxy password is a secret here too
        doc["proxies"] = {k: redact_url(v) if isinstance(v, str) else v for k, v in doc["proxies"].items()}
    sys.stdout.write(daemonjson.encode(doc))
    return 0


def _cmd_doctor(args: argparse.Namespace, conf: agentconfig.AgentConfig) -> int:
    from agent.doctor import FAIL, Doctor

    checks = Doctor(conf, args.root).run()
    for check in checks:
        print(check.line())
    return 1 if any(c.level == FAIL for c in checks) else 0


def _cmd_run(args: argparse.Namespace, conf: agentconfig.AgentConfig, config_path: str, explicit: bool) -> int:
    from agent.loop import Agent

    agent = Agent(conf, args.root, lambda: agentconfig.load(config_path, required=explicit))
    if args.once:
        agent.start_up()
        return 0 if agent.run_pass() else 1
    return agent.run()


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    explicit = args.config != agentconfig.DEFAULT_PATH
    try:
        config_path = under(args.root, args.config)
        conf = agentconfig.load(config_path, required=explicit)
    except agentconfig.ConfigError as exc:
        print(f"moby-agent: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # --config leaving --root
        print(f"moby-agent: configuration error: {printable(exc)}", file=sys.stderr)
        return 2
    _setup_logging(conf.log_level)
    try:
        if args.command == "run":
            return _cmd_run(args, conf, config_path, explicit)
        commands = {
            "kvp": _cmd_kvp,
            "plan": _cmd_plan,
            "status": _cmd_status,
            "health": _cmd_health,
            "doctor": _cmd_doctor,
            "config": _cmd_config,
            "daemon-json": _cmd_daemon_json,
            "watch": _cmd_watch,
        }
        return commands[args.command](args, conf)
    except kvp.KvpError as exc:
        writing = args.command == "kvp" and args.kvp_command in ("set", "delete")
        print(f"moby-agent: {printable(exc)}{'; nothing was written' if writing else ''}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a path leaving --root, a file that is not one: said, not a traceback
        print(f"moby-agent: {printable(exc)}", file=sys.stderr)
        return 1
    except MemoryError:  # a file too large for this VM's memory: said, not a traceback
        print(f"moby-agent: out of memory (moby-agent {args.command})", file=sys.stderr)
        return 1
