"""Drive sharing as Windows users have it, in the stand-in guest: domain
accounts, alias changes, unshare and re-share, a password changed on the
host, a firewall on TCP 445 and a file server restarted mid-use. Each
failure must reach the user as words they can act on (status, pool 1)."""

import subprocess
import time

import pytest

from tests.vm.guest import SMB_PASSWORD, SMB_USER
from tests.vm.test_shares import V1, cifs_mounts, status, wait_mounted

WORKGROUP = "WORKGROUP"  # the Samba server's workgroup (tests/vm/guest.py SMB_CONF): its domain


def super_options(guest, mount_point):
    for line in guest.read("/proc/self/mountinfo").splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[4] == mount_point and fields[sep + 1] == "cifs":
            return fields[sep + 3].split(",")
    raise AssertionError(f"{mount_point} is not a cifs mount")


def drive_state(guest, mp="/c"):
    return status(guest).get("shares", {}).get(mp, "")


def pool1_state(guest, mp="/c"):
    return dict(guest.kvp.enumerate(1)).get(f"moby-agent.share.{mp}", "")


def in_netns(guest, *argv):
    subprocess.run(guest._ns(*argv), check=True, capture_output=True)


@pytest.mark.parametrize("shape", ["v2", "v1"])
def test_a_domain_account_given_as_domain_backslash_user_mounts(clean, shape):
    guest = clean
    user = f"{WORKGROUP}\\{SMB_USER}"
    if shape == "v2":
        item = f"/c\n/C\n{user}\n{SMB_PASSWORD}\nnoperm,vers=3.1.1"
    else:
        item = f"/c;/C;username={user},password={SMB_PASSWORD.replace(',', ',,')},noperm,vers=3.1.1"
    guest.kvp.set(0, "cifsmount", item)
    took = wait_mounted(guest, timeout=10)
    print(f"{shape} item with {WORKGROUP}\\user mounted in {took:.2f} s")
    opts = super_options(guest, "/c")
    # Split as mount.cifs expects it: the user alone, the domain apart.
    assert f"username={SMB_USER}" in opts and f"domain={WORKGROUP}" in opts, opts
    assert guest.run(["ls", "/C"]).returncode == 0


def test_an_alias_change_moves_the_alias_and_drops_the_old_one(clean):
    guest = clean
    guest.kvp.set(0, "cifsmount", V1)
    wait_mounted(guest)
    device = cifs_mounts(guest)["/c"][1]
    t0 = time.monotonic()
    guest.kvp.set(0, "cifsmount", V1.replace("/c;/C;", "/c;/D;", 1))
    guest.wait(lambda: "/D" in cifs_mounts(guest) and "/C" not in cifs_mounts(guest), timeout=10,
               what="the alias moved from /C to /D")
    print(f"alias /C -> /D in {time.monotonic() - t0:.2f} s")
    mounts = cifs_mounts(guest)
    assert mounts["/c"][1] == device == mounts["/D"][1]  # no remount: the same superblock
    guest.wait(lambda: guest.run(["test", "-e", "/C"]).returncode != 0, timeout=5, what="/C removed")
    (guest.share / "alias.txt").write_text("through /D\n")
    assert guest.read("/D/alias.txt") == "through /D\n"
    guest.kvp.set(0, "cifsumount", "/c;/D")
    guest.wait(lambda: not cifs_mounts(guest), timeout=10, what="both unmounted")


@pytest.mark.parametrize("how", ["cifsumount deleted, cifsmount rewritten unchanged",
                                 "cifsmount deleted and written again, cifsumount kept"])
def test_unshare_then_reshare_with_the_same_password_mounts_again(clean, how):
    guest = clean
    guest.kvp.set(0, "cifsmount", V1)
    wait_mounted(guest)
    guest.kvp.set(0, "cifsumount", "/c;/C")
    guest.wait(lambda: not cifs_mounts(guest), timeout=10, what="the unshare")
    time.sleep(1)  # a pass has seen the unshare
    t0 = time.monotonic()
    if how.startswith("cifsumount deleted"):
        guest.kvp.delete(0, "cifsumount")
        guest.kvp.set(0, "cifsmount", V1)  # rewritten in place, the same bytes
    else:
        guest.kvp.delete(0, "cifsmount")
        guest.kvp.set(0, "cifsmount", V1)  # appended after cifsumount
    took = wait_mounted(guest, timeout=10)
    print(f"re-share ({how}) mounted in {time.monotonic() - t0:.2f} s ({took:.2f} s after the last write)")
    assert drive_state(guest) == "mounted"
    # A cifsumount left in the pool and written again unchanged would tell
    # nothing to the next test's unshare (the same bytes): the host deletes it.
    guest.kvp.delete(0, "cifsumount", missing_ok=True)
    guest.settled()


