"""The status model's deciding functions, from their rules (agent/outcome.py
and agent/status.py docstrings, README "Status"): a capability's state from
its own outcomes and problems, the overall state, the plan parts merged in
order, the status document and `moby-agent status`'s view of it, and the
pool 1 items. Written against mutmut's survivors of the status model."""

import json
from dataclasses import dataclass

import pytest

from agent import kvp, status
from agent.outcome import (
    CAPABILITIES,
    Action,
    ActionFailed,
    Note,
    Outcome,
    PlanPart,
    Problem,
    capability,
    capability_state,
    first_line,
    merge_parts,
)


@dataclass(frozen=True)
class Mount(Action):
    CAPABILITY = "shares"
    drive: str = "/c"

    def name(self):
        return "mount"


@dataclass(frozen=True)
class Write(Action):
    CAPABILITY = "docker_config"
    path: str = "/etc/docker/daemon.json"

    def name(self):
        return "write-daemon-json"


@dataclass(frozen=True)
class Bare(Action):
    CAPABILITY = "pool"
    count: int = 3

    def name(self):
        return "note-host-items"


def test_an_action_is_about_its_first_named_subject_and_described_by_it():
    assert Mount().subject() == "/c" and Mount().describe() == "mount /c"
    assert Write().subject() == "/etc/docker/daemon.json"
    assert Bare().subject() == "" and Bare().describe() == "note-host-items"  # no trailing space
    assert Mount().capability() == "shares" and Mount().chain() is None
    assert Mount().as_dict() == {"action": "mount", "drive": "/c"}
    assert Action().deadline(None) == 45.0
    with pytest.raises(NotImplementedError):
        Action().name()


def test_problems_belong_to_a_capability_and_a_level():
    p = Problem("shares", "/c", "boom")
    assert (p.level, str(p)) == ("error", "boom")
    with pytest.raises(AssertionError):
        Problem("nobody", "x", "t")
    with pytest.raises(AssertionError):
        Problem("shares", "x", "t", "fatal")
    with pytest.raises(AssertionError):
        capability("broken")
    assert capability("ok") == {"state": "ok", "last_action": None, "last_error": None}
    e = ActionFailed("refused", cause="credentials")
    assert (str(e), e.cause) == ("refused", "credentials")
    assert ActionFailed("x").cause is None


def test_a_failed_action_is_its_capabilitys_error_with_what_was_done():
    done, failed = Mount("/c"), Mount("/d")
    outcomes = [Outcome(done, True), Outcome(failed, False, "mount error(13)"), Outcome(Write(), True)]
    assert capability_state("shares", Note("2 drives"), [Problem("shares", "/e", "w", "warning")], outcomes) == {
        "state": "error", "last_action": "2 drives; did mount /c", "last_error": "mount error(13)"}
    # docker_config's own outcome only; the failed mount is not its
    assert capability_state("docker_config", Note("file"), [], outcomes) == {
        "state": "ok", "last_action": "file; did write-daemon-json /etc/docker/daemon.json", "last_error": None}


def test_a_skipped_step_is_not_the_error_shown_the_first_failure_is():
    first = Outcome(Mount("/c"), False, "first error")
    skipped = Outcome(Mount("/c"), False, "not tried", skipped=True)
    assert capability_state("shares", Note("n"), [], [skipped, first])["last_error"] == "first error"
    # only skipped steps: not an error of their own
    assert capability_state("shares", Note("n"), [], [skipped])["state"] == "ok"


def test_several_actions_done_are_listed_in_order():
    outcomes = [Outcome(Mount("/c"), True), Outcome(Mount("/d"), True)]
    assert capability_state("shares", Note("n", active=False), [], outcomes) == {
        "state": "ok", "last_action": "n; did mount /c, mount /d", "last_error": None}


