"""The event loop: inotify and signals in one select(); a pass per wake-up.

Nothing wakes the agent while nothing changes: it blocks in select() on the
pool watcher and a signal pipe, with no timeout unless a retry is due.
"""

import logging
import os
import select
import signal
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from agent import hub, kvp, status, system
from agent.agentconfig import AgentConfig, ConfigError
from agent.outcome import CAPABILITIES, Note, Outcome, Problem, capability, capability_state
from agent.shares import health
from agent.system import printable, read_text, remove_stale_credentials, under, under_dir, write_atomic

if TYPE_CHECKING:
    import socket

log = logging.getLogger("moby-agent")

# Seconds a pass may spend reading and planning before the healthcheck stops
# answering for it (plus shares.health.PROBE_TIMEOUT per mounted drive).
PASS_DEADLINE = 60.0


def _busy_entry(busy: Tuple[str, float]) -> Dict[str, str]:
    """The status's "busy": the action running and its deadline (wall clock)."""
    left = busy[1] - time.monotonic()
    return {"action": busy[0], "deadline": status.now_iso(time.time() + max(0.0, left))}


# rtnetlink multicast groups: links, IPv4 addresses and routes.
_RTMGRP_LINK, _RTMGRP_IPV4_IFADDR, _RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40


def pool_digest(items: Any) -> str:
    """A cheap fingerprint of pool items (zlib, not OpenSSL: no 3 MB import)."""
    import zlib

    return format(zlib.crc32(repr(items).encode("utf-8", "surrogatepass")), "08x")


def watch_list(path: str) -> List[str]:
    """Paths added with `moby-agent watch add` (read as outside input: no
    symlink followed, no FIFO waited on, size and depth bounded)."""
    from agent.system import read_json

    try:
        doc = read_json(path)
    except (OSError, ValueError):
        return []
    return [p for p in doc if isinstance(p, str)] if isinstance(doc, list) else []


def open_link_events() -> "Optional[socket.socket]":
    """A netlink socket that becomes readable when links, addresses or
    routes change; its messages are only a wake-up (the pass asks netlink
    for the route itself), so they are drained unparsed."""
    import socket  # the daemon only: about 4 ms of start-up (its enums)

    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        sock.bind((0, _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV4_ROUTE))
    except OSError as exc:
        log.warning("no netlink events (%s): shares waiting for the network retry on their backoff only", exc)
        return None
    return sock


def drain(sock: "socket.socket") -> None:
    try:
        while sock.recv(65536):
            pass
    except (BlockingIOError, OSError):
        pass


