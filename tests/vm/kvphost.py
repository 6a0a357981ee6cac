"""The host's side of the KVP protocol, as the kernel's hv_utils driver
speaks it to hv_kvp_daemon (struct hv_kvp_msg, <linux/hyperv.h>).

In the stand-in guest the daemon's /dev/vmbus/hv_kvp is a virtio-serial
port (tests/vm/guest/kvp-shim.c); its other end is a unix socket on this
machine. Each request is one whole 7432-byte message; the daemon answers
with the same message, its error code in bytes 0-3.
"""

import socket
import struct
import threading
from typing import List, Optional, Tuple

MSG_SIZE = 7432  # sizeof(struct hv_kvp_msg) with bookworm's headers
KEY_SIZE, VALUE_SIZE = 512, 2048
OP_GET, OP_SET, OP_DELETE, OP_ENUMERATE = 0, 1, 2, 3
OP_REGISTER1 = 100
HV_S_OK, HV_S_CONT = 0x00000000, 0x80070103
REG_SZ = 1  # value_type of a string
VERSION = b"3.1"


class KvpError(Exception):
    pass


def _msg(op: int, pool: int, body: bytes) -> bytes:
    return struct.pack("<BBH", op, pool, 0) + body.ljust(MSG_SIZE - 4, b"\0")


def _exchg_value(key: bytes, value: bytes) -> bytes:
    # struct hv_kvp_exchg_msg_value: value_type, key_size, value_size (sizes
    # count the NUL, as the kernel sends them), key[512], value[2048]
    return struct.pack("<III", REG_SZ, len(key) + 1, len(value) + 1) + key.ljust(KEY_SIZE, b"\0") + value.ljust(
        VALUE_SIZE, b"\0"
    )


def _cut(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


class KvpHost:
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.timeout = timeout
        self.registrations = 0
        self.version: Optional[str] = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.sock.close()

    def _recv_msg(self) -> bytes:
        self.sock.settimeout(self.timeout)
        buf = b""
        while len(buf) < MSG_SIZE:
            try:
                chunk = self.sock.recv(MSG_SIZE - len(buf))
            except socket.timeout:
                raise KvpError(f"hv_kvp_daemon did not answer within {self.timeout} s") from None
            if not chunk:
                raise KvpError("the KVP channel closed")
            buf += chunk
        return buf

    def _answer_registration(self) -> None:
        # The kernel answers the daemon's KVP_OP_REGISTER1 with its version.
        self.sock.sendall(_msg(OP_REGISTER1, 0, VERSION))
        self.registrations += 1

    def wait_registered(self) -> None:
        with self._lock:
            while self.registrations == 0:
                msg = self._recv_msg()
                if msg[0] == OP_REGISTER1:
                    self._answer_registration()

    def _transact(self, request: bytes) -> Tuple[int, bytes]:
        with self._lock:
            self.sock.sendall(request)
            while True:
                reply = self._recv_msg()
                # A daemon that (re)started registers first: answer it and
                # keep waiting for the reply (error codes never end in 100).
                if reply[0] == OP_REGISTER1:
                    self._answer_registration()
                    continue
                (error,) = struct.unpack_from("<I", reply, 0)
                return error, reply

    def set(self, pool: int, key: str, value: str) -> None:
        error, _ = self._transact(_msg(OP_SET, pool, _exchg_value(key.encode(), value.encode())))
        if error != HV_S_OK:
            raise KvpError(f"SET {key!r} in pool {pool}: error 0x{error:08x}")

    def delete(self, pool: int, key: str, missing_ok: bool = False) -> None:
        k = key.encode()
        body = struct.pack("<I", len(k) + 1) + k.ljust(KEY_SIZE, b"\0")
        error, _ = self._transact(_msg(OP_DELETE, pool, body))
        if error == HV_S_CONT and missing_ok:
            return
        if error != HV_S_OK:
            raise KvpError(f"DELETE {key!r} in pool {pool}: error 0x{error:08x}")

    def enumerate(self, pool: int) -> List[Tuple[str, str]]:
        items = []
        for index in range(10_000):
            body = struct.pack("<I", index) + _exchg_value(b"", b"")
            error, reply = self._transact(_msg(OP_ENUMERATE, pool, body))
            if error == HV_S_CONT:
                return items
            if error != HV_S_OK:
                raise KvpError(f"ENUMERATE pool {pool} index {index}: error 0x{error:08x}")
            data = reply[4 + 4 + 12:]
            items.append((_cut(data[:KEY_SIZE]), _cut(data[KEY_SIZE : KEY_SIZE + VALUE_SIZE])))
        raise KvpError("ENUMERATE did not end")