@pytest.mark.parametrize("levels, state, text", [
    (["warning", "waiting"], "waiting", "waiting 0"),
    (["warning", "warning"], "warning", "warning 0"),
    (["waiting", "error", "waiting"], "error", "error 0"),
    (["warning", "waiting", "error"], "error", "error 0"),
])
def test_the_worst_problem_decides_and_the_first_of_that_level_is_shown(levels, state, text):
    problems = [Problem("network", "x", f"{level} {levels[:i].count(level)}", level)
                for i, level in enumerate(levels)]
    assert capability_state("network", Note("dhcp"), problems, []) == {
        "state": state, "last_action": "dhcp", "last_error": text}


def test_with_nothing_to_handle_a_capability_is_inactive_else_ok():
    assert capability_state("database", Note("no label", active=False), [], []) == {
        "state": "inactive", "last_action": "no label", "last_error": None}
    assert capability_state("database", Note("mounted"), [], [])["state"] == "ok"


@pytest.mark.parametrize("text, line", [
    (None, ""), ("", ""), ("\n  \n", ""),
    ("mount error(13): Permission denied\nRefer to the mount.cifs(8) manual page",
     "mount error(13): Permission denied"),
    ("\n  first  \nsecond", "first"),
])
def test_first_line_is_the_first_non_empty_one(text, line):
    assert first_line(text) == line


def test_plan_parts_merge_in_order_and_a_later_note_wins():
    a = PlanPart((Mount("/c"),), (Problem("shares", "/c", "p1"),), {"shares": Note("one")})
    b = PlanPart((Mount("/d"), Write()), (Problem("network", "x", "p2"),), {"shares": Note("two"),
                                                                             "network": Note("dhcp")})
    actions, problems, notes = merge_parts([a, b])
    assert actions == (Mount("/c"), Mount("/d"), Write())
    assert [p.text for p in problems] == ["p1", "p2"]
    assert notes == {"shares": Note("two"), "network": Note("dhcp")}
    assert merge_parts([]) == ((), (), {})


def test_the_overall_state_names_the_capabilities_in_error_sorted():
    caps = {name: capability("ok") for name in CAPABILITIES}
    assert status.overall(caps) == "running"
    caps["shares"] = capability("error")
    caps["docker_config"] = capability("error")
    caps["network"] = capability("warning")
    assert status.overall(caps) == "degraded: docker_config, shares"
    assert status.overall({}) == "running"


def test_the_document_lists_known_capabilities_in_order():
    caps = {"network": capability("ok"), "pool": capability("error"), "extra": capability("ok")}
    doc = status.document(pid=1234, started=0, passes=7, last_pass={"time": "t"}, capabilities=caps,
                          heartbeat=5.5, start_time=99)
    assert list(doc["capabilities"]) == ["pool", "network"]
    assert doc["capabilities"]["pool"] == capability("error")
    assert (doc["pid"], doc["start_time"], doc["passes"], doc["heartbeat"]) == (1234, 99, 7, 5.5)
    assert doc["started"] == "1970-01-01T00:00:00Z" and doc["state"] == "degraded: pool"
    assert doc["last_pass"] == {"time": "t"}
    assert status.document(pid=1234, started=0, passes=0, last_pass=None, capabilities=caps, heartbeat=0,
                           state="stopped", start_time=0)["state"] == "stopped"
    assert status.now_iso(86400 + 61) == "1970-01-02T00:01:01Z"


def test_the_status_file_is_json_with_sorted_keys_and_a_newline():
    raw = status.encode({"b": 1, "a": {"d": 2, "c": 3}})
    assert raw == b'{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}\n'
    assert json.loads(raw) == {"a": {"c": 3, "d": 2}, "b": 1}


def doc(**kw):
    d = {"version": "1.2", "state": "running", "pid": 42, "started": "S", "passes": 3,
         "capabilities": {"pool": capability("ok", "2 items"), "shares": capability("inactive")}}
    d.update(kw)
    return d


def test_describe_a_running_agent():
    text, code = status.describe(doc(last_pass={"time": "T", "duration_ms": 12}), alive=True)
    assert code == 0
    assert text.split("\n") == [
        "moby-agent 1.2: running",
        "  pid 42, started S, 3 passes",
        "  last pass T, 12 ms",
        "  pool           ok; 2 items",
        "  shares         inactive",
    ]