class Agent:
    def __init__(self, conf: AgentConfig, root: str, reload_conf: Callable[[], AgentConfig]) -> None:
        self.conf = conf
        self.root = root
        self._reload_conf = reload_conf
        self.memory = hub.Memory()
        self.started = time.time()
        self.passes = 0
        self.last_pass: Optional[Dict[str, Any]] = None
        # kvp.pool_dir applies only at restart: a reload keeps this one.
        self.pool_dir = conf.kvp.pool_dir
        # The last pass's notes, problems and outcomes: every capability's
        # state is derived from them (capability_state) when a status
        # document is built, with what the agent itself saw since (a pool 1
        # write that failed, the live-reload watcher).
        self._last: Optional[Tuple[Mapping[str, Note], Tuple[Problem, ...], List[Outcome]]] = None
        self._guest_pool_error: Optional[str] = None
        self.heartbeat = time.time()
        self.drives: Dict[str, str] = {}
        self.share_watcher: Optional[Any] = None
        # live reload: dockerd's running containers (agent/livereload/containers.py),
        # followed by `run` only; what is watched and why.
        self.follower: Optional[Any] = None
        self.watch_reasons: Dict[str, Tuple[str, ...]] = {}
        self._containers_changed = False
        self._wake_fd: Optional[int] = None
        self._watch_activity = False
        self._retry_watch = False  # set by a reload (SIGHUP, `watch add`)
        self.rerun = False
        self.waiting_for_network = False
        # Set by a netlink event (a link up after sleep or a network change):
        # the next pass probes the mounted shares (shares/health.py).
        self.check_health = False
        self._logged_problems: Set[str] = set()
        self._live_reload_error: Optional[str] = None
        self._busy: Optional[Tuple[str, float]] = None  # the running action and its deadline
        self._pass_deadline = 0.0  # while a pass runs: when its reading and planning are overdue
        self._last_doc: Optional[Dict[str, Any]] = None  # the status document last written
        self._writing = False  # write_status is running (the signal handler may interrupt it)
        self._answer_pending = False  # a health answer waits for that write to end
        self._pass_crash: Optional[str] = None
        self._stop = False
        self._hup = False
        self._usr1 = False

    # ---- one pass ---------------------------------------------------------

    def run_pass(self) -> bool:
        """Observe, plan, apply, report. True if every action succeeded."""
        t0 = time.monotonic()
        obs = hub.observe(self.conf, self.root, self.memory.seen_host_items, self.memory.retries,
                          pool_dir=self.pool_dir, should_stop=lambda: self._stop, run_programs=True,
                          check_health=self.check_health, suspect=self.memory.suspect)
        self.check_health = False
        plan = hub.plan(obs)
        t_planned = time.monotonic()
        for problem in plan.problems:
            if problem.text not in self._logged_problems:  # once per change, not per pass
                log.warning("%s", printable(problem.text))
        self._logged_problems = {p.text for p in plan.problems}
        ctx = hub.Context(self.conf, self.root, self.memory, obs.shares, lambda: self._stop,
                                self._release_watch, busy=self._set_busy)
        outcomes = hub.run(plan, ctx)
        self.rerun = ctx.rerun
        self.passes += 1
        if self.passes == 1:
            age = system.own_age()
            log.info("first pass done in %.0f ms, %s after the process started", (time.monotonic() - t0) * 1000,
                     f"{age * 1000:.0f} ms" if age is not None else "unknown")
        self.waiting_for_network = self.memory.waiting_for_network
        self._update_capabilities(plan, outcomes)
        t1 = time.monotonic()
        self.last_pass = {
            "time": status.now_iso(),
            "duration_ms": round((t1 - t0) * 1000, 3),
            "plan_ms": round((t_planned - t0) * 1000, 3),
            # When planning ended (CLOCK_MONOTONIC, comparable across
            # processes) and what pool 0 held: how benchmarks measure reaction.
            "planned_monotonic": t_planned,
            "pool0_digest": pool_digest(obs.pools[hub.HOST_POOL].items),
            "actions": len(plan.actions),
            "failed": sum(1 for o in outcomes if not o.ok),
        }
        try:
            self._update_watch()
        except Exception as exc:  # noqa: BLE001 - live reload's bug must not stop the shares
            self._live_reload_error = f"live reload failed unexpectedly ({type(exc).__name__}: {exc})"
            log.error("%s", self._live_reload_error, exc_info=exc)
        else:
            self._live_reload_error = None
        self.report(obs)
        return all(o.ok for o in outcomes)

    def _update_watch(self) -> None:
        """Start watching the configured shared paths once they exist; after
        a reload, start again the roots that were left unwatched."""
        retry, self._retry_watch = self._retry_watch, False
        self._containers_changed = False
        try:
            listed = watch_list(under(self.root, self.conf.watch.state_file))
        except OSError as exc:  # a path leaving --root, or not a plain file
            log.warning("watch list %s: %s", self.conf.watch.state_file, printable(exc))
            listed = []
        from agent.livereload import containers
        from agent.shares.mountinfo import parse_mountinfo

        self._follow(self.conf.watch.follow_containers)
        explicit = [(p, "agent.toml") for p in self.conf.watch.shares] + [(p, "watch add") for p in listed]
        running = self.follower.containers() if self.follower is not None else ()
        try:
            table = parse_mountinfo(read_text(under(self.root, "/proc/self/mountinfo")) or "")
        except OSError:
            table = ()
        self.watch_reasons = containers.watched_roots(containers.sources_of(running, explicit),
                                                      containers.shared_drives(table), self.conf.watch.skip)
        roots = list(self.watch_reasons)
        if not roots and self.share_watcher is None:
            return
        if self.share_watcher is None:
            from agent.livereload.watcher import ShareWatcher

            # under_dir: a root that is a symlink is followed inside --root, never out of it.
            self.share_watcher = ShareWatcher(self.conf.watch.skip, self.conf.watch.max_dirs,
                                              lambda p: under_dir(self.root, p), self._poke,
                                              self.conf.watch.rescan_seconds, self.conf.watch.notify,
                                              self.conf.watch.tree)
        self.share_watcher.set_roots(roots, retry)

    def _follow(self, wanted: bool) -> None:
        """Start or stop following dockerd's containers (agent.toml's
        watch.follow_containers; `run` only: a one-off pass does not)."""
        if wanted and self.follower is None and self._wake_fd is not None:
            from agent.livereload.containers import ContainerFollower

            self.follower = ContainerFollower(under(self.root, self.conf.docker.socket), self._on_containers,
                                              self.root)
            self.follower.start()
        elif not wanted and self.follower is not None:
            self.follower.stop()
            self.follower = None

    def _on_containers(self) -> None:
        """From the follower's thread: the running containers changed."""
        self._containers_changed = True
        self._poke()

    def _release_watch(self, target: str) -> None:
        if self.share_watcher is not None:
            self.share_watcher.release(target)

    def _update_capabilities(self, plan: hub.Plan, outcomes: List[Outcome]) -> None:
        self.drives = dict(self.memory.drives)
        self._last = (plan.notes, plan.problems, outcomes)

    def _live_reload(self) -> Tuple[Note, Tuple[Problem, ...]]:
        """The live-reload capability's note and problems, from the watcher
        as it is now (its counters move between passes)."""
        if self._live_reload_error:
            return Note("not watching"), (Problem("live_reload", "watch", self._live_reload_error),)
        if self.share_watcher is None:
            followed = f"; containers: {self.follower.describe()}" if self.follower is not None else ""
            return Note("no shared path to watch" + followed, active=False), ()
        stats = self.share_watcher.stats.as_dict()
        roots = ", ".join(stats.get("roots") or []) or "no root yet"
        note = Note(f"{roots}: {stats.get('directories')} directories")
        why = stats.get("why")
        return note, ((Problem("live_reload", "watch", str(why), "warning"),) if why else ())

    @property
    def capabilities(self) -> Dict[str, Dict[str, Any]]:
        """Each capability's state from its own notes, problems and outcomes
        (outcome.capability_state): the last pass's, and the agent's own."""
        live_note, own = self._live_reload()
        if self._guest_pool_error:
            own += (Problem("pool", f"pool {kvp.GUEST_POOL}",
                            f"pool {kvp.GUEST_POOL} not updated: {self._guest_pool_error}"),)
        caps = {}
        for name in CAPABILITIES:
            if self._last is None and name != "live_reload":
                caps[name] = capability("inactive", "not handled yet")
                continue
            notes, problems, outcomes = self._last or ({}, (), [])
            note = live_note if name == "live_reload" else notes.get(name, Note("", active=False))
            caps[name] = capability_state(name, note, tuple(problems) + own, outcomes)
        return caps

    def _safe_pass(self) -> bool:
        """run_pass, surviving anything it raises (logged once with its
        traceback): the loop goes on and the next wake-up tries again.
        Returns whether another pass is due at once."""
        # Reading and planning (pools, mount table, database, dockerd's API,
        # a stat of each mounted share) take far less; an action has its
        # own deadline.
        self._pass_deadline = time.monotonic() + PASS_DEADLINE + health.PROBE_TIMEOUT * len(self.memory.drives)
        try:
            self.run_pass()
        except Exception as exc:  # noqa: BLE001
            text = f"a pass failed unexpectedly ({type(exc).__name__}: {exc})"
            if text != self._pass_crash:
                log.error("%s; the agent goes on", text, exc_info=exc)
            self._pass_crash = text
            return False
        finally:
            self._pass_deadline = 0.0
        self._pass_crash = None
        return self.rerun  # e.g. the database was just mounted: read it now

    # ---- reporting --------------------------------------------------------

    def document(self, state: Optional[str] = None) -> Dict[str, Any]:
        doc = status.document(
            pid=os.getpid(),
            started=self.started,
            passes=self.passes,
            last_pass=self.last_pass,
            capabilities=self.capabilities,
            heartbeat=self.heartbeat,
            state=state,
        )
        doc["shares"] = dict(self.drives)
        if self._busy is not None:
            doc["busy"] = _busy_entry(self._busy)
        # When each failing drive is tried next: an absolute time, here only
        # (pool 1 carries no countdown).
        now_wall, now_mono = time.time(), time.monotonic()
        doc["retries"] = {
            drive: {"failures": r.failures, "next_try": status.now_iso(now_wall + max(0.0, r.next_at - now_mono)),
                    "error": r.error}
            for drive, r in sorted(self.memory.retries.items())
        }
        if self.share_watcher is not None and not self._live_reload_error:
            doc["watch"] = self.share_watcher.stats.as_dict()
        if self.follower is not None and not self._live_reload_error:
            watch = doc.setdefault("watch", {})
            watch["containers"] = self.follower.describe()
        if "watch" in doc:
            # What is watched and why: the containers mounting it, `watch add`, agent.toml.
            doc["watch"]["reasons"] = {root: list(whys) for root, whys in self.watch_reasons.items()}
        return doc

    def write_status(self, doc: Dict[str, Any]) -> None:
        # The newest document first: a health answer the signal handler
        # writes the moment this write ends must carry it, not the one before.
        self._last_doc = doc
        self._writing = True
        try:
            write_atomic(under(self.root, self.conf.status.file), status.encode(doc))
        except OSError as exc:
            log.error("cannot write status file %s: %s", self.conf.status.file, exc.strerror)
        finally:
            self._writing = False
        if self._answer_pending:  # a health request came during that write: answered now
            self._answer_pending = False
            self._write_answer()

    def _write_answer(self) -> None:
        """The last document written, with the new heartbeat and the action
        busy now. From the signal handler too, so it takes no lock and builds
        nothing: the thread it interrupted may hold any lock (the container
        follower's while listing containers), and document() would wait for
        it for ever."""
        if self._last_doc is None:
            return  # nothing written yet: the first pass's report answers
        doc = dict(self._last_doc, heartbeat=self.heartbeat)
        doc.pop("busy", None)
        busy = self._busy
        if busy is not None:
            doc["busy"] = _busy_entry(busy)
        self.write_status(doc)

    def report(self, obs: Optional[hub.Observation], state: Optional[str] = None) -> None:
        """Pool 1 first, then the status file: a failed pool 1 write is a
        pool problem in the status written now, and until a write works."""
        doc = self.document(state)
        error = self._write_guest_pool(obs, doc)
        if error != self._guest_pool_error:
            if error is not None:
                log.error("cannot update pool %d: %s", kvp.GUEST_POOL, error)
            self._guest_pool_error = error
            doc = self.document(state)
        self.write_status(doc)

    def _write_guest_pool(self, obs: Optional[hub.Observation], doc: Dict[str, Any]) -> Optional[str]:
        """Pool 1's moby-agent.* items made equal to the document's; why not, if not."""
        if not self.conf.status.guest_pool:
            return None
        pool_dir = under_dir(self.root, self.pool_dir)
        if not os.path.isdir(pool_dir):
            return None  # the directory belongs to hv_kvp_daemon; never create it
        # Nor the file: created here while the init script's `rm -rf` of the
        # directory runs, it made that rm fail ("Directory not empty").
        try:
            current = obs.pools[kvp.GUEST_POOL] if obs else kvp.read_pool(kvp.pool_path(pool_dir, kvp.GUEST_POOL))
            changes = status.guest_changes(current, status.guest_items(doc))
            if changes and kvp.write_guest_items(pool_dir, kvp.GUEST_POOL, changes, create=False,
                                                 should_stop=lambda: self._stop):
                log.debug("pool %d: updated %s", kvp.GUEST_POOL, ", ".join(sorted(changes)))
        except (kvp.KvpError, OSError) as exc:
            return printable(str(exc))
        return None

    # ---- the loop ---------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stop = True
        elif signum == signal.SIGHUP:
            self._hup = True
        elif signum == signal.SIGUSR1:
            self._usr1 = True
            busy = self._busy
            deadline = busy[1] if busy is not None else self._pass_deadline
            if time.monotonic() < deadline:
                # A pass is running within its deadline, or its action is
                # (a mount waiting on a slow host, a docker restart): alive,
                # so answer now, not when the pass ends. Past the deadline
                # the loop is stuck: no answer, and OpenRC restarts it.
                self.heartbeat = time.time()
                if self._writing:  # the interrupted thread is writing: it writes again when done
                    self._answer_pending = True
                else:
                    self._write_answer()

    def _set_busy(self, action: Optional[Any], deadline: float) -> None:
        self._busy = (f"{action.name()} {action.subject()}".strip(), deadline) if action is not None else None

    def _poke(self) -> None:
        """From a watcher thread: the loop should refresh the status."""
        self._watch_activity = True
        if self._wake_fd is not None:
            try:
                os.write(self._wake_fd, b"w")
            except OSError:
                pass

    def _timeout(self) -> Optional[float]:
        """None (block) unless a retry is scheduled or database polling is
        configured: no timer while idle."""
        times = [r.next_at - time.monotonic() for r in self.memory.retries.values()]
        # A drive whose health probe failed: probed again when it would be dead.
        times += [since + health.DEAD_AFTER - time.monotonic() for since in self.memory.suspect.values()]
        if self.conf.database.poll_seconds > 0:
            times.append(self.conf.database.poll_seconds)
        return max(0.0, min(times)) if times else None

    def _reload(self) -> None:
        try:
            new = self._reload_conf()
        except Exception as exc:  # noqa: BLE001 - a reload never ends the agent (a ConfigError, or any bug)
            text = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {printable(exc)}"
            log.error("reload: %s; keeping the previous configuration", text)
            return
        if new.kvp.pool_dir != self.pool_dir:
            log.warning("reload: kvp.pool_dir changes only at restart; keeping %s", self.pool_dir)
        self.conf = new
        self._retry_watch = True
        logging.getLogger().setLevel(new.log_level.upper())
        log.info("reload: configuration re-read")

    def start_up(self) -> None:
        """Before the first pass, for `run` and `run --once` alike: a mount
        killed mid-way (the agent was SIGKILLed) left its 0600 credentials
        file, which nothing else will ever remove. Not while another agent
        runs against this root: its mount may be using one right now."""
        other = status.running_pid(self._status_doc(), self.root)
        if other is not None and other != os.getpid():
            log.warning("agent pid %d is running: its credentials files are left alone", other)
            return
        try:
            for name in remove_stale_credentials(os.path.dirname(under(self.root, self.conf.shares.state_file))):
                log.warning("removed a credentials file left by an interrupted mount: %s", printable(name))
        except OSError:
            pass

    def _status_doc(self) -> Optional[Dict[str, Any]]:
        try:
            return status.load(under(self.root, self.conf.status.file))
        except OSError:
            return None

    def run(self) -> int:
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wfd)
        self._wake_fd = wfd
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        # Here, not at import: inotify_simple brings ctypes.util, subprocess,
        # shutil and tempfile (about 10 ms), which `run --once` and every
        # other command do without.
        from agent.kvp.poolwatch import PoolWatcher

        watcher = PoolWatcher(under_dir(self.root, self.pool_dir))
        links = open_link_events()
        # The mount table signals every change with POLLPRI (select's
        # exceptional condition): a share or /Database unmounted behind the
        # agent's back is noticed at once. Not under --root (a fixture tree).
        mounts = open("/proc/self/mountinfo", "rb") if self.root in ("", "/") else None  # noqa: SIM115
        log.info("moby-agent started (pid %d), watching %s", os.getpid(), watcher.watching)
        # `kill -USR2 PID` writes every thread's Python stack to the log: where
        # a stuck agent is stuck (README: debugging a guest).
        import faulthandler

        faulthandler.register(signal.SIGUSR2, all_threads=True)
        self.start_up()
        try:
            due = True
            while not self._stop:
                if due:
                    due = self._safe_pass()
                if self._stop:
                    break
                fds = [watcher.fileno(), rfd] + ([links.fileno()] if links else [])
                mount_fds = [mounts.fileno()] if mounts else []
                # select, not poll, is safe here although live reload raises the
                # open-file limit past FD_SETSIZE: these descriptors are opened
                # before any watch, so they stay below 1024.
                readable, _, changed = select.select(fds, [], mount_fds, self._timeout())
                if changed:
                    due = True
                if rfd in readable:
                    try:
                        while os.read(rfd, 512):
                            pass
                    except BlockingIOError:
                        pass
                if watcher.fileno() in readable and watcher.wait(self.conf.watch.settle_ms):
                    due = True
                if links is not None and links.fileno() in readable:
                    drain(links)
                    if self.memory.drives:
                        # Shares mounted across a link change: probe them at
                        # the next pass, not in one of their own (netlink
                        # chatter then cost a pass each: 4 passes for one
                        # cifsmount push in the guest).
                        self.check_health = True
                    if self.waiting_for_network:  # the network may be back: retry at once
                        self.memory.retries.clear()
                        due = True
                if not readable and not changed:  # a retry is due
                    due = True
                if self._hup:
                    self._hup = False
                    self._reload()
                    due = True
                if self._containers_changed and not due:
                    self._containers_changed = False
                    try:  # a container started or ended: its bind mounts, watched or let go now
                        self._update_watch()
                    except Exception as exc:  # noqa: BLE001 - as in run_pass
                        self._live_reload_error = f"live reload failed unexpectedly ({type(exc).__name__}: {exc})"
                        log.error("%s", self._live_reload_error, exc_info=exc)
                if self._usr1 or self._watch_activity:
                    answer = self._usr1
                    if answer:
                        self.heartbeat = time.time()
                    self._usr1 = self._watch_activity = False
                    # A health request is answered before a pass that is
                    # due (it may go on to a long action); activity waits
                    # for the pass's own report.
                    if answer or not due:
                        self.write_status(self.document())
            log.info("moby-agent stopping")
            self.report(None, state="stopped")
            return 0
        finally:
            if self.follower is not None:
                self.follower.stop()
            watcher.close()
            if links is not None:
                links.close()
            if mounts is not None:
                mounts.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            signal.set_wakeup_fd(old_wakeup)
            self._wake_fd = None
            os.close(rfd)
            os.close(wfd)
