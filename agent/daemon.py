"""The event loop: inotify and signals in one select(); a pass per wake-up.

Nothing wakes the agent while nothing changes: it blocks in select() on the
pool watcher and a signal pipe, with no timeout unless a retry is due.
"""

import logging
import os
import select
import signal
import time
from typing import Any, Callable, Dict, List, Optional

from agent import kvp, reconcile, status
from agent.config import ConfigError, Settings
from agent.system import under, write_atomic
from agent.watch import PoolWatcher

log = logging.getLogger("moby-agent")


class Agent:
    def __init__(self, settings: Settings, root: str, reload_settings: Callable[[], Settings]) -> None:
        self.settings = settings
        self.root = root
        self._reload_settings = reload_settings
        self.memory = reconcile.Memory()
        self.started = time.time()
        self.passes = 0
        self.last_pass: Optional[Dict[str, Any]] = None
        self.capabilities: Dict[str, Dict[str, Any]] = {
            name: status.capability("inactive", "not handled by this version") for name in status.CAPABILITIES
        }
        self.heartbeat = time.time()
        self._stop = False
        self._hup = False
        self._usr1 = False

    # ---- one pass ---------------------------------------------------------

    def run_pass(self) -> bool:
        """Observe, plan, apply, report. True if every action succeeded."""
        t0 = time.monotonic()
        obs = reconcile.observe(self.settings, self.root, self.memory.seen_host_items)
        plan = reconcile.plan(obs)
        t_planned = time.monotonic()
        for problem in plan.problems:
            log.warning("%s", problem)
        outcomes = reconcile.apply(plan.actions, self.memory)
        self.passes += 1
        self._update_capabilities(obs, plan, outcomes)
        t1 = time.monotonic()
        self.last_pass = {
            "time": status.now_iso(),
            "duration_ms": round((t1 - t0) * 1000, 3),
            "plan_ms": round((t_planned - t0) * 1000, 3),
            "actions": len(plan.actions),
            "failed": sum(1 for o in outcomes if not o.ok),
        }
        self.report(obs)
        return all(o.ok for o in outcomes)

    def _update_capabilities(
        self, obs: reconcile.Observation, plan: reconcile.Plan, outcomes: List[reconcile.Outcome]
    ) -> None:
        pool_dir = self.settings.kvp.pool_dir
        if not obs.pool_dir_exists:
            problem = f"pool directory {pool_dir} does not exist (is hv_kvp_daemon running?)"
            cap = status.capability("waiting", None, problem)
        else:
            failed = [o for o in outcomes if not o.ok]
            host = obs.pools[reconcile.HOST_POOL]
            action = f"read pool {reconcile.HOST_POOL}: {len(host.items)} items"
            if failed:
                cap = status.capability("error", action, failed[0].error)
            elif plan.problems:
                cap = status.capability("warning", action, plan.problems[0])
            else:
                cap = status.capability("ok", action)
        self.capabilities["pool"] = cap

    # ---- reporting --------------------------------------------------------

    def document(self, state: Optional[str] = None) -> Dict[str, Any]:
        return status.document(
            pid=os.getpid(),
            started=self.started,
            passes=self.passes,
            last_pass=self.last_pass,
            capabilities=self.capabilities,
            heartbeat=self.heartbeat,
            state=state,
        )

    def write_status(self, doc: Dict[str, Any]) -> None:
        try:
            write_atomic(under(self.root, self.settings.status.file), status.encode(doc))
        except OSError as exc:
            log.error("cannot write status file %s: %s", self.settings.status.file, exc.strerror)

    def report(self, obs: Optional[reconcile.Observation], state: Optional[str] = None) -> None:
        doc = self.document(state)
        self.write_status(doc)
        if not self.settings.status.guest_pool:
            return
        pool_dir = under(self.root, self.settings.kvp.pool_dir)
        if not os.path.isdir(pool_dir):
            return  # the directory belongs to hv_kvp_daemon; never create it
        try:
            current = obs.pools[kvp.GUEST_POOL] if obs else kvp.read_pool(kvp.pool_path(pool_dir, kvp.GUEST_POOL))
            changes = status.guest_changes(current, status.guest_items(doc))
            if changes and kvp.write_guest_items(pool_dir, kvp.GUEST_POOL, changes):
                log.debug("pool %d: updated %s", kvp.GUEST_POOL, ", ".join(sorted(changes)))
        except (kvp.KvpError, OSError) as exc:
            log.error("cannot update pool %d: %s", kvp.GUEST_POOL, exc)

    # ---- the loop ---------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stop = True
        elif signum == signal.SIGHUP:
            self._hup = True
        elif signum == signal.SIGUSR1:
            self._usr1 = True

    def _reload(self) -> None:
        try:
            new = self._reload_settings()
        except ConfigError as exc:
            log.error("reload: %s; keeping the previous configuration", exc)
            return
        if new.kvp.pool_dir != self.settings.kvp.pool_dir:
            log.warning("reload: kvp.pool_dir changes only at restart; keeping %s", self.settings.kvp.pool_dir)
        self.settings = new
        logging.getLogger().setLevel(new.log_level.upper())
        log.info("reload: configuration re-read")

    def run(self) -> int:
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wfd)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        watcher = PoolWatcher(under(self.root, self.settings.kvp.pool_dir))
        log.info("moby-agent started (pid %d), watching %s", os.getpid(), watcher.watching)
        try:
            due = True
            while not self._stop:
                if due:
                    self.run_pass()
                    due = False
                if self._stop:
                    break
                readable, _, _ = select.select([watcher.fileno(), rfd], [], [])
                if rfd in readable:
                    try:
                        while os.read(rfd, 512):
                            pass
                    except BlockingIOError:
                        pass
                if watcher.fileno() in readable and watcher.wait(self.settings.watch.settle_ms):
                    due = True
                if self._hup:
                    self._hup = False
                    self._reload()
                    due = True
                if self._usr1:
                    self._usr1 = False
                    self.heartbeat = time.time()
                    if not due:
                        self.write_status(self.document())
            log.info("moby-agent stopping")
            self.report(None, state="stopped")
            return 0
        finally:
            watcher.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            signal.set_wakeup_fd(old_wakeup)
            os.close(rfd)
            os.close(wfd)