def test_describe_errors_notes_and_a_dead_agent():
    caps = {"shares": capability("error", "1 drive", "mount error(13)"),
            "network": capability("waiting", None, "no route")}
    text, code = status.describe(doc(capabilities=caps), alive=True)
    assert code == 1
    assert text.split("\n")[2:] == ["  shares         error; 1 drive; error: mount error(13)",
                                    "  network        waiting; note: no route"]
    text, code = status.describe(doc(capabilities={}), alive=False)
    assert code == 1
    assert text.split("\n") == ["moby-agent 1.2: running (but pid 42 is not running)",
                                "  pid 42, started S, 3 passes"]
    assert status.describe(doc(capabilities=None, last_pass={}), alive=True) == (
        "moby-agent 1.2: running\n  pid 42, started S, 3 passes", 0)


def test_describe_the_watch():
    watch = {"roots": ["/C/src", "/D"], "directories": 10, "reemitted": 4, "guest_changes": 2, "dropped": 0,
             "why": "asking the server again"}
    text, _ = status.describe(doc(capabilities={}, watch=watch), alive=True)
    assert text.split("\n")[-1] == ("  watch          /C/src, /D: 10 directories, 4 events re-emitted, "
                                    "2 guest changes not re-emitted, 0 dropped; asking the server again")
    text, _ = status.describe(doc(capabilities={}, watch={"roots": [], "directories": 0, "reemitted": 0,
                                                          "dropped": 1}), alive=True)
    assert text.split("\n")[-1] == ("  watch          no root yet: 0 directories, 0 events re-emitted, "
                                    "0 guest changes not re-emitted, 1 dropped")


def test_describe_says_what_is_watched_and_why():
    watch = {"roots": ["/c/src", "/c/doc"], "directories": 3, "reemitted": 1, "guest_changes": 0, "dropped": 0,
             "echoes": 2, "notify": "CIFS_IOC_NOTIFY (no names: each reply is followed by a rescan)",
             "reasons": {"/c/src": ["container api", "container web"], "/c/doc": ["watch add"]},
             "containers": "following dockerd: 2 running, 2 with bind mounts"}
    text, _ = status.describe(doc(capabilities={}, watch=watch), alive=True)
    assert text.split("\n")[-5:] == [
        "  watch          /c/src, /c/doc: 3 directories, 1 events re-emitted, 0 guest changes not re-emitted, "
        "0 dropped, 2 echoes not re-emitted",
        "                 /c/doc: watch add",
        "                 /c/src: container api, container web",
        "                 change notify: CIFS_IOC_NOTIFY (no names: each reply is followed by a rescan)",
        "                 containers: following dockerd: 2 running, 2 with bind mounts"]


def test_pool_1_items_and_the_writes_that_reach_them():
    d = {"state": "running", "version": 3, "shares": {"/d": "mounted", "/c": "waiting"}}
    wanted = status.guest_items(d)
    assert list(wanted.items()) == [("moby-agent.state", "running"), ("moby-agent.version", "3"),
                                    ("moby-agent.share./c", "waiting"), ("moby-agent.share./d", "mounted")]
    assert status.guest_items({"state": "s", "version": "v", "shares": None}) == {
        "moby-agent.state": "s", "moby-agent.version": "v"}
    current = kvp.Pool((("other", "x"), ("moby-agent.state", "running"), ("moby-agent.share./e", "mounted"),
                        ("moby-agent.share./c", "mounted")), ())
    assert status.guest_changes(current, wanted) == {
        "moby-agent.version": "3", "moby-agent.share./c": "waiting", "moby-agent.share./d": "mounted",
        "moby-agent.share./e": None}
    same = kvp.Pool(tuple(wanted.items()) + (("other", "y"),), ())
    assert status.guest_changes(same, wanted) == {}


@pytest.mark.parametrize("raw, pid, start", [
    ({"pid": 42, "start_time": 7}, 42, 7),
    ({"pid": 1, "start_time": 0}, None, 0),
    ({"pid": True}, None, None),
    ({"pid": 42, "start_time": -1}, 42, None),
    ({"pid": 42, "start_time": True}, 42, None),
    ({"pid": 42, "start_time": "7"}, 42, None),
])
def test_a_loaded_document_keeps_only_a_pid_and_start_time_that_may_be_used(tmp_path, raw, pid, start):
    path = tmp_path / "status.json"
    path.write_text(json.dumps(raw))
    got = status.load(str(path))
    assert (got["pid"], got.get("start_time")) == (pid, start)


