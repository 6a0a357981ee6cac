"""Drive sharing's side effects: what it observes (its saved state), and the
executors of its actions (mount.cifs, bind, umount, rmdir, save).

The share state and the retry memory are the only things kept between
passes; the mount table says what is already done.
"""

import logging
import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Tuple

from agent.outcome import ActionFailed, Executor, Outcome, PlanPart, first_line
from agent.shares import failures, health
from agent.shares.failures import REFUSED
from agent.shares.items import Limits, credentials_file
from agent.shares.mountinfo import MountEntry, parse_mountinfo, top_mount
from agent.shares.plan import (
    BindAlias,
    MountShare,
    RemoveDir,
    Retry,
    SaveShares,
    SharePlan,
    SharesState,
    Unmount,
    drive_states_after,
)
from agent.system import create_exclusive, printable, read_bytes_safely, read_text, run_command, under, write_atomic

if TYPE_CHECKING:
    from agent.agentconfig import AgentConfig
    from agent.hub import Context

log = logging.getLogger("moby-agent")

# The probe of the host after a failed mount (a module attribute: tests
# replace it). Only on a live system: never under --root.
probe = failures.probe_smb
PROBED = frozenset({failures.NO_ROUTE, failures.PORT_BLOCKED, failures.SHARING_OFF, failures.HOST_DOWN})


def load_shares(path: str, limits: Limits) -> Tuple[SharesState, Optional[str]]:
    """The saved share state, every drive in it re-validated under these
    limits as if the host had just sent it, and a problem text if it was
    unreadable or a drive was dropped."""
    try:
        state, dropped = SharesState.from_json(read_bytes_safely(path, 1 << 20)).rechecked(limits)
        return state, (f"share state {printable(path)}: {'; '.join(dropped)}" if dropped else None)
    except FileNotFoundError:
        return SharesState(), None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # Re-validated as if it came from the host: anyone with root may
        # have written it.
        return SharesState(), (f"share state {printable(path)} is unreadable ({type(exc).__name__}); "
                               "starting from the pool")


def observe(conf: "AgentConfig", root: str, retries: Optional[Mapping[str, Retry]], live: bool,
            network: Callable[[str], bool]
            ) -> Tuple[Tuple[MountEntry, ...], SharesState, Optional[Tuple[str, str]], Optional[bool]]:
    """The mount table, the saved share state ((state file, why) if it was
    unreadable), and (only after a failure) whether there is a route to the
    host."""
    mounts = parse_mountinfo(read_text(under(root, "/proc/self/mountinfo")) or "")
    from agent.agentconfig import share_limits

    problem: Optional[str]
    try:
        state_file = under(root, conf.shares.state_file)
    except OSError as exc:  # its directory leads out of the root or loops: not read, said, the pool decides
        shares, problem = SharesState(), (f"share state {printable(exc.strerror or exc)}; not read, starting from "
                                          "the pool")
    else:
        shares, problem = load_shares(state_file, share_limits(conf))
    # Mounts are tried at once; only after a failure does the route to
    # the host tell "the network is not up yet" (wait for netlink
    # events) from "the server refused or is down" (back off). This
    # keeps pyroute2's import off the first mount's path.
    network_ok = network(conf.host.address) if retries and live else None
    return mounts, shares, (conf.shares.state_file, problem) if problem else None, network_ok


def observe_health(conf: "AgentConfig", mounts: Tuple[MountEntry, ...], shares: SharesState) -> Dict[str, str]:
    """Probe each drive the agent mounted whose share is still at its mount
    point (a stat in a thread, PROBE_TIMEOUT at most each). Live only."""
    results = {}
    for drive, _fp in shares.mounted:
        entry = top_mount(mounts, drive)
        if entry is not None and entry.fstype == "cifs" and entry.source.startswith(f"//{conf.host.address}/"):
            results[drive] = health.probe_mount(drive)
    return results


