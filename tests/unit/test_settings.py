import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.network.plan import NetState, plan_network
from agent.settings import daemonjson, database
from agent.settings.daemonjson import ConfigProblem, Layers, how_to_apply, merge, render
from agent.settings.plan import HostInputs, plan_host

PLAN_ARGS = dict(mount_point="/Database", tag="db", options="trans=virtio", daemon_json="/etc/docker/daemon.json")


@pytest.mark.parametrize(
    "cmdline, name",
    [
        ('BOOT_IMAGE=/k com.docker.database="com.docker.driver.amd64-linux" mobyplatform=windows',
         "com.docker.driver.amd64-linux"),
        ("console=ttyS0 com.docker.database=com.docker.driver.amd64-linux", "com.docker.driver.amd64-linux"),
        ('"com.docker.database=x y" quiet', "x y"),
        ("console=ttyS0 mobyplatform=mac", None),
        ('com.docker.database=""', None),
        ("com.docker.database=../etc", None),
        # The kernel runs an unbalanced quote to the end and drops it.
        ('com.docker.database="unterminated', "unterminated"),
        ('com.docker.database="a"b"', 'a"b'),
        ("xcom.docker.database=x com.docker.databasex=y", None),
        ("com.docker.database=a com.docker.database=b", "b"),
    ],
)
def test_cmdline_label(cmdline, name):
    assert database.parse_cmdline(cmdline) == name


@given(st.text(max_size=300))
def test_cmdline_never_raises(text):
    name = database.parse_cmdline(text)
    assert name is None or (name and "/" not in name)


def test_mobyconfig_semantics(tmp_path):
    (tmp_path / "etc" / "docker").mkdir(parents=True)
    (tmp_path / "etc" / "docker" / "daemon.json").write_text("{}")
    (tmp_path / "network").write_text("hybrid\n")
    (tmp_path / "blank").write_text("  \n")
    top = str(tmp_path)
    assert database.get(top, "network") == "hybrid\n"
    assert database.get(top, "missing") is None
    assert database.exists(top, "etc") and database.exists(top, "network")
    assert not database.exists(top, "blank") and not database.exists(top, "missing")
    assert database.listdir(top, "etc") == ["docker"]
    assert database.find(top, "etc") == ["etc/docker/daemon.json"]
    with pytest.raises(database.DatabaseError):
        database.get(top, "../secret")


def test_merge_rules():
    assert merge({"a": {"x": 1, "y": [1, 2]}, "s": 1}, {"a": {"y": [2, 3], "z": 0}, "s": 2}) == {
        "a": {"x": 1, "y": [1, 2, 3], "z": 0}, "s": 2}
    assert merge([1], {"k": 1}) == {"k": 1}  # different kinds: replaced


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                           max_leaves=10)


@given(json_values, json_values)
def test_merge_is_idempotent_over_itself(a, b):
    once = merge(a, b)
    assert merge(once, b) == once


def test_layers_in_order_and_legacy_keys():
    doc = render(Layers(
        dropins=(("10-base.json", '{"debug": false, "registry-mirrors": ["https://m1"]}'),
                 ("20-more.json", '{"labels": ["a=1"]}')),
        database='{"debug": true, "registry-mirrors": ["https://m2", "https://m1"], "insecure-registries": ["r1"]}',
        insecure_registry="r2\n",
    ))
    assert doc == {"debug": True, "registry-mirrors": ["https://m1", "https://m2"], "labels": ["a=1"],
                   "insecure-registries": ["r1", "r2"]}


@pytest.mark.parametrize(
    "layers, opts, message",
    [
        (Layers(database="{nope"), "", "database key etc/docker/daemon.json: not valid JSON"),
        (Layers(database="[1]"), "", "must be a JSON object"),
        (Layers(database='{"colour": 1}'), "", "'colour' is not a daemon.json key dockerd 20.10 knows"),
        (Layers(database='{"debug": "yes"}'), "", "'debug' must be a boolean"),
        (Layers(dropins=(("x.json", '{"mtu": 1.5}'),)), "", "drop-in x.json: 'mtu' must be an integer"),
        (Layers(insecure_registry="r"), "--insecure-registry r", "insecure-registries set both in DOCKER_OPTS"),
        (Layers(database='{"hosts": ["unix://"]}'), "-H tcp://0.0.0.0:2375", "hosts set both in DOCKER_OPTS"),
        (Layers(database='{"debug": true}'), "-D", "debug set both"),
    ],
)
def test_problems_name_the_layer_and_key(layers, opts, message):
    with pytest.raises(ConfigProblem, match=None) as info:
        render(layers, opts)
    assert message in str(info.value)


def test_proxies_for_docker_23():
    doc = render(Layers(proxy_http="http://p:3128", proxy_exclude="localhost"), version=(24, 0))
    assert doc == {"proxies": {"http-proxy": "http://p:3128", "no-proxy": "localhost"}}


def test_docker_opts_from_confd():
    text = 'DOCKER_OPTS=""\n# comment\nexport DOCKER_OPTS="-H tcp://0.0.0.0:2375 --debug"\n'
    assert daemonjson.docker_opts_from_confd(text) == "-H tcp://0.0.0.0:2375 --debug"
    assert daemonjson.flag_keys("-H tcp://x --debug --insecure-registry=r") == {"hosts", "debug",
                                                                                   "insecure-registries"}