@pytest.mark.parametrize("raw", [
    [1, 2], "x", {"capabilities": []}, {"capabilities": {"pool": "ok"}}, {"last_pass": 1}, {"watch": []},
    {"watch": {"roots": "/C"}}, {"watch": {"roots": ["/C", 1]}}, {"heartbeat": "now"},
    {"watch": {"reasons": ["/C"]}}, {"watch": {"reasons": {"/C": "web"}}}, {"watch": {"reasons": {"/C": [1]}}},
])
def test_a_document_of_another_shape_is_not_loaded(tmp_path, raw):
    path = tmp_path / "status.json"
    path.write_text(json.dumps(raw))
    assert status.load(str(path)) is None


def test_a_document_of_the_shape_describe_reads_is_loaded(tmp_path):
    path = tmp_path / "status.json"
    good = doc(watch={"roots": ["/C"]}, last_pass={"time": "t"}, heartbeat=1.5)
    path.write_text(json.dumps(good))
    assert status.load(str(path)) == good
    assert status.load(str(tmp_path / "missing")) is None
    path.write_text("{not json")
    assert status.load(str(path)) is None
    path.write_text(json.dumps({"watch": None, "capabilities": None}))
    assert status.load(str(path)) == {"watch": None, "capabilities": None}


def test_a_stopped_or_unconfirmed_agent_has_no_running_pid(tmp_path):
    assert status.running_pid(None) is None
    assert status.running_pid({}) is None
    assert status.running_pid({"state": "stopped", "pid": 42, "start_time": 1}) is None
    assert status.running_pid({"state": "running", "pid": 1}) is None
    assert status.running_pid({"state": "running", "pid": 42, "start_time": 1}, proc=str(tmp_path)) is None


def fake_proc(tmp_path, argv, start=555):
    """A /proc with one process, pid 4242: its stat (start time field 22)
    and its argv."""
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    rest = [b"S"] + [b"%d" % i for i in range(4, 22)] + [b"%d" % start] + [b"0"] * 30
    (proc / "4242" / "stat").write_bytes(b"4242 (python3) " + b" ".join(rest) + b"\n")
    (proc / "4242" / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return str(proc)


def test_the_running_agent_is_the_pid_proc_confirms(tmp_path):
    from agent.system import AGENT_PROGRAM

    root = tmp_path / "root"
    root.mkdir()
    doc = {"state": "running", "pid": 4242, "start_time": 555}
    proc = fake_proc(tmp_path, [AGENT_PROGRAM, "run", "--root", str(root)])
    assert status.running_pid(doc, proc=proc) == 4242
    assert status.running_pid(doc, "", proc=proc) == 4242
    assert status.running_pid(doc, str(root), proc=proc) == 4242
    assert status.running_pid(dict(doc, state="degraded: shares"), str(root), proc=proc) == 4242
    # another root, another start time, stopped, or not the agent: none
    other = tmp_path / "other"
    other.mkdir()
    assert status.running_pid(doc, str(other), proc=proc) is None
    assert status.running_pid(dict(doc, start_time=556), proc=proc) is None
    assert status.running_pid(dict(doc, state="stopped"), proc=proc) is None
    assert status.running_pid(doc, proc=fake_proc(tmp_path / "x", ["/bin/sleep", "30"])) is None


def test_describe_a_watch_of_containers_only_counts_zero():
    """What document() writes while dockerd is followed and no share is
    watched yet (no share watcher: no counts in the section): zeros, not
    None."""
    watch = {"containers": "following dockerd: 0 running, 0 with bind mounts", "reasons": {}}
    text, _ = status.describe(doc(capabilities={}, watch=watch), alive=True)
    assert ("  watch          no root yet: 0 directories, 0 events re-emitted, 0 guest changes not re-emitted, "
            "0 dropped") in text.split("\n")
