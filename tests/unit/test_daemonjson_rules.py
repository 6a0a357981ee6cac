"""daemon.json rendering and checks against the README's "Settings" rules:
layer precedence (later wins), merge rules, types, what a change needs
(reload or restart), the dockerd version, and what /info must show."""

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from agent.settings import daemonjson
from agent.settings.daemonjson import ConfigProblem, Layers, merge, render

scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=4), st.none())


@given(st.dictionaries(st.text(max_size=3), scalars, max_size=4),
       st.dictionaries(st.text(max_size=3), scalars, max_size=4))
def test_merge_later_layer_wins_for_every_scalar(a, b):
    out = merge(a, b)
    assert set(out) == set(a) | set(b)
    for key in out:
        assert out[key] == (b[key] if key in b else a[key])
    if any(key in a and a[key] != b[key] for key in b):
        event("a scalar overridden")


@given(st.lists(st.integers(0, 6), max_size=6), st.lists(st.integers(0, 6), max_size=6))
def test_merge_joins_lists_first_occurrence_kept(a, b):
    expected = []
    for item in a + b:
        if item not in expected:
            expected.append(item)
    assert merge({"l": a}, {"l": b}) == {"l": expected}


def test_merge_is_recursive_and_replaces_across_kinds():
    assert merge({"o": {"x": 1, "y": {"z": 1, "w": 2}}}, {"o": {"y": {"z": 3}}}) == {"o": {"x": 1, "y": {"z": 3,
                                                                                                         "w": 2}}}
    assert merge({"k": [1]}, {"k": "s"}) == {"k": "s"}
    assert merge({"k": "s"}, {"k": [1, 1]}) == {"k": [1]}
    assert merge({"k": 1}, {"k": {"a": 1}}) == {"k": {"a": 1}}
    assert merge(None, {"a": [2, 2]}) == {"a": [2]}


@given(st.permutations(["10-a.json", "20-b.json", "30-c.json"]))
def test_drop_ins_apply_in_name_order_and_the_database_last(names):
    # Listed in any directory order: name order decides.
    texts = {"10-a.json": '{"debug": false, "mtu": 1}', "20-b.json": '{"mtu": 2, "labels": ["b=1"]}',
             "30-c.json": '{"labels": ["c=1"], "log-level": "warn"}'}
    ordered = daemonjson.dropin_names([*names, "notes.txt", ".hidden.json"])
    assert ordered == ["10-a.json", "20-b.json", "30-c.json"]
    doc = render(Layers(dropins=tuple((n, texts[n]) for n in ordered)))
    assert doc == {"debug": False, "mtu": 2, "labels": ["b=1", "c=1"], "log-level": "warn"}
    doc = render(Layers(dropins=tuple((n, texts[n]) for n in ordered), database='{"mtu": 3, "debug": true}',
                        insecure_registry=" r1 "))
    assert doc == {"debug": True, "mtu": 3, "labels": ["b=1", "c=1"], "log-level": "warn",
                   "insecure-registries": ["r1"]}


def test_blank_legacy_keys_are_no_layer():
    assert render(Layers(insecure_registry="  \n", proxy_http=" ", proxy_https="", proxy_exclude=None)) == {}
    assert render(Layers(proxy_https=" https://p ", proxy_exclude="x"), version=(23, 0)) == {
        "proxies": {"https-proxy": "https://p", "no-proxy": "x"}}


@pytest.mark.parametrize("version", [(20, 10), (22, 6)])
def test_proxies_before_docker_23_are_no_part_of_daemon_json(version):
    assert render(Layers(proxy_https="https://p", database='{"debug": true}'), version=version) == {"debug": True}
    with pytest.raises(ConfigProblem, match="not a daemon.json key dockerd"):
        render(Layers(database='{"proxies": {}}'), version=version)
    assert render(Layers(database='{"proxies": {}}'), version=(23, 0)) == {"proxies": {}}


TYPE_CASES = [
    ("debug", True, "1"), ("mtu", 1500, "true"), ("mtu", 1500, "1.5"), ("log-level", '"info"', "1"),
    ("labels", '["a=1"]', '"a"'), ("labels", '["a=1"]', "[1]"), ("log-opts", "{}", "[]"),
    ("default-address-pools", '[{"base": "x"}]', '["x"]'), ("default-address-pools", "[]", "{}"),
    ("mtu", 1500, "null"),
]


@pytest.mark.parametrize("key, good, bad", TYPE_CASES)
def test_each_kind_of_value_is_checked(key, good, bad):
    good = good if isinstance(good, str) else json.dumps(good)
    assert key in render(Layers(database=f'{{"{key}": {good}}}'))
    with pytest.raises(ConfigProblem, match=f"'{key}' must be") as info:
        render(Layers(database=f'{{"{key}": {bad}}}'))
    assert info.value.args[0].startswith("database key etc/docker/daemon.json: ")


def test_a_wrong_type_shows_the_value_cut_at_60_characters():
    with pytest.raises(ConfigProblem) as info:
        render(Layers(database='{"debug": "yes"}'))
    assert str(info.value).endswith("'debug' must be a boolean, not \"yes\"")
    with pytest.raises(ConfigProblem) as info:
        render(Layers(database=json.dumps({"mtu": "x" * 100})))
    assert str(info.value).endswith("not " + json.dumps("x" * 100)[:60])


def test_encode_is_stable_indented_json_with_a_newline():
    assert daemonjson.encode({"b": 1, "a": [1]}) == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'