def test_a_password_changed_on_the_host_is_told_then_a_new_item_mounts(clean):
    guest = clean
    new_password = "Changed on Windows, 2026"
    guest.set_samba_password(new_password)
    try:
        # The host re-shares with the password it still remembers.
        guest.kvp.set(0, "cifsmount", V1)
        guest.wait(lambda: "refused the credentials" in drive_state(guest), timeout=15,
                   what="the refused password told")
        state = drive_state(guest)
        assert "re-share the drive with the current Windows password" in state and "mount error(13)" in state
        assert pool1_state(guest) == state  # the host reads the same words
        assert status(guest)["capabilities"]["shares"]["state"] == "error"
        assert new_password not in state and SMB_PASSWORD not in state
        # The user re-shares with the new password: a new item.
        t0 = time.monotonic()
        guest.kvp.set(0, "cifsmount", f"/c\n/C\n{SMB_USER}\n{new_password}\nnoperm,vers=3.1.1")
        wait_mounted(guest, timeout=10)
        print(f"new password to mounted: {time.monotonic() - t0:.2f} s")
        assert drive_state(guest) == "mounted" and pool1_state(guest) == "mounted"
        assert status(guest)["capabilities"]["shares"]["state"] == "ok"
    finally:
        guest.set_samba_password(SMB_PASSWORD)


def test_port_445_dropped_is_told_as_a_firewall_and_mounts_once_open(clean):
    guest = clean
    # As Windows Defender Firewall does: new connections to 445 dropped, no reset.
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", "445", "--syn", "-j", "DROP"]
    in_netns(guest, "iptables", "-I", *rule)
    try:
        guest.kvp.set(0, "cifsmount", V1)
        guest.wait(lambda: "a firewall" in drive_state(guest), timeout=60, what="the firewall told")
        state = drive_state(guest)
        print(f"port 445 dropped: {state}")
        assert state.startswith("waiting: 10.0.75.1 does not answer on TCP port 445: a firewall"), state
        assert pool1_state(guest) == state
        assert "/c" in status(guest).get("retries", {})
    finally:
        in_netns(guest, "iptables", "-D", *rule)
    took = wait_mounted(guest, timeout=8 + 30)  # retry.max_seconds + a mount under TCG that may wait on a dropped SYN
    print(f"mounted {took:.1f} s after the firewall opened")
    assert drive_state(guest) == "mounted"


def test_samba_stopped_is_told_as_file_sharing_off(clean):
    guest = clean
    guest.stop_samba()
    try:
        guest.kvp.set(0, "cifsmount", V1)
        guest.wait(lambda: "file sharing is off" in drive_state(guest), timeout=20, what="file sharing off told")
        assert "nothing listens on TCP port 445" in drive_state(guest)
    finally:
        guest.start_samba()
    wait_mounted(guest, timeout=8 + 6)


def test_samba_restarted_mid_use_is_usable_again_without_a_step(clean):
    guest = clean
    guest.kvp.set(0, "cifsmount", V1)
    wait_mounted(guest)
    assert guest.run(["sh", "-c", "echo before > /C/restart.txt"]).returncode == 0
    guest.stop_samba()
    time.sleep(2)
    guest.start_samba()
    t0 = time.monotonic()
    r = guest.run(["sh", "-c", "i=0; until echo after > /C/restart.txt 2>/dev/null; do i=$((i+1)); "
                   "[ $i -gt 300 ] && exit 1; sleep 0.2; done"], timeout=90)
    took = time.monotonic() - t0
    print(f"usable {took:.1f} s after Samba came back")
    assert r.returncode == 0
    assert (guest.share / "restart.txt").read_text() == "after\n"
    assert drive_state(guest) == "mounted"
    assert "/c" in cifs_mounts(guest) and "/C" in cifs_mounts(guest)
