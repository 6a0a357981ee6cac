"""Configured absolute paths have one spelling: every check that compares a
path as a string (the mount table's targets, the database mount point
refused to a cifsmount, system directories) sees the path the kernel shows.
A path spelled otherwise ('/D/', '/D/.', '//D', '/./D', '/a/../D') is a
ConfigError, never a second spelling that slips past those checks."""

import pytest

from agent import agentconfig, hub, kvp

DB = "com.docker.driver.amd64-linux"
SPELLINGS = ["/D", "/D/", "/D/.", "/D//", "//D", "/./D", "/X/../D", "D", ""]
PATH_KEYS = [
    ("kvp", "pool_dir"), ("database", "cmdline"), ("database", "mount_point"), ("docker", "daemon_json"),
    ("docker", "socket"), ("docker", "pidfile"), ("docker", "dropin_dir"), ("docker", "confd"),
    ("status", "file"), ("shares", "state_file"), ("watch", "state_file"),
]


@pytest.mark.parametrize("section, key", PATH_KEYS)
@pytest.mark.parametrize("path", ["/x/", "/x/.", "/./x", "/x//y", "//x", "/a/../x", "x", "./x", "", "/x/.."])
def test_every_configured_path_has_one_spelling(section, key, path):
    with pytest.raises(agentconfig.ConfigError) as info:
        agentconfig.parse(f'[{section}]\n{key} = "{path}"\n', "/etc/moby-agent/agent.toml")
    assert str(info.value).startswith(f"/etc/moby-agent/agent.toml: {section}.{key}: expected ")


@pytest.mark.parametrize("path", ["/x/", "/x/.", "//x", "/x/../y", "x"])
def test_watched_shares_have_one_spelling(path):
    with pytest.raises(agentconfig.ConfigError, match=r"watch\.shares\[1\]: expected "):
        agentconfig.parse(f'[watch]\nshares = ["/C", "{path}"]\n')


def test_plain_paths_are_kept_as_written():
    conf = agentconfig.parse('[kvp]\npool_dir = "/var/lib/hyperv"\n[database]\nmount_point = "/D"\n'
                             '[watch]\nshares = ["/C/src", "/C/my project.d"]\n')
    assert conf.kvp.pool_dir == "/var/lib/hyperv" and conf.database.mount_point == "/D"
    assert conf.watch.shares == ("/C/src", "/C/my project.d")


def _root(tmp_path):
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    (pool_dir / ".kvp_pool_0").write_bytes(kvp.encode([("cifsmount", "/D;;username=me,password=pw,noperm")]))
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "cmdline").write_text(f'com.docker.database="{DB}"\n')
    # The database is mounted at /D: the kernel shows the target so.
    (tmp_path / "proc" / "self" / "mountinfo").write_text(
        "22 1 0:21 / / rw - tmpfs rootfs rw\n"
        "40 22 0:40 / /D rw - 9p db rw,trans=virtio\n")
    (tmp_path / "D" / "branch" / "master" / "ro" / DB).mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_database_mount_point_protections_hold_for_any_accepted_spelling(tmp_path, spelling):
    """database.mount_point = '/D/' was accepted: the database was mounted
    again at every pass (no mount table target is '/D/') and a cifsmount
    of /D was accepted over it (the refused mount point was '/D/')."""
    try:
        conf = agentconfig.parse(f'[database]\nmount_point = "{spelling}"\n')
    except agentconfig.ConfigError:
        assert spelling != "/D"
        return
    plan = hub.plan(hub.observe(conf, str(_root(tmp_path)), None))
    names = [a.name() for a in plan.actions]
    assert "mount-database" not in names, names
    assert "mount" not in names, names
    assert any("/D" in p.text and p.capability == "shares" for p in plan.problems), plan.problems