@pytest.mark.parametrize(
    "old, new, changed",
    [
        (None, {"debug": True}, {"debug"}),
        ("", {"debug": True}, {"debug"}),
        ('{"debug": true}', {"debug": True}, set()),
        ('{"debug": true, "mtu": 1}', {"debug": False}, {"debug", "mtu"}),
        ("{nope", {"debug": True}, {"debug", "<unreadable>"}),
        ("[1]", {}, {"<unreadable>"}),
    ],
)
def test_changed_keys(old, new, changed):
    assert daemonjson.changed_keys(old, new) == changed


def test_every_reloadable_key_reloads_and_one_other_restarts():
    for key in daemonjson.RELOADABLE:
        assert daemonjson.how_to_apply(frozenset({key}), True) == "reload"
    assert {
        "debug", "labels", "live-restore", "max-concurrent-downloads", "max-concurrent-uploads",
        "max-download-attempts", "default-runtime", "runtimes", "authorization-plugins", "insecure-registries",
        "registry-mirrors", "shutdown-timeout", "features"} == daemonjson.RELOADABLE
    assert daemonjson.how_to_apply(frozenset({"debug", "mtu"}), True) == "restart"
    assert daemonjson.how_to_apply(frozenset({"mtu"}), False) == "none"


@pytest.mark.parametrize(
    "text, version",
    [
        ("Docker version 20.10.24+dfsg1, build 297e128", (20, 10)),
        ("Docker version 24.0.7, build afdd53b", (24, 0)),
        ("Docker version 23.0.1-ce, build x", (23, 0)),
        ("Docker version 19.03.15, build 99e3ed8", (19, 3)),
        ("dockerd 25.10x", (25, 10)),
        ("garbage", (20, 10)),
        ("", (20, 10)),
        ("1.x 26.1.4", (26, 1)),
    ],
)
def test_version_of(text, version):
    assert daemonjson.version_of(text) == version


def test_expected_info_and_differences():
    doc = {"debug": True, "insecure-registries": ["r2:5000", "r1"], "registry-mirrors": ["https://m/", "https://n"],
           "labels": ["b=2", "a=1"], "mtu": 1}
    expected = daemonjson.expected_info(doc)
    assert expected == {"Debug": True, "insecure": ["r1", "r2:5000"], "mirrors": ["https://m/", "https://n/"],
                        "Labels": ["a=1", "b=2"]}
    info = {"Debug": True, "Labels": ["b=2", "a=1"],
            "RegistryConfig": {"IndexConfigs": {"r1": {"Secure": False}, "r2:5000": {"Secure": False}},
                               "Mirrors": ["https://m/", "https://n/"]}}
    assert daemonjson.differences(info, expected) == []
    info = {"Debug": False, "Labels": ["a=1"],
            "RegistryConfig": {"IndexConfigs": {"r1": {"Secure": True}}, "Mirrors": ["https://m/"]}}
    assert daemonjson.differences(info, expected) == [
        "Debug is False, want True", "registry r1 is not insecure in /info",
        "registry r2:5000 is not insecure in /info", "mirror https://n/ is not in /info",
        "label b=2 is not in /info"]
    assert daemonjson.differences({}, {}) == []
    assert daemonjson.differences({}, daemonjson.expected_info({"debug": False}))[0] == "Debug is None, want False"
    assert daemonjson.expected_info({}) == {}


def test_a_removed_key_is_a_restart_and_its_default_is_checked():
    """dockerd's SIGHUP sets only the keys the file has: a label or a mirror
    taken out of daemon.json stayed in /info (the guest's dockerd 20.10)."""
    old = '{"debug": true, "labels": ["a=1"], "registry-mirrors": ["https://m"]}'
    removed = daemonjson.removed_keys(old, {})
    assert removed == {"debug", "labels", "registry-mirrors"}
    assert daemonjson.removed_keys('{"debug": true}', {"debug": False}) == frozenset()
    assert daemonjson.removed_keys("not json", {}) == frozenset()
    assert daemonjson.how_to_apply(frozenset({"labels"}), True, frozenset({"labels"})) == "restart"
    assert daemonjson.how_to_apply(frozenset({"labels"}), True, frozenset()) == "reload"
    expected = daemonjson.expected_info({}, removed)
    assert expected == {"Debug": False, "mirrors": [], "Labels": []}
    stale = {"Debug": True, "Labels": ["a=1"], "RegistryConfig": {"Mirrors": ["https://m/"]}}
    assert daemonjson.differences(stale, expected) == [
        "Debug is True, want False", "mirror https://m/ is still in /info", "label a=1 is still in /info"]
    assert daemonjson.differences({"Debug": False, "Labels": [], "RegistryConfig": {"Mirrors": []}}, expected) == []


def test_proxies_from_a_drop_in_and_with_other_keys_for_docker_23():
    doc = render(Layers(dropins=(("p.json", '{"proxies": {"http-proxy": "http://a"}}'),), database='{"debug": true}',
                        proxy_https="https://b"), version=(24, 0))
    assert doc == {"debug": True, "proxies": {"http-proxy": "http://a", "https-proxy": "https://b"}}
    assert render(Layers(proxy_http="http://p")) == {}


def test_every_reloadable_key_changed_at_once_is_still_a_reload():
    assert daemonjson.how_to_apply(daemonjson.RELOADABLE, True) == "reload"


def test_version_with_a_comma_right_after_it():
    assert daemonjson.version_of("Docker version 24.0,build x") == (24, 0)


def test_the_version_matters_only_for_proxies_and_the_keys_23_removed():
    assert not daemonjson.version_matters(['{"debug": true}', None, "not json"], False)
    assert daemonjson.version_matters(['{"debug": true}'], True)
    assert daemonjson.version_matters(['{"graph": "/x"}'], False)
    assert daemonjson.version_matters([None, '{"proxies": {}}'], False)
    for key in daemonjson.REMOVED_IN_23:
        assert daemonjson.version_matters([json.dumps({key: 1})], False), key
