"""Follow the containers: the bind-mount sources of running containers on
the shared drives are the roots live reload watches.

Pure first: what the Engine API says (a /containers/json entry, an inspect
document, an /events line) read into values, and watched_roots(), from the
sources (container mounts, `watch add`, agent.toml) and the shared drives
to the roots to watch with why each one is. Then the thin I/O:
ContainerFollower, one thread holding one streaming GET /events on the
docker socket, re-synced from GET /containers/json each time it (re)connects.
"""

import json
import logging
import os
import select
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from agent.record import dataclass

log = logging.getLogger("moby-agent")

# The container events that start or end a container's bind mounts
# (kill may be survived; stop always follows die).
START_EVENTS = ("start",)
END_EVENTS = ("die", "destroy")
EVENTS_FILTER = json.dumps({"type": ["container"], "event": list(START_EVENTS + END_EVENTS)},
                           separators=(",", ":"))
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Container:
    """A running container and the host paths it has bind-mounted."""

    id: str
    name: str
    sources: Tuple[str, ...]  # bind-mount sources, normalized, in mount order


def normalize(path: object) -> Optional[str]:
    """One spelling of an absolute path ('/C/src', '/C/src/', '//C//src/.'
    are '/C/src'); None for anything else: relative, '..', NUL, not text."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or len(path) > 4096:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/" + "/".join(parts)


def _inside(path: str, top: str) -> bool:
    return path == top or top == "/" or path.startswith(top + "/")


def container_from(doc: object) -> Optional[Container]:
    """A running container from a /containers/json entry or a
    /containers/{id}/json document; None if it is not running or not such
    a document. Only bind mounts count (a volume is not the host's)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("Id"), str) or not doc["Id"]:
        return None
    state = doc.get("State")
    running = state.get("Running") is True if isinstance(state, dict) else state == "running"
    if not running:
        return None
    name = doc.get("Name")
    if not isinstance(name, str):
        names = doc.get("Names")
        name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else ""
    name = name.lstrip("/") or doc["Id"][:12]
    sources: List[str] = []
    mounts = doc.get("Mounts")
    for mount in mounts if isinstance(mounts, list) else ():
        if isinstance(mount, dict) and mount.get("Type") == "bind":
            source = normalize(mount.get("Source"))
            if source is not None and source not in sources:
                sources.append(source)
    return Container(doc["Id"], name, tuple(sources))


def event_of(doc: object) -> Optional[Tuple[str, str]]:
    """("start" or "end", container id) from an /events document; None for
    any other event (an exec, another type, not an event)."""
    if not isinstance(doc, dict) or doc.get("Type", "container") != "container":
        return None
    action = doc.get("Action", doc.get("status"))
    actor = doc.get("Actor")
    cid = actor.get("ID") if isinstance(actor, dict) else doc.get("id")
    if not isinstance(cid, str) or not cid:
        cid = doc.get("id")
    if not isinstance(cid, str) or not cid:
        return None
    if action in START_EVENTS:
        return "start", cid
    if action in END_EVENTS:
        return "end", cid
    return None


def shared_drives(entries: Iterable[Any]) -> Dict[str, str]:
    """The shared drives in the mount table (mountinfo entries): each cifs
    mount point and alias -> the path the watcher uses for it (the last
    mounted of those showing the same files: the alias, /C, for /c and /C,
    the spelling Docker's paths use)."""
    cifs = [e for e in entries if e.fstype == "cifs" and normalize(e.target) == e.target]
    canonical: Dict[Tuple[str, str], str] = {(e.dev, e.root): e.target for e in cifs}
    return {e.target: canonical[(e.dev, e.root)] for e in cifs}


def on_drive(path: str, drives: Mapping[str, str]) -> Optional[str]:
    """path in the watcher's spelling if it is on a shared drive, else None
    (the deepest drive containing it wins)."""
    best = None
    for target in drives:
        if _inside(path, target) and (best is None or len(target) > len(best)):
            best = target
    if best is None:
        return None
    rest = path[len(best):] if best != "/" else path
    return normalize(drives[best] + "/" + rest)


def _covers(root: str, path: str, skip: Iterable[str]) -> bool:
    """Watching root watches path: path is root or below it with no
    skipped directory name on the way (the watcher does not go there)."""
    if not _inside(path, root):
        return False
    rest = path[len(root):].strip("/")
    return not any(part in skip for part in rest.split("/") if part)


Source = Tuple[str, str, bool]  # (path, why, only on a shared drive)


def sources_of(containers: Iterable[Container], explicit: Iterable[Tuple[str, str]] = ()) -> List[Source]:
    """The watch sources: each container's bind mounts (only those on a
    shared drive count), then the explicit paths (agent.toml, `watch add`)."""
    out: List[Source] = [(s, f"container {c.name}", True) for c in containers for s in c.sources]
    out += [(p, why, False) for p, why in explicit]
    return out


def watched_roots(sources: Iterable[Source], drives: Mapping[str, str],
                  skip: Iterable[str] = ()) -> Dict[str, Tuple[str, ...]]:
    """The roots to watch, each with why (sorted, once each).

    A source is taken in the watcher's spelling (on_drive); one that must be
    on a shared drive and is not is left out; an explicit path off the
    drives is kept as normalized. A source inside another one's tree (not
    through a skipped directory) is watched by it: no root is inside
    another, so a directory mounted by several containers, or below
    another's mount, is watched once."""
    skip = frozenset(skip)
    wanted: Dict[str, List[str]] = {}
    for path, why, drive_only in sources:
        plain = normalize(path)
        if plain is None:
            continue
        spelled = on_drive(plain, drives)
        if spelled is None:
            if drive_only:
                continue
            spelled = plain
        wanted.setdefault(spelled, []).append(why)
    roots = [p for p in wanted if not any(q != p and _covers(q, p, skip) for q in wanted)]
    out: Dict[str, Tuple[str, ...]] = {}
    for root in sorted(roots):
        whys = {w for p, ws in wanted.items() if _covers(root, p, skip) for w in ws}
        out[root] = tuple(sorted(whys))
    return out


def strip_root(path: str, root: str) -> Optional[str]:
    """A mount source as dockerd gives it (a path of this machine) as the
    guest path under --root; None if it is outside the root."""
    if root in ("", "/"):
        return path
    top = normalize(root) or root
    if not _inside(path, top):
        return None
    return normalize("/" + path[len(top):])


# ---- the thin I/O: one stream of events ----------------------------------


class ContainerFollower:
    """One thread following dockerd: GET /events (one streaming request,
    container start/die/destroy), re-synced from GET /containers/json each
    time it connects (dockerd started or restarted, the stream broken).

    No timer while dockerd is away: with no socket, the thread waits on
    inotify for the socket's directory (or its nearest existing ancestor) to
    change; a socket that is there but does not answer (dockerd starting, or
    a stale socket) is tried again with backoff (0.5 s to 30 s, also woken
    by the directory). It then forgets the containers it knew: dockerd's
    containers stop with it (with live-restore they are found again at the
    resync). on_change() is called (from this thread) whenever containers()
    or the follower's state changes."""

    def __init__(self, socket_path: str, on_change: Callable[[], None], root: str = "/",
                 max_backoff: float = MAX_BACKOFF) -> None:
        self.socket_path = socket_path
        self.on_change = on_change
        self.root = root
        self.max_backoff = max_backoff
        self.connected = False
        self.why: Optional[str] = "not started"
        self.syncs = 0  # how many times the running containers were listed
        self._running: Dict[str, Container] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._apis: List[Any] = []
        self._thread: Optional[threading.Thread] = None
        self._pipe: Optional[Tuple[int, int]] = None

    def containers(self) -> Tuple[Container, ...]:
        with self._lock:
            return tuple(self._running[k] for k in sorted(self._running))

    def start(self) -> None:  # pragma: no mutate block
        if self._thread is None:
            self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._thread = threading.Thread(target=self._run, daemon=True, name="containers")
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:  # pragma: no mutate block
        """End the thread: its stream's socket is shut down, which ends the
        blocked read at once, and a wait for dockerd is woken."""
        self._stop.set()
        with self._lock:
            apis = list(self._apis)
        for api in apis:
            api.abort()
        if self._pipe is not None:
            try:
                os.write(self._pipe[1], b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def describe(self) -> str:
        with self._lock:
            n = len(self._running)
            mounting = sum(1 for c in self._running.values() if c.sources)
        if self.connected:
            return f"following dockerd: {n} running, {mounting} with bind mounts"
        return f"dockerd not followed: {self.why}"

    def _set(self, running: Dict[str, Container]) -> None:
        with self._lock:
            same = running == self._running
            self._running = running
        if not same:
            self.on_change()

    def _state(self, connected: bool, why: Optional[str]) -> None:
        if (connected, why) != (self.connected, self.why):
            if connected:
                log.info("live reload: following dockerd's containers on %s", self.socket_path)
            else:
                log.info("live reload: dockerd not followed: %s", why)
            self.connected, self.why = connected, why
            self.on_change()

    def _local(self, c: Optional[Container]) -> Optional[Container]:
        """The container with its sources as guest paths (under --root)."""
        if c is None or self.root in ("", "/"):
            return c
        kept = tuple(s for s in (strip_root(p, self.root) for p in c.sources) if s is not None)
        return Container(c.id, c.name, kept)

    def _run(self) -> None:  # pragma: no mutate block
        delay = 0.0
        try:
            while not self._stop.is_set() and not os.path.exists(self.socket_path):
                # Before dockerd's first start (the agent starts before it):
                # requests is imported only once there is a socket to ask.
                self._state(False, f"no socket {self.socket_path} (dockerd not running)")
                self._wait(None)
            from agent.settings.dockerapi import DockerAPI, DockerError

            while not self._stop.is_set():
                stream_api = DockerAPI(self.socket_path, timeout=5.0)
                api = DockerAPI(self.socket_path, timeout=5.0)
                with self._lock:
                    self._apis = [stream_api, api]
                try:
                    if self._stop.is_set():
                        break
                    # The stream first, then the list: an event between the
                    # two waits in the stream's socket, none is lost.
                    response = stream_api.stream("/events?filters=" + _quote(EVENTS_FILTER))
                    listed = api.get_json("/containers/json")
                    running: Dict[str, Container] = {}
                    for doc in listed if isinstance(listed, list) else ():
                        c = self._local(container_from(doc))
                        if c is not None:
                            running[c.id] = c
                    self._set(running)
                    self.syncs += 1
                    self._state(True, None)
                    delay = 0.0
                    for line in response.iter_lines(chunk_size=None):
                        if self._stop.is_set():
                            break
                        self._event(line, api)
                    if not self._stop.is_set():
                        raise DockerError("the event stream ended (dockerd stopped?)")
                except Exception as exc:  # noqa: BLE001 - requests', urllib3's, a bad document: all mean "again"
                    if self._stop.is_set():
                        break
                    text = str(exc) if isinstance(exc, DockerError) else f"{type(exc).__name__}: {exc}"
                    if not os.path.exists(self.socket_path):
                        text, delay = f"no socket {self.socket_path} (dockerd not running)", 0.0
                    else:
                        delay = min(self.max_backoff, max(0.5, delay * 2))
                    self._set({})
                    self._state(False, text)
                finally:
                    with self._lock:
                        self._apis = []
                    stream_api.close()
                    api.close()
                if not self._stop.is_set():
                    self._wait(delay or None)
        finally:
            if self._pipe is not None:
                for fd in self._pipe:
                    os.close(fd)
                self._pipe = None

    def _wait(self, timeout: Optional[float]) -> None:  # pragma: no mutate block
        """Until the socket's directory changes (the socket made, replaced or
        removed), stop(), or timeout seconds (None: no timer)."""
        from inotify_simple import INotify, flags

        ino = INotify()
        try:
            watched = os.path.dirname(self.socket_path) or "/"
            while not os.path.isdir(watched) and watched != os.path.dirname(watched):
                watched = os.path.dirname(watched)
            mask = (flags.CREATE | flags.MOVED_TO | flags.DELETE | flags.MOVED_FROM | flags.ATTRIB
                    | flags.DELETE_SELF | flags.MOVE_SELF)
            try:
                ino.add_watch(watched, mask)
            except OSError:
                timeout = timeout or self.max_backoff  # no watch: fall back to the backoff
            if timeout is None and os.path.exists(self.socket_path):
                return  # made while the watch was being set up
            poller = select.poll()
            poller.register(ino.fileno(), select.POLLIN)
            assert self._pipe is not None
            poller.register(self._pipe[0], select.POLLIN)
            poller.poll(None if timeout is None else int(timeout * 1000))
        finally:
            ino.close()

    def _event(self, line: bytes, api: Any) -> None:
        try:
            doc = json.loads(line)
        except ValueError:
            return
        ev = event_of(doc)
        if ev is None:
            return
        kind, cid = ev
        with self._lock:
            running = dict(self._running)
        if kind == "end":
            running.pop(cid, None)
        else:
            from agent.settings.dockerapi import DockerError

            try:
                c = self._local(container_from(api.get_json(f"/containers/{_quote(cid)}/json")))
            except DockerError:
                c = None  # gone again already
            if c is not None:
                running[c.id] = c
        self._set(running)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def reasons_text(reasons: Mapping[str, Sequence[str]]) -> str:
    """'/C/src (container web, container api), /C/doc (watch add)'."""
    return ", ".join(f"{root} ({', '.join(whys)})" if whys else root for root, whys in reasons.items())
