"""The Docker Engine API over its unix socket, with requests."""

import socket
import threading
import weakref
from typing import Any, Dict, Optional

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool


class DockerError(Exception):
    """dockerd did not answer as expected."""


class _UnixConnection(urllib3.connection.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=1)
        self._path = path
        self._timeout_s = timeout
        self._lock = threading.Lock()
        self.made: weakref.WeakSet[_UnixConnection] = weakref.WeakSet()

    def _new_conn(self) -> _UnixConnection:
        conn = _UnixConnection(self._path, self._timeout_s)
        with self._lock:
            self.made.add(conn)
        return conn

    def abort(self) -> None:
        """Shut down every connection's socket (from any thread): a read
        blocked on one returns at once."""
        with self._lock:
            conns = list(self.made)
        for conn in conns:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _UnixAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self._pool = _UnixPool(path, timeout)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None) -> Any:
        return self._pool

    def get_connection(self, url: Any, proxies: Any = None) -> Any:  # requests < 2.32
        return self._pool

    def abort(self) -> None:
        self._pool.abort()

    def close(self) -> None:
        self._pool.close()
        super().close()


class DockerAPI:
    def __init__(self, socket_path: str, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # never a proxy for a local socket
        self._adapter = _UnixAdapter(socket_path, timeout)
        self._session.mount("http+docker://", self._adapter)

    def _get(self, path: str, stream: bool = False) -> requests.Response:
        # A stream waits for its next line without a read timeout (no timer:
        # abort() ends it).
        timeout: Any = (self.timeout, None) if stream else self.timeout
        try:
            r = self._session.get("http+docker://localhost" + path, timeout=timeout, stream=stream)
        except requests.RequestException as exc:
            raise DockerError(f"no answer on {self.socket_path}: {exc}") from None
        if r.status_code != 200:
            r.close()
            raise DockerError(f"GET {path.split('?')[0]}: HTTP {r.status_code}")
        return r

    def get_json(self, path: str) -> Any:
        try:
            return self._get(path).json()
        except ValueError:
            raise DockerError(f"GET {path.split('?')[0]}: not JSON") from None

    def stream(self, path: str) -> requests.Response:
        """A streaming GET (/events): the response once its headers came;
        read it with iter_lines(chunk_size=None)."""
        return self._get(path, stream=True)

    def abort(self) -> None:
        """End a stream being read in another thread."""
        self._adapter.abort()

    def ping(self) -> bool:
        return self._get("/_ping").text.strip() == "OK"

    def info(self) -> Dict[str, Any]:
        data = self._get("/info").json()
        if not isinstance(data, dict):
            raise DockerError("GET /info: not a JSON object")
        return data

    def close(self) -> None:
        self._session.close()


def ping(socket_path: str, timeout: float = 2.0) -> Optional[str]:
    """None when dockerd answers /_ping, else what went wrong."""
    api = DockerAPI(socket_path, timeout)
    try:
        return None if api.ping() else "/_ping did not answer OK"
    except DockerError as exc:
        return str(exc)
    finally:
        api.close()
