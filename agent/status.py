"""What the agent reports: the status file, and items in KVP pool 1.

The status file is rewritten atomically after every pass; it never holds a
secret. The guest pool carries a few items the Windows host can read
(GuestExchangeItems); they are rewritten only when they change.
"""

import json
import time
from typing import Any, Dict, Mapping, Optional, Tuple

from agent import __version__, kvp
from agent.outcome import CAPABILITIES, capability

__all__ = ["CAPABILITIES", "GUEST_PREFIX", "capability", "describe", "document", "encode", "guest_changes",
           "guest_items", "load", "now_iso", "overall", "running_pid"]

GUEST_PREFIX = "moby-agent."


def now_iso(t: Optional[float] = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def overall(capabilities: Mapping[str, Mapping[str, Any]]) -> str:
    failing = sorted(name for name, cap in capabilities.items() if cap["state"] == "error")
    return "degraded: " + ", ".join(failing) if failing else "running"


def document(
    *,
    pid: int,
    started: float,
    passes: int,
    last_pass: Optional[Dict[str, Any]],
    capabilities: Mapping[str, Mapping[str, Any]],
    heartbeat: float,
    state: Optional[str] = None,
    start_time: Optional[int] = None,
) -> Dict[str, Any]:
    """The status document of the agent `pid`. start_time: its start time
    (/proc/PID/stat field 22), read once for this process when not given;
    running_pid requires it to match, so a pid reused by another process
    is never taken for the agent."""
    return {
        "version": __version__,
        "pid": pid,
        "start_time": start_time if start_time is not None else _start_time_of(pid),
        "started": now_iso(started),
        "state": state or overall(capabilities),
        "passes": passes,
        "last_pass": last_pass,
        "heartbeat": heartbeat,
        "capabilities": {name: dict(capabilities[name]) for name in CAPABILITIES if name in capabilities},
    }


_START_TIMES: Dict[int, Optional[int]] = {}


def _start_time_of(pid: int) -> Optional[int]:
    """process_start_time, read once per pid (the agent writes its status
    after every pass)."""
    from agent.system import process_start_time

    if pid not in _START_TIMES:
        _START_TIMES[pid] = process_start_time(pid)
    return _START_TIMES[pid]


STATUS_LIMIT = 1 << 20


def load(path: str) -> Optional[Dict[str, Any]]:
    """The status file as the agent wrote it, re-validated as if it came
    from the host (anyone with root may have written it): the shape
    `describe` reads, a pid that may be signalled (> 1) or none. None when
    absent or not such a document; OSError (UnsafePath) when the path is a
    symlink, a FIFO, a directory or too large."""
    from agent.system import read_json

    try:
        doc = read_json(path, STATUS_LIMIT, 16)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return _valid(doc)


def _valid(doc: object) -> Optional[Dict[str, Any]]:
    """The document if it has the shape `describe` reads (a pid that may not
    be signalled becomes None); else None."""
    from agent.system import valid_pid

    if not isinstance(doc, dict):
        return None
    if "pid" in doc and valid_pid(doc["pid"]) is None:
        doc = dict(doc, pid=None)
    start = doc.get("start_time")
    if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
        doc = dict(doc, start_time=None)
    caps = doc.get("capabilities")
    if caps is not None and not (isinstance(caps, dict) and all(isinstance(c, dict) for c in caps.values())):
        return None
    for name in ("last_pass", "watch"):
        if doc.get(name) is not None and not isinstance(doc[name], dict):
            return None
    watch = doc.get("watch")
    if watch and watch.get("roots") is not None and not (
            isinstance(watch["roots"], list) and all(isinstance(r, str) for r in watch["roots"])):
        return None
    reasons = (watch or {}).get("reasons")
    if reasons is not None and not (isinstance(reasons, dict) and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(w, str) for w in v)
            for k, v in reasons.items())):
        return None
    if not isinstance(doc.get("heartbeat", 0), (int, float)):
        return None
    return doc


