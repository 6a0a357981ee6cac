"""A real `moby-agent run` in a subprocess, against a fixture root."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]


class AgentProcess:
    def __init__(self, root: Path, *args: str, log_level: str = "debug",
                 env: Optional[Dict[str, str]] = None) -> None:
        self.root = root
        cfg = root / "etc" / "moby-agent" / "agent.toml"
        if not cfg.exists():
            cfg.parent.mkdir(parents=True, exist_ok=True)
            cfg.write_text(f'log_level = "{log_level}"\n')
        env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "--root", str(root), "run", *args],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.wait_for("moby-agent started")

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if text in line:
                    self.seen.remove(line)
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"agent never logged {text!r}; last lines: {self.seen[-10:]}")
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                pass

    def drain(self) -> List[str]:
        """The lines logged since the last look, kept in `seen` too."""
        new: List[str] = []
        while True:
            try:
                new.append(self.lines.get_nowait())
            except queue.Empty:
                self.seen.extend(new)
                return new

    def status(self) -> dict:
        return json.loads((self.root / "run" / "moby-agent" / "status.json").read_text())

    def wait_status(self, predicate, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                doc = self.status()
                if predicate(doc):
                    return doc
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.02)
        raise AssertionError(f"status never matched; last: {self.status()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
