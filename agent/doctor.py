"""`moby-agent doctor`: the guest-side troubleshooting, one line per check.

Each check says OK, WARN or FAIL and, when not OK, one sentence on what to
do. Network probes run only against an on-link host address and only when
--root is / (a fixture tree has no network of its own).
"""

import os
import shutil
import subprocess
from typing import Callable, List, Union

from agent import kvp, status
from agent.agentconfig import AgentConfig
from agent.outcome import Problem
from agent.record import dataclass
from agent.settings import database
from agent.settings.apply import _read as read_input  # the agent's own reading of an input file
from agent.shares.failures import Reach, probe_smb, reach_cause
from agent.shares.mountinfo import is_mounted, parse_mountinfo
from agent.system import loads_limited, printable, processes_named, read_text, under, under_dir

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Check:
    level: str
    name: str
    text: str

    def line(self) -> str:
        return f"{self.level:<4}  {self.name:<12} {self.text}"


def host_checks(address: str, reach: Reach) -> List[Check]:
    """Pure: doctor's lines for a probe of the host."""
    if reach.route:
        return [Check(FAIL, "host", f"{address} is reached through gateway {reach.route}, not on-link: eth0 is not "
                      "on the DockerNAT switch")]
    cause = reach_cause(address, reach)
    if reach.route is None:
        assert cause is not None
        return [Check(FAIL, "host", cause.text)]
    if cause is not None:
        return [Check(OK, "host", f"{address} is on-link"), Check(FAIL, "smb", cause.text)]
    return [Check(OK, "host", f"{address} is on-link"), Check(OK, "smb", f"{address}:445 answers")]