def running_pid(doc: Optional[Mapping[str, Any]], root: str = "/", proc: str = "/proc") -> Optional[int]:
    """The pid of the agent that wrote `doc`, only if it is running: not
    stopped, and /proc confirms the pid is that moby-agent: the start time
    recorded in `doc` matches (a stranger that reused the number does not)
    and it runs an agent entry point (system.agent_pid_is; never a pid
    <= 1, never a program merely named agent) and, under --root, one
    running against that same root. The one answer to "is the agent
    running" for status, health, watch and doctor."""
    from agent.system import agent_pid_is, process_args, same_root, valid_pid

    if not doc or doc.get("state") == "stopped":
        return None
    pid = valid_pid(doc.get("pid"))
    if pid is None or not agent_pid_is(pid, doc.get("start_time"), proc):
        return None
    if root not in ("", "/") and not same_root(root, process_args(pid, proc)):
        return None
    return pid


def encode(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def guest_items(doc: Mapping[str, Any]) -> Dict[str, str]:
    """The items the host should see in pool 1, without secrets."""
    items = {GUEST_PREFIX + "state": str(doc["state"]), GUEST_PREFIX + "version": str(doc["version"])}
    for share, state in sorted((doc.get("shares") or {}).items()):
        items[GUEST_PREFIX + "share." + share] = state
    return items


def guest_changes(current: kvp.Pool, wanted: Mapping[str, str]) -> Dict[str, Optional[str]]:
    """The writes that make pool 1's moby-agent.* items equal to `wanted`;
    empty when they already are (so nothing is rewritten per pass)."""
    have = {k: v for k, v in current.items if k.startswith(GUEST_PREFIX)}
    changes: Dict[str, Optional[str]] = {k: v for k, v in wanted.items() if have.get(k) != v}
    changes.update({k: None for k in have if k not in wanted})
    return changes


def describe(doc: Mapping[str, Any], alive: bool) -> Tuple[str, int]:
    """A person's view of a status document, and the exit code of
    `moby-agent status`: 0 running and no capability in error, 1 otherwise."""
    lines = [
        f"moby-agent {doc.get('version')}: {doc.get('state')}"
        + ("" if alive else f" (but pid {doc.get('pid')} is not running)"),
        f"  pid {doc.get('pid')}, started {doc.get('started')}, {doc.get('passes')} passes",
    ]
    last = doc.get("last_pass")
    if last:
        lines.append(f"  last pass {last.get('time')}, {last.get('duration_ms')} ms")
    code = 0 if alive else 1
    for name, cap in (doc.get("capabilities") or {}).items():
        line = f"  {name:<14} {cap.get('state')}"
        if cap.get("last_action"):
            line += f"; {cap['last_action']}"
        if cap.get("last_error"):
            label = "error" if cap.get("state") == "error" else "note"
            line += f"; {label}: {cap['last_error']}"
        if cap.get("state") == "error":
            code = 1
        lines.append(line)
    watch = doc.get("watch")
    if watch:
        line = (f"  {'watch':<14} {', '.join(watch.get('roots') or []) or 'no root yet'}: "
                f"{watch.get('directories', 0)} directories, {watch.get('reemitted', 0)} events re-emitted, "
                f"{watch.get('guest_changes', 0)} guest changes not re-emitted, {watch.get('dropped', 0)} dropped")
        if watch.get("echoes"):
            line += f", {watch['echoes']} echoes not re-emitted"
        if watch.get("why"):
            line += f"; {watch['why']}"
        lines.append(line)
        reasons = watch.get("reasons") or {}
        for root in sorted(reasons):
            lines.append(f"  {'':<14} {root}: {', '.join(str(w) for w in reasons[root])}")
        if watch.get("notify"):
            lines.append(f"  {'':<14} change notify: {watch['notify']}")
        if watch.get("containers"):
            lines.append(f"  {'':<14} containers: {watch['containers']}")
    return "\n".join(lines), code
