"""The stand-in guest's test channel: runs commands for the harness.

Reads requests from the virtio-serial port org.moby.exec, each a 4-byte
big-endian length and a JSON object {"argv": [...], "input": str|null,
"timeout": seconds}, runs the command and answers the same way with
{"rc": int, "stdout": str, "stderr": str}. Test equipment, not part of the
agent.
"""

import json
import os
import struct
import subprocess
import time

PORT = "/dev/virtio-ports/org.moby.exec"


def read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:  # the host end is not connected
            time.sleep(0.1)
            continue
        buf += chunk
    return buf


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def main():
    fd = os.open(PORT, os.O_RDWR)
    while True:
        (size,) = struct.unpack(">I", read_exact(fd, 4))
        req = json.loads(read_exact(fd, size))
        try:
            r = subprocess.run(
                req["argv"],
                input=(req.get("input") or "").encode(),
                capture_output=True,
                timeout=req.get("timeout") or 60,
            )
            resp = {"rc": r.returncode, "stdout": r.stdout.decode("utf-8", "replace"),
                    "stderr": r.stderr.decode("utf-8", "replace")}
        except Exception as exc:  # noqa: BLE001 - report anything to the harness
            resp = {"rc": 127, "stdout": "", "stderr": f"execd: {exc}"}
        data = json.dumps(resp).encode()
        write_all(fd, struct.pack(">I", len(data)) + data)


if __name__ == "__main__":
    main()
