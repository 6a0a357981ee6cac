"""A first look at moby-agent, for real, without a guest.

Runs `moby-agent run` against a fixture root (/tmp/moby-demo by default),
then plays hv_kvp_daemon: pushes a `cifsmount` item into pool 0 exactly as
the daemon writes it (fcntl lock, truncate, rewrite), deletes the pool
directory as its init script does, and shows what the agent saw, its status,
its plan and the items it keeps in pool 1 for the host.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.integration.writer import make_pool_dir, write_items  # noqa: E402  (the daemon's way of writing a pool)


def agent(root: Path, *args: str) -> None:
    print(f"$ moby-agent --root {root} {' '.join(args)}", flush=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-m", "agent", "--root", str(root), *args], env=env)
    print(flush=True)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/moby-demo")
    shutil.rmtree(root, ignore_errors=True)
    pool_dir = root / "var" / "lib" / "hyperv"
    make_pool_dir(pool_dir)
    log = root / "agent.log"
    print(f"== starting the agent against {root} (log: {log})")
    with open(log, "w") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "--root", str(root), "run"],
            stderr=logf,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
    try:
        time.sleep(0.5)
        print("== the host pushes cifsmount (written as hv_kvp_daemon writes .kvp_pool_0)")
        write_items(pool_dir / ".kvp_pool_0", [("cifsmount", "/c;/C;username=me,password=s3cret,noperm")])
        time.sleep(0.3)
        print("== hv_kvp_daemon's init script removes the pool directory, then the daemon recreates it")
        shutil.rmtree(pool_dir)
        time.sleep(0.3)
        make_pool_dir(pool_dir)
        write_items(pool_dir / ".kvp_pool_0", [("cifsmount", "/c;/C;username=me,password=n3w,noperm")])
        time.sleep(0.3)
        print("== what the agent logged (passwords never appear)")
        print(log.read_text())
        agent(root, "kvp", "dump")
        agent(root, "plan", "--json")
        agent(root, "status")
        agent(root, "kvp", "dump", "--pool", "1")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(5)
    print(f"== agent stopped on SIGTERM, exit code {code}")
    agent(root, "kvp", "dump", "--pool", "1")
    leaked = "s3cret" in log.read_text() or "n3w" in log.read_text()
    print("password in the log: " + ("YES (bug)" if leaked else "no"))
    return 1 if leaked or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