@pytest.mark.parametrize(
    "changed, running, how",
    [
        (frozenset({"debug", "insecure-registries"}), True, "reload"),
        (frozenset({"debug", "storage-driver"}), True, "restart"),
        (frozenset({"debug"}), False, "none"),
        (frozenset(), True, "none"),
        (frozenset({"<unreadable>"}), True, "restart"),
    ],
)
def test_reload_or_restart(changed, running, how):
    assert how_to_apply(changed, running) == how


@given(st.sets(st.sampled_from(sorted(daemonjson.SCHEMA)), max_size=5), st.booleans())
def test_reload_only_when_every_key_is_reloadable(changed, running):
    how = how_to_apply(frozenset(changed), running)
    if how == "reload":
        assert running and changed <= daemonjson.RELOADABLE
    if how == "restart":
        assert running and not changed <= daemonjson.RELOADABLE


def db_inputs(**db):
    return HostInputs(database_name="n", database_mounted=True, database=db)


def test_plan_writes_and_reloads_then_nothing():
    inputs = db_inputs(**{"etc/docker/daemon.json": '{"debug": true}', "etc/hosts": "127.0.0.1 x\n"})
    running = HostInputs(**{**inputs.__dict__, "dockerd_running": True, "daemon_json": '{"debug": false}'})
    p = plan_host(running, **PLAN_ARGS)
    assert [a.name() for a in p.actions] == ["write-file", "reload-docker", "write-file"]
    assert p.actions[0].path == "/etc/docker/daemon.json" and json.loads(p.actions[0].content) == {"debug": True}
    done = HostInputs(**{**running.__dict__, "daemon_json": p.actions[0].content.decode(),
                         "files": {"/etc/hosts": b"127.0.0.1 x\n"}})
    assert plan_host(done, **PLAN_ARGS).actions == ()


def test_binary_and_private_key_files_are_copied_byte_exact_with_their_modes():
    der = bytes(range(256))
    key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
    p = plan_host(db_inputs(**{"etc/docker/blob.der": der, "etc/docker/certs.d/reg:5000/client.key": key,
                               "etc/hosts": "127.0.0.1 x\n"}), **PLAN_ARGS)
    writes = {a.path: a for a in p.actions if a.name() == "write-file"}
    assert writes["/etc/docker/blob.der"].content == der
    assert writes["/etc/docker/certs.d/reg:5000/client.key"].mode == 0o600
    assert writes["/etc/hosts"].mode == 0o644 and writes["/etc/hosts"].content == b"127.0.0.1 x\n"
    assert "BEGIN" not in str([a.as_dict() for a in p.actions])  # content never printed


def test_a_binary_settings_key_is_a_problem_for_that_key_only():
    p = plan_host(db_inputs(**{"proxy/http": b"\xff\xfe", "etc/docker/daemon.json": '{"debug": true}'}), **PLAN_ARGS)
    assert [(x.capability, x.subject) for x in p.problems] == [("docker_config", "proxy/http")]
    assert [a.name() for a in p.actions] == ["write-file"]


def test_broken_database_value_keeps_the_previous_daemon_json():
    inputs = HostInputs(**{**db_inputs(**{"etc/docker/daemon.json": '{"debug": tru'}).__dict__,
                           "daemon_json": '{"debug": false}\n', "dockerd_running": True})
    p = plan_host(inputs, **PLAN_ARGS)
    assert p.actions == () and str(p.problems[0]).startswith("daemon.json not changed: database key")
    assert p.problems[0].capability == "docker_config"


def test_no_label_is_local_only_and_no_layers_leaves_daemon_json_alone():
    p = plan_host(HostInputs(daemon_json='{"hand": "written"}'), **PLAN_ARGS)
    assert p.actions == () and p.notes["database"].text.startswith("no com.docker.database label")
    assert not p.notes["database"].active and not p.notes["docker_config"].active


def test_label_without_mount_mounts_the_database():
    p = plan_host(HostInputs(database_name="n"), **PLAN_ARGS)
    assert p.actions[0].as_dict() == {"action": "mount-database", "tag": "db", "target": "/Database",
                                      "options": "trans=virtio"}


def test_static_network_is_idempotent():
    db = {"net/config": "static", "net/address": "10.0.75.2", "net/netmask": "255.255.255.0",
          "net/gateway": "10.0.75.1"}
    p = plan_network(db, "eth0", NetState((("10.0.75.9", 24),), None))
    assert [a.as_dict() for a in p.actions] == [
        {"action": "set-address", "interface": "eth0", "address": "10.0.75.2/24", "remove": ["10.0.75.9/24"]},
        {"action": "set-default-route", "interface": "eth0", "gateway": "10.0.75.1"},
    ]
    assert plan_network(db, "eth0", NetState((("10.0.75.2", 24),), "10.0.75.1")).actions == ()
    bad = plan_network({**db, "net/gateway": "192.168.1.1"}, "eth0", None)
    assert bad.actions == () and "not in 10.0.75.0/24" in str(bad.problems[0])
    assert bad.problems[0].capability == "network"
