"""Unshare, re-share and an alias change against the real agent process
under --root (mounts are refused there, so the plan is checked: `plan
--json`), with pool 0 rewritten the way hv_kvp_daemon does it (a SET of an
existing key in place, a new key appended, a DELETE shifting records up)
and a fake mount table. Between steps the test plays the executor: the
mount table and the share state the mounts would leave."""

import json
import os
import subprocess
import sys

from agent.shares.items import parse_mount
from agent.shares.plan import SharesState, digest
from tests.conftest import REPO
from tests.integration.writer import daemon_delete, daemon_set

V = "/c;/C;username=me,password=s3cret,noperm"
ROOT_LINE = "22 1 0:21 / / rw,relatime - tmpfs rootfs rw\n"
MOUNTED = ROOT_LINE + "30 22 0:50 / /c rw - cifs //10.0.75.1/c rw\n31 22 0:50 / /C rw - cifs //10.0.75.1/c rw\n"


def fixture(root):
    (root / "proc" / "self").mkdir(parents=True)
    pools = root / "var" / "lib" / "hyperv"
    pools.mkdir(parents=True)
    (pools / ".kvp_pool_1").write_bytes(b"")
    (root / "run" / "moby-agent").mkdir(parents=True)
    return pools / ".kvp_pool_0"


def world(root, pool0, mounted, value=V, made=()):
    """What the previous pass left: the mount table and the share state
    (seen = the pool's items as they are now, in file order)."""
    from agent import kvp

    (root / "proc" / "self" / "mountinfo").write_text(MOUNTED if mounted else ROOT_LINE)
    spec = parse_mount(value)
    items = kvp.read_pool(str(pool0)).items
    state = SharesState(drives=(spec,) if mounted else (), mounted=(("/c", spec.fingerprint()),) if mounted else (),
                        seen=tuple((k, digest(v)) for k, v in items), made=made)  # in file order
    path = root / "run" / "moby-agent" / "shares.json"
    path.write_bytes(state.to_json())
    os.chmod(path, 0o600)


def plan(root):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "agent", "--root", str(root), "plan", "--json"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout + r.stderr
    doc = json.loads(r.stdout)
    steps = [(a["action"], a.get("target") or a.get("path")) for a in doc["actions"]]
    return [(name, target) for name, target in steps
            if name in ("mount", "bind", "unmount", "remove-dir") and target in ("/c", "/C", "/D")]


def test_unshare_then_reshare_with_the_same_value(tmp_path):
    pool0 = fixture(tmp_path)
    daemon_set(pool0, "com.docker.database.generation", "1")
    daemon_set(pool0, "cifsmount", V)
    world(tmp_path, pool0, mounted=True)
    assert plan(tmp_path) == []
    daemon_set(pool0, "cifsumount", "/c;/C")  # unshare: appended after cifsmount
    assert plan(tmp_path) == [("unmount", "/C"), ("unmount", "/c"), ("remove-dir", "/C"), ("remove-dir", "/c")]
    world(tmp_path, pool0, mounted=False)
    assert plan(tmp_path) == []  # unshared: stays so
    # Re-share: the host deletes cifsumount and writes the same cifsmount
    # (rewritten in place, the file as before).
    daemon_delete(pool0, "cifsumount")
    daemon_set(pool0, "cifsmount", V)
    assert plan(tmp_path) == [("mount", "/c"), ("bind", "/C")]


def test_unshare_with_a_cifsumount_record_before_the_cifsmount(tmp_path):
    """An older cifsumount record, then cifsmount appended after it: file
    order is not write order."""
    pool0 = fixture(tmp_path)
    daemon_set(pool0, "cifsumount", "/d;/D")
    daemon_set(pool0, "cifsmount", V)
    world(tmp_path, pool0, mounted=True)
    assert plan(tmp_path) == []
    daemon_set(pool0, "cifsumount", "/c;/C")  # rewritten in place, before cifsmount; a stale tail survives
    assert plan(tmp_path)[:2] == [("unmount", "/C"), ("unmount", "/c")]


def test_an_alias_change_unbinds_the_old_alias(tmp_path):
    pool0 = fixture(tmp_path)
    daemon_set(pool0, "cifsmount", V)
    world(tmp_path, pool0, mounted=True, made=("/C", "/c"))
    daemon_set(pool0, "cifsmount", V.replace("/C;", "/D;"))
    assert plan(tmp_path) == [("bind", "/D"), ("unmount", "/C"), ("remove-dir", "/C")]