class Doctor:
    def __init__(self, conf: AgentConfig, root: str, probe: Callable[[str], Reach] = probe_smb) -> None:
        self.s = conf
        self.root = root
        self.live = root in ("", "/")
        self.probe = probe

    def p(self, path: str) -> str:
        """A file the doctor reads (opened without following its last
        component): its directories resolved inside the root."""
        return under(self.root, path)

    def d(self, path: str) -> str:
        """A directory, a device or a socket (what cannot be opened with
        O_NOFOLLOW): resolved to its last component inside the root, so that
        a symlink out of the root is never looked at, listed or connected to."""
        return under_dir(self.root, path)

    def vmbus(self) -> Check:
        if os.path.exists(self.d("/dev/vmbus/hv_kvp")):
            return Check(OK, "vmbus", "/dev/vmbus/hv_kvp is present")
        return Check(
            FAIL,
            "vmbus",
            "no /dev/vmbus/hv_kvp: not a Hyper-V guest (or hv_utils is not loaded), so the host "
            "cannot push items; run in the Docker for Windows VM or `modprobe hv_utils`",
        )

    def kvp_daemon(self) -> Check:
        pids = processes_named(self.root, "hv_kvp_daemon")
        if pids:
            return Check(OK, "kvp daemon", f"hv_kvp_daemon is running (pid {pids[0]})")
        return Check(FAIL, "kvp daemon", "hv_kvp_daemon is not running; `rc-service hv_kvp_daemon start`")

    def pools(self) -> List[Check]:
        pool_dir = self.d(self.s.kvp.pool_dir)
        if not os.path.isdir(pool_dir):
            return [Check(FAIL, "pools", f"{self.s.kvp.pool_dir} does not exist; hv_kvp_daemon creates it at start")]
        path = kvp.pool_path(pool_dir, 0)
        if not os.path.exists(path):
            return [Check(WARN, "pools", f"{path} does not exist yet; the host has pushed nothing")]
        pool = kvp.read_pool(path)
        checks = []
        if pool.warnings:
            checks.append(Check(WARN, "pools", f"pool 0 parsed with problems: {pool.warnings[0]}"))
        else:
            checks.append(Check(OK, "pools", f"pool 0 parses: {len(pool.items)} items"))
        if pool.get("cifsmount") is None:
            checks.append(
                Check(WARN, "cifsmount", "no cifsmount item: share a drive in Docker for Windows' Shared Drives")
            )
        else:
            checks.append(Check(OK, "cifsmount", "the host has pushed a cifsmount item"))
        return checks

    def host(self) -> List[Check]:
        """The route to the host and its TCP port 445, with the words and
        the verdict the agent gives after a failed mount (one
        implementation: failures.probe_smb and failures.reach_cause)."""
        address = self.s.host.address
        if not self.live:
            return [Check(WARN, "host", f"not probed under --root {self.root}")]
        return host_checks(address, self.probe(address))

    def database(self) -> List[Check]:
        # The agent's own readings of the command line and the mount table.
        dbs = self.s.database
        problems: List[Problem] = []
        name = database.parse_cmdline(read_input(self.p(dbs.cmdline), dbs.cmdline, "database", problems) or "",
                                      dbs.label)
        # Not a plain file (a FIFO, a symlink): said as the agent says it.
        checks = [Check(FAIL if p.level == "error" else WARN, "database", p.text) for p in problems]
        if name is not None:
            checks.append(Check(OK, "database", f"{dbs.label} names database {name!r}"))
        elif not problems:
            checks.append(Check(WARN, "database", f"no usable {dbs.label}=NAME on the kernel command line (absent, "
                                "empty or malformed): local settings only"))
        mounts = parse_mountinfo(read_text(self.p("/proc/self/mountinfo")) or "")
        mount_point = dbs.mount_point
        if is_mounted(mounts, mount_point):
            checks.append(Check(OK, "database", f"{mount_point} is mounted"))
        else:
            checks.append(Check(WARN, "database", f"{mount_point} is not mounted: the host's settings are not read"))
        return checks

    def daemon_json(self) -> Check:
        text = read_text(self.p(self.s.docker.daemon_json))
        if text is None:
            return Check(OK, "daemon.json", f"{self.s.docker.daemon_json} does not exist (dockerd uses its defaults)")
        try:
            value = loads_limited(text)
        except ValueError as exc:
            return Check(FAIL, "daemon.json", f"{self.s.docker.daemon_json} is not valid JSON ({exc}); dockerd "
                         "will not start: fix or remove it")
        if not isinstance(value, dict):
            return Check(FAIL, "daemon.json", f"{self.s.docker.daemon_json} is not a JSON object; dockerd won't start")
        return Check(OK, "daemon.json", f"{self.s.docker.daemon_json} is valid JSON")

    def dockerd(self) -> Check:
        sock = self.d(self.s.docker.socket)
        if not os.path.exists(sock):
            return Check(WARN, "dockerd", f"no socket {self.s.docker.socket}: dockerd is not running")
        from agent.settings.dockerapi import ping

        problem = ping(sock)
        if problem:
            return Check(FAIL, "dockerd", f"dockerd does not answer: {problem}; `rc-service docker restart`")
        return Check(OK, "dockerd", f"dockerd answers on {self.s.docker.socket}")

    def agent(self) -> List[Check]:
        """The running agent's own view, from its status file: the same
        capability states `moby-agent status` and pool 1 show."""
        try:
            doc = status.load(self.p(self.s.status.file))
        except OSError as exc:
            return [Check(FAIL, "agent", f"{self.s.status.file}: {printable(exc.strerror or exc)}: not the agent's "
                          "status file; `rc-service moby-agent restart`")]
        if doc is None or status.running_pid(doc, self.root) is None:
            return [Check(FAIL, "agent", "moby-agent is not running; `rc-service moby-agent start`")]
        checks = []
        for name, cap in sorted((doc.get("capabilities") or {}).items()):
            state = cap.get("state")
            level = {"error": FAIL, "warning": WARN, "waiting": WARN}.get(state, OK)
            text = f"{state}: {cap.get('last_error') or cap.get('last_action') or ''}".rstrip(": ")
            if name == "live_reload":
                name = "watch"  # as `moby-agent watch` and [watch] call it
                if state == "warning":
                    text += "; host-side edits there may reach no guest watcher"
            checks.append(Check(level, name, text))
        notify = str((doc.get("watch") or {}).get("notify") or "")
        if notify:  # how host-side changes are heard, or why they are not
            checks.append(Check(WARN if notify.startswith(("none", "no change notify")) else OK, "watch-notify",
                                notify))
        return checks

    def rc_status(self) -> Check:
        if not self.live or shutil.which("rc-status") is None:
            return Check(WARN, "rc-status", "rc-status is not available here")
        try:
            out = subprocess.run(["rc-status", "--nocolor", "--all"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Check(WARN, "rc-status", f"rc-status did not run: {exc}")
        states = {}
        for line in out.splitlines():
            if "[" in line and line.split():
                states[line.split()[0]] = line.split("[", 1)[1].split("]", 1)[0].split()[0]
        bad = [f"{name} {state}" for name, state in states.items() if state in ("crashed", "failed", "unsupervised")]
        if bad:
            return Check(
                FAIL, "rc-status", f"{', '.join(bad)}: see /var/log/<service>.log, then `rc-service <service> restart`"
            )
        if states.get("moby-agent") != "started":
            return Check(WARN, "rc-status", "moby-agent is not started; `rc-service moby-agent start`")
        return Check(OK, "rc-status", "no service crashed, failed or unsupervised; moby-agent started")

    def run(self) -> List[Check]:
        checks: List[Check] = []
        steps: List[Callable[[], Union[Check, List[Check]]]] = [
            self.vmbus, self.kvp_daemon, self.pools, self.host, self.database, self.daemon_json, self.dockerd,
            self.rc_status, self.agent,
        ]
        for step in steps:
            try:
                result = step()
            except Exception as exc:  # a broken check must not hide the others
                result = Check(FAIL, step.__name__, f"the check itself failed: {exc}")
            checks.extend(result if isinstance(result, list) else [result])
        return checks
