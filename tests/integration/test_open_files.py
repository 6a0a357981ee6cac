"""Live reload holds one descriptor per watched directory (its change-notify
request), and a daemon started by init has a soft open-file limit of 1024
(hard 4096): 5,000 directories stopped at the 1,010th with "Too many open
files" (found in the guest). The watcher raises its own limit instead, and
where it may not, says how far it can go. Real descriptors and real
limits, in a child process (at a smaller scale: the limits are set low)."""

import json
import os
import resource
import subprocess
import sys

from tests.conftest import REPO, require_root

# Each watch thread blocks as in the ioctl (a read of a pipe, the GIL
# released), holding its directory's descriptor open.
CHILD = """
import json, os, resource, sys, time
from agent.livereload import watcher
r, _w = os.pipe()
watcher.wait_for_change = lambda fd, tree=False: (os.read(r, 1), [])[1]
top, n = sys.argv[1], int(sys.argv[2])
w = watcher.ShareWatcher([], max_dirs=n + 10)
w.set_roots([top])
deadline = time.monotonic() + 30
while w.stats.directories < n and time.monotonic() < deadline and "open files" not in (w.stats.why or ""):
    time.sleep(0.05)
time.sleep(0.5)  # every thread into its open and its request
print(json.dumps({"directories": w.stats.directories, "why": w.stats.why,
                  "limits": resource.getrlimit(resource.RLIMIT_NOFILE)}), flush=True)
os._exit(0)
"""


def tree(top, n):
    for i in range(n - 1):
        (top / f"d{i // 10:02d}" / f"m{i:03d}").mkdir(parents=True, exist_ok=True)
    return sum(1 for _ in os.walk(top))


def watch_in_child(top, n, soft, hard):
    """The child without CAP_SYS_RESOURCE (as this sandbox and CI have it): the
    hard limit is a ceiling. Raising the hard limit too, as root in the guest
    may, is what bench/livereload_guest.py's 5,250 directories go through."""

    def limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    r = subprocess.run(["setpriv", "--bounding-set=-sys_resource", "--inh-caps=-sys_resource", sys.executable,
                        "-c", CHILD, str(top), str(n)], capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=limits)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_more_directories_than_the_soft_open_file_limit_are_all_watched(tmp_path):
    require_root()
    n = tree(tmp_path, 300)  # with the top and the packages: 330, past the soft limit of 64
    got = watch_in_child(tmp_path, n, soft=64, hard=4096)
    assert got["directories"] == n and got["why"] is None, got
    assert got["limits"] == [n + 10 + 256, 4096], got  # watch.max_dirs and the headroom


def test_where_the_limit_cannot_be_raised_the_status_says_how_far(tmp_path):
    require_root()
    n = tree(tmp_path, 300)
    got = watch_in_child(tmp_path, n, soft=64, hard=128)
    assert got["limits"] == [128, 128], got  # the soft limit raised as far as the hard one
    assert got["directories"] < n, got
    assert "Too many open files (the agent's limit is 128, one per watched directory); not watched" in got["why"], got