class MountFailed(ActionFailed):
    """The cause (failures.Cause.kind) is typed, read once from mount.cifs's
    whole output (a warning line may come first)."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message, cause)


def _set(state: SharesState, attr: str, key: str, value: Optional[str]) -> SharesState:
    """The state with one (drive -> fingerprint) pair of `mounted` or
    `auth_failed` set, or removed (value None)."""
    pairs = dict(getattr(state, attr))
    if value is None:
        pairs.pop(key, None)
    else:
        pairs[key] = value
    new = tuple(sorted(pairs.items()))
    return replace(state, mounted=new) if attr == "mounted" else replace(state, auth_failed=new)


def _makedirs(ctx: "Context", path: str) -> None:
    """Create a mount point or alias, remembering it if the agent made it
    (an old alias is removed only then)."""
    if not os.path.isdir(ctx.path(path)):
        os.makedirs(ctx.path(path), exist_ok=True)
        ctx.shares = replace(ctx.shares, made=tuple(sorted({*ctx.shares.made, path})))
        ctx.changed = True


def mount_share(action: MountShare, ctx: "Context") -> None:
    spec = action.spec
    target = ctx.path(spec.mountpoint)
    _makedirs(ctx, spec.mountpoint)
    creds_dir = os.path.dirname(ctx.path(ctx.conf.shares.state_file))
    os.makedirs(creds_dir, mode=0o700, exist_ok=True)
    fd, creds = create_exclusive(creds_dir, ".credentials-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(credentials_file(spec))
        options = ",".join(list(spec.options) + [f"credentials={creds}"])
        result = run_command(["mount.cifs", action.source, target, "-o", options],
                             ctx.conf.shares.mount_timeout, ctx.should_stop)
    finally:
        os.unlink(creds)  # right after the mount returns
    fp = spec.fingerprint()
    if result.returncode != 0:
        output = result.output.replace(spec.password, "***") if spec.password else result.output
        host = ctx.conf.host.address
        cause = failures.explain(output, host, spec.share)
        if cause.kind in PROBED and ctx.root in ("", "/"):
            cause = failures.explain(output, host, spec.share, probe(host))  # 2 s at most, after a failure only
        if cause.kind == REFUSED:
            ctx.shares = _set(ctx.shares, "auth_failed", spec.mountpoint, fp)
            ctx.changed = True
        raise MountFailed(cause.line(), cause.kind)
    ctx.shares = _set(_set(ctx.shares, "auth_failed", spec.mountpoint, None), "mounted", spec.mountpoint, fp)
    ctx.changed = True
    log.info("share %s mounted at %s", action.source, action.spec.mountpoint)


def bind_alias(action: BindAlias, ctx: "Context") -> None:
    # Bind only the share itself: if it was unmounted meanwhile, binding
    # the bare directory would leave a stale alias.
    table = parse_mountinfo(read_text(ctx.path("/proc/self/mountinfo")) or "")
    if not any(e.target == action.source and e.fstype == "cifs" for e in table):
        raise RuntimeError(f"bind {action.source} at {action.target}: {action.source} is not mounted")
    _makedirs(ctx, action.target)
    result = run_command(["mount", "-o", "bind", ctx.path(action.source), ctx.path(action.target)], 10,
                         ctx.should_stop)
    if result.returncode != 0:
        raise RuntimeError(f"bind {action.source} at {action.target}: {result.output}")
    log.info("alias %s bound to %s", action.target, action.source)


def unmount(action: Unmount, ctx: "Context") -> None:
    ctx.release(action.target)
    result = run_command(["umount", *(["-l"] if action.lazy else []), ctx.path(action.target)], 30,
                         ctx.should_stop)
    if result.returncode != 0:
        raise RuntimeError(f"unmount {action.target}: {result.output}")
    if action.target == action.drive:
        ctx.shares = _set(ctx.shares, "mounted", action.drive, None)
        ctx.changed = True
    log.info("unmounted %s", action.target)


def remove_dir(action: RemoveDir, ctx: "Context") -> None:
    removed = True
    try:
        os.rmdir(ctx.path(action.path))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.info("kept %s: %s", action.path, exc.strerror)
        removed = False
    if removed and action.path in ctx.shares.made:
        ctx.shares = replace(ctx.shares, made=tuple(p for p in ctx.shares.made if p != action.path))
        ctx.changed = True
    if action.path == action.drive:
        ctx.shares = _set(ctx.shares, "mounted", action.drive, None)
        ctx.changed = True


def save_shares(action: SaveShares, ctx: "Context") -> None:
    ctx.shares = replace(ctx.shares, drives=action.drives, seen=action.seen)
    ctx.changed = True


EXECUTORS: Dict[type, Executor] = {
    MountShare: mount_share,
    BindAlias: bind_alias,
    Unmount: unmount,
    RemoveDir: remove_dir,
    SaveShares: save_shares,
}


def _failed(ctx: "Context", drive: str, outcome: Outcome) -> None:
    """A step for `drive` failed: back off before the next try, unless the
    server refused the credentials (then only a new item is tried)."""
    if outcome.cause == REFUSED:
        ctx.memory.retries.pop(drive, None)
        return
    retry = ctx.conf.retry
    old = ctx.memory.retries.get(drive)
    failures = (old.failures if old else 0) + 1
    delay = min(retry.max_seconds, retry.min_seconds * 2 ** (failures - 1))
    ctx.memory.retries[drive] = Retry(failures, time.monotonic() + delay, first_line(outcome.error))


def after_apply(ctx: "Context", part: PlanPart, outcomes: List[Outcome]) -> None:
    """After the pass's actions: the retry memory from each drive's first
    real failure (or a mount that went through), each drive's state, and
    the share state saved if it changed."""
    for o in outcomes:
        drive = o.action.chain() if o.action.capability() == "shares" else None
        if drive is None or o.skipped:
            continue
        if not o.ok:
            _failed(ctx, drive, o)
        elif isinstance(o.action, MountShare):
            ctx.memory.retries.pop(drive, None)
    planned = part.drive_states if isinstance(part, SharePlan) else {}
    ctx.memory.drives = drive_states_after(planned, outcomes, set(ctx.memory.retries))
    ctx.memory.waiting_for_network = part.waiting_for_network if isinstance(part, SharePlan) else False
    if isinstance(part, SharePlan):
        ctx.memory.suspect = dict(part.suspect)
    if ctx.changed:
        try:
            write_atomic(ctx.path(ctx.conf.shares.state_file), ctx.shares.to_json(), mode=0o600)
        except OSError as exc:
            log.error("cannot save share state %s: %s", ctx.conf.shares.state_file, exc.strerror)
