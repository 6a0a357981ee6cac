"""Issue 16 item 4: daemon.json checked as dockerd 20.10 checks it (types,
ranges, formats), for the engine version in use. The values refused here
are the ones the real dockerd 20.10 refused (it did not start) when tried."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.settings import daemonjson
from agent.settings.daemonjson import ConfigProblem, Layers, render
from tests.daemonjson_samples import sample

GO_MAX = (1 << 63) - 1


def one(key, value, version=(20, 10)):
    return render(Layers(database=json.dumps({key: value})), version=version)


@pytest.mark.parametrize("key", sorted(daemonjson.SCHEMA))
def test_every_20_10_key_with_a_good_value_is_accepted(key):
    assert one(key, sample(key)) == {key: sample(key)}


@pytest.mark.parametrize("key, value, why", [
    ("max-concurrent-downloads", -1, "not from 0"), ("max-concurrent-uploads", -1, "not from 0"),
    ("max-download-attempts", 0, "not from 1"), ("mtu", 9223372036854775808, "Go's int"),
    ("shutdown-timeout", 1.5, "must be an integer"), ("oom-score-adjust", 5000, "not from -1000 to 1000"),
    ("log-level", "loud", "not one of"), ("insecure-registries", ["a b"], "space, newline"),
    ("insecure-registries", ["a\nb"], "space, newline"), ("registry-mirrors", ["a.example"], "http:// or https://"),
    ("registry-mirrors", ["https://m.example/ x"], "space"), ("registry-mirrors", ["https://m/p"], "no path"),
    ("labels", ["novalue"], "key=value"), ("dns", ["x"], "not an IP"), ("host-gateway-ip", "x", "not an IP"),
    ("default-gateway", "x", "not an IP"), ("ip", "nope", "not an IP"), ("default-shm-size", "lots", "a size"),
    ("bip", "10.0.0.0/33", "CIDR"), ("mtu", -1, "not from 0 to 65535"),
])
def test_values_dockerd_refuses_are_refused_naming_key_and_value(key, value, why):
    with pytest.raises(ConfigProblem, match=why) as info:
        one(key, value)
    assert f"'{key}'" in str(info.value) and str(info.value).startswith("database key etc/docker/daemon.json")


def test_the_key_list_follows_the_engine_version():
    assert one("host-gateway-ip", "10.0.75.1") == {"host-gateway-ip": "10.0.75.1"}
    assert one("cluster-store", "x") == {"cluster-store": "x"}
    with pytest.raises(ConfigProblem, match="not a daemon.json key dockerd 23.0 knows"):
        one("cluster-store", "x", (23, 0))
    with pytest.raises(ConfigProblem, match="not a daemon.json key dockerd 20.10 knows"):
        one("proxies", {})
    assert one("proxies", {"http-proxy": "http://p:1"}, (23, 0)) == {"proxies": {"http-proxy": "http://p:1"}}
    with pytest.raises(ConfigProblem, match="'proxies' must be"):
        one("proxies", {"ftp-proxy": "x"}, (23, 0))


COUNTS = {"max-concurrent-downloads": 0, "max-concurrent-uploads": 0, "max-download-attempts": 1}


@given(st.sampled_from(sorted(COUNTS)), st.integers(-(1 << 70), 1 << 70))
def test_counts_are_accepted_exactly_from_their_minimum_to_go_int_max(key, n):
    if COUNTS[key] <= n <= GO_MAX:
        assert one(key, n) == {key: n}
    else:
        with pytest.raises(ConfigProblem):
            one(key, n)


@given(st.text(max_size=12))
def test_a_registry_is_accepted_exactly_when_it_has_no_whitespace_or_control(text):
    ok = text != "" and not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text)
    if ok:
        assert one("insecure-registries", [text]) == {"insecure-registries": [text]}
    else:
        with pytest.raises(ConfigProblem):
            one("insecure-registries", [text])
