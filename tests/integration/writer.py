"""A second writer process that behaves like hv_kvp_daemon: whole-file
fcntl write lock, then truncate in place and rewrite every record.

usage: python writer.py PATH MODE ...
  hold SECONDS KEY=VALUE...   lock, write half a file, sleep, finish, unlock
  flip COUNT                  alternate two item sets COUNT times
  burst COUNT [GAP_MS]        write n=0..COUNT-1, one write per value,
                              GAP_MS apart (default: no gap)
"""

import fcntl
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from agent import kvp  # noqa: E402

SET_A = [("cifsmount", "/c;/C;username=a,password=aaaa,noperm"), ("x", "1" * 2000)]
SET_B = [("cifsmount", "/d;/D;username=b,password=b,noperm"), ("y", "2"), ("z", "3")]


def daemon_write(fd: int, path: str, data: bytes, pause: float = 0.0) -> None:
    """What the daemon's kvp_update_file does: lock (a long-lived fd), then
    fopen("w"), fwrite, fclose, unlock."""
    fcntl.lockf(fd, fcntl.LOCK_EX)
    out = os.open(path, os.O_WRONLY | os.O_TRUNC)
    half = len(data) // 2
    os.write(out, data[:half])
    if pause:
        print("locked", flush=True)
        time.sleep(pause)
    os.write(out, data[half:])
    os.close(out)
    fcntl.lockf(fd, fcntl.LOCK_UN)


def make_pool_dir(pool_dir) -> None:
    """What hv_kvp_daemon does at start: the pool directory and its five
    pool files (kvp_file_init opens each with O_CREAT, mode 0604)."""
    os.makedirs(pool_dir, exist_ok=True)
    for n in range(kvp.POOL_COUNT):
        os.close(os.open(os.path.join(pool_dir, f".kvp_pool_{n}"), os.O_RDWR | os.O_CREAT, 0o604))


def write_items(path, items) -> None:
    """One daemon-style update of the pool at `path` (created if missing)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        daemon_write(fd, str(path), kvp.encode(items))
    finally:
        os.close(fd)


def daemon_set(path, key: str, value: str) -> None:
    """hv_kvp_daemon's SET: an existing key's record is rewritten in place,
    the new value copied over the old one (the old tail after its NUL
    survives); a new key is appended. Then the whole file is rewritten
    under the lock (kvp_update_file)."""
    data = bytearray(open(path, "rb").read()) if os.path.exists(path) else bytearray()
    kb, vb = key.encode() + b"\0", value.encode() + b"\0"
    for i in range(len(data) // kvp.RECORD_SIZE):
        at = i * kvp.RECORD_SIZE
        if data[at:at + kvp.KEY_SIZE].split(b"\0", 1)[0] == key.encode():
            data[at + kvp.KEY_SIZE:at + kvp.KEY_SIZE + len(vb)] = vb
            break
    else:
        record = bytearray(kvp.RECORD_SIZE)
        record[:len(kb)] = kb
        record[kvp.KEY_SIZE:kvp.KEY_SIZE + len(vb)] = vb
        data += record
    _daemon_rewrite(path, bytes(data))


def daemon_delete(path, key: str) -> None:
    """hv_kvp_daemon's DELETE: the later records shift up by one."""
    data = open(path, "rb").read()
    records = [data[i:i + kvp.RECORD_SIZE] for i in range(0, len(data) - len(data) % kvp.RECORD_SIZE,
                                                           kvp.RECORD_SIZE)]
    kept = [r for r in records if r[:kvp.KEY_SIZE].split(b"\0", 1)[0] != key.encode()]
    _daemon_rewrite(path, b"".join(kept))


def _daemon_rewrite(path, data: bytes) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        daemon_write(fd, str(path), data)
    finally:
        os.close(fd)


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if mode == "hold":
        items = [tuple(arg.split("=", 1)) for arg in sys.argv[4:]]
        daemon_write(fd, path, kvp.encode(items), float(sys.argv[3]))
    elif mode == "flip":
        a, b = kvp.encode(SET_A), kvp.encode(SET_B)
        for i in range(int(sys.argv[3])):
            daemon_write(fd, path, a if i % 2 else b)
            if i == 0:
                print("ready", flush=True)
            if random.random() < 0.1:
                # A random gap now and then, so a reader cannot fall into
                # step with the writer and always find the same set (it did
                # on a loaded machine: 1,000 reads, every one set A).
                time.sleep(random.random() / 5000)
    elif mode == "burst":
        gap = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.0
        for i in range(int(sys.argv[3])):
            daemon_write(fd, path, kvp.encode([("n", str(i))]))
            if gap:
                time.sleep(gap)
    os.close(fd)


if __name__ == "__main__":
    main()
