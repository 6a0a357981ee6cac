"""Following the containers (agent/livereload/containers.py): the Engine
API's documents read into values, and the roots to watch from the sources
and the shared drives, checked against the rules themselves."""

import posixpath

from hypothesis import given
from hypothesis import strategies as st

from agent.livereload.containers import (
    Container,
    container_from,
    event_of,
    normalize,
    on_drive,
    shared_drives,
    sources_of,
    strip_root,
    watched_roots,
)
from agent.shares.mountinfo import parse_mountinfo

LISTED = {  # a /containers/json entry, as dockerd 20.10 gives it
    "Id": "aa00a8df4e21", "Names": ["/web"], "State": "running",
    "Mounts": [{"Type": "bind", "Source": "/C/src", "Destination": "/app", "RW": True},
               {"Type": "volume", "Name": "data", "Source": "/var/lib/docker/volumes/data/_data"},
               {"Type": "bind", "Source": "/C/src/", "Destination": "/again"}],
}
INSPECTED = {  # /containers/{id}/json
    "Id": "bb11", "Name": "/api", "State": {"Status": "running", "Running": True},
    "Mounts": [{"Type": "bind", "Source": "/c/api", "Destination": "/api"}],
}
DRIVES = {"/c": "/c", "/C": "/c"}


def test_a_listed_and_an_inspected_container_give_their_bind_mounts_once():
    assert container_from(LISTED) == Container("aa00a8df4e21", "web", ("/C/src",))
    assert container_from(INSPECTED) == Container("bb11", "api", ("/c/api",))


def test_a_stopped_container_or_another_document_is_none():
    assert container_from(dict(LISTED, State="exited")) is None
    assert container_from(dict(INSPECTED, State={"Running": False})) is None
    for doc in (None, [], {"Id": ""}, {"Names": ["/x"]}, "web"):
        assert container_from(doc) is None


def test_events_start_and_end_a_container():
    start = {"Type": "container", "Action": "start", "Actor": {"ID": "aa", "Attributes": {"name": "web"}}}
    assert event_of(start) == ("start", "aa")
    assert event_of(dict(start, Action="die")) == ("end", "aa")
    assert event_of(dict(start, Action="destroy")) == ("end", "aa")
    assert event_of({"status": "start", "id": "cc"}) == ("start", "cc")  # the old fields
    for other in (dict(start, Action="exec_start: sh"), dict(start, Action="kill"), dict(start, Type="network"),
                  {"Action": "start"}, None, 5):
        assert event_of(other) is None


def test_paths_have_one_spelling():
    assert normalize("/C/src") == normalize("/C/src/") == normalize("//C//src") == normalize("/C/./src") == "/C/src"
    for bad in ("C/src", "/C/../etc", "", None, 5, "/a\0b"):
        assert normalize(bad) is None


def test_the_shared_drives_are_the_cifs_mounts_and_an_alias_is_its_mount_point():
    table = parse_mountinfo("22 1 0:20 / / rw - ext4 /dev/vda rw\n"
                            "40 22 0:40 / /c rw - cifs //10.0.75.1/c rw\n"
                            "41 22 0:40 / /C rw - cifs //10.0.75.1/c rw\n"
                            "42 22 0:41 / /Database rw - 9p db rw\n")
    drives = shared_drives(table)
    assert drives == {"/c": "/C", "/C": "/C"}
    assert on_drive("/c/src", drives) == "/C/src"
    assert on_drive("/C", drives) == "/C"
    assert on_drive("/Cx/src", drives) is None and on_drive("/Database/x", drives) is None


def test_one_directory_mounted_by_several_containers_is_watched_once_with_every_reason():
    web = Container("1", "web", ("/C/src",))
    api = Container("2", "api", ("/c/src", "/C/src/lib"))
    off = Container("3", "db", ("/var/lib/db",))
    roots = watched_roots(sources_of([web, api, off], [("/C/doc", "watch add")]), DRIVES)
    assert roots == {"/c/doc": ("watch add",), "/c/src": ("container api", "container web")}


def test_a_mount_below_a_skipped_directory_is_its_own_root():
    c = Container("1", "web", ("/C/src", "/C/src/node_modules/pkg"))
    assert watched_roots(sources_of([c]), DRIVES, skip=["node_modules"]) == {
        "/c/src": ("container web",), "/c/src/node_modules/pkg": ("container web",)}


def test_an_explicit_path_off_the_drives_is_kept_a_container_s_is_not():
    roots = watched_roots(sources_of([Container("1", "web", ("/srv",))], [("/srv/x/", "agent.toml")]), DRIVES)
    assert roots == {"/srv/x": ("agent.toml",)}


def test_a_source_is_a_guest_path_under_the_root():
    assert strip_root("/tmp/r/C/src", "/tmp/r") == "/C/src"
    assert strip_root("/tmp/rx/C", "/tmp/r") is None
    assert strip_root("/C/src", "/") == "/C/src"


# ---- the rules, as an oracle ---------------------------------------------

NAMES = st.sampled_from(["C", "c", "D", "src", "lib", "node_modules", ".git", "a"])
PATHS = st.lists(NAMES, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))
SPELLED = st.tuples(PATHS, st.sampled_from(["", "/", "//", "/."])).map(
    lambda t: (t[0] + t[1]) if t[0] != "/" else t[0])
SOURCES = st.lists(st.tuples(SPELLED, st.sampled_from(["container web", "container api", "watch add"]),
                             st.booleans()), max_size=8)
DRIVE_SETS = st.sampled_from([{}, {"/C": "/C"}, {"/c": "/c", "/C": "/c"}, {"/C": "/C", "/D": "/D"}])
SKIPS = st.sampled_from([(), ("node_modules", ".git")])


def _inside(path, top):
    return path == top or top == "/" or path.startswith(top + "/")


def _spelled(path, drives):
    """The rule: the watcher's spelling of an accepted source, or None."""
    plain = posixpath.normpath(path)
    plain = "/" + plain.lstrip("/")
    tops = [d for d in drives if _inside(plain, d)]
    if not tops:
        return None
    top = max(tops, key=len)
    return posixpath.normpath(drives[top] + "/" + plain[len(top):]).replace("//", "/")


@given(SOURCES, DRIVE_SETS, SKIPS)
def test_roots_follow_the_rules(sources, drives, skip):
    roots = watched_roots(sources, drives, skip)
    accepted = []
    for path, why, drive_only in sources:
        spelled = _spelled(path, drives)
        if spelled is None and not drive_only:
            spelled = "/" + posixpath.normpath(path).lstrip("/")
        if spelled is not None:
            accepted.append((spelled, why))

    def covers(root, path):
        if not _inside(path, root):
            return False
        return not set(path[len(root):].split("/")) & set(skip)

    # Every root is an accepted source, spelled one way, inside no other root.
    assert set(roots) <= {p for p, _ in accepted}
    for root in roots:
        assert normalize(root) == root
        assert not any(other != root and covers(other, root) for other in roots)
    # Every accepted source is watched by exactly one root, which names why.
    for path, why in accepted:
        holders = [r for r in roots if covers(r, path)]
        assert len(holders) == 1, (path, roots)
        assert why in roots[holders[0]]
    # And a root names no other reason, once each.
    for root, whys in roots.items():
        assert list(whys) == sorted(set(whys))
        assert set(whys) == {w for p, w in accepted if covers(root, p)}
