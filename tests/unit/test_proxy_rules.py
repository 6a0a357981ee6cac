"""Issue 16 item 1: proxies for every engine (agent/settings/proxy.py and
their place in the settings plan)."""

import ipaddress
import json
import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.settings import proxy
from agent.settings.daemonjson import Layers, render
from agent.settings.plan import HostInputs, plan_host
from agent.shares.items import redact_url

PLAN_ARGS = dict(mount_point="/Database", tag="db", options="trans=virtio", daemon_json="/etc/docker/daemon.json",
                 host_address="10.0.75.1", proxy_env="/etc/docker/moby-agent-proxy.env")
SECRET = "QXQXsecret"


def inputs(db, **kw):
    return HostInputs(database_name="n", database_mounted=True, database=db, **kw)


def names(part):
    return [(a.name(), getattr(a, "path", None)) for a in part.actions]


@pytest.mark.parametrize("value, want", [
    ("http://localhost:3128", "http://10.0.75.1:3128"),
    ("HTTP://LocalHost.:3128", "HTTP://10.0.75.1:3128"),
    ("localhost:3128", "10.0.75.1:3128"),
    ("http://127.0.0.1:3128/", "http://10.0.75.1:3128/"),
    ("https://[::1]:8443", "https://10.0.75.1:8443"),
    ("socks5://[::1]", "socks5://10.0.75.1"),
    ("http://me:pw@127.0.0.1", "http://me:pw@10.0.75.1"),
    ("http://proxy.corp:3128", "http://proxy.corp:3128"),
    ("  http://10.1.2.3:8080 \n", "http://10.1.2.3:8080"),
    ("http://[2001:db8::1]:3128", "http://[2001:db8::1]:3128"),
])
def test_good_proxy_urls_and_the_loopback_rewritten(value, want):
    assert proxy.proxy_url(value, "10.0.75.1") == want


@pytest.mark.parametrize("value, why", [
    ("ftp://p:21", "scheme 'ftp'"), ("http://p:0", "1 to 65535"), ("http://p:65536", "1 to 65535"),
    ("http://p:x", "1 to 65535"), ("http://p:", "1 to 65535"), ("http://pr oxy:1", "space or control"),
    ("http://p\x00:1", "space or control"), ("http://p/path", "a path"), ("http://p?q", "a path"),
    ("http://:3128", "no valid host"), ("http://[zz]:1", "1 to 65535"), ("http://a..b", "no valid host"),
    ("", "empty"), ("http://" + "a" * 3000, "longer than"),
])
def test_bad_proxy_urls_say_why(value, why):
    with pytest.raises(proxy.ProxyError, match=why):
        proxy.proxy_url(value, "10.0.75.1")


def test_a_bad_proxy_is_a_problem_for_that_key_only_and_shows_no_secret():
    db = {"proxy/http": f"ftp://me:{SECRET}@p:1", "proxy/https": "https://localhost:3129",
          "proxy/exclude": "a, b", "etc/docker/daemon.json": '{"debug": true}'}
    for version in ((20, 10), (24, 0)):
        p = plan_host(inputs(db, dockerd_version=version), **PLAN_ARGS)
        assert [(x.subject, x.capability) for x in p.problems] == [("proxy/http", "docker_config")]
        assert "left out" in str(p.problems[0]) and SECRET not in str(p.problems[0])
        assert SECRET not in repr([a.as_dict() for a in p.actions]) + repr(p.notes)
        daemon = json.loads(next(a for a in p.actions if a.path == PLAN_ARGS["daemon_json"]).content)
        assert daemon["debug"] is True
        if version >= (23, 0):
            assert daemon["proxies"] == {"https-proxy": "https://10.0.75.1:3129", "no-proxy": "a,b"}
        else:
            assert "proxies" not in daemon
            env = next(a for a in p.actions if a.path == PLAN_ARGS["proxy_env"])
            assert env.mode == 0o600 and b"export HTTPS_PROXY=https://10.0.75.1:3129\n" in env.content


def test_dockerd_20_10_gets_the_environment_file_and_a_restart_never_a_reload():
    db = {"proxy/http": f"http://me:{SECRET}@localhost:3128"}
    p = plan_host(inputs(db, dockerd_running=True), **PLAN_ARGS)
    assert names(p) == [("write-file", PLAN_ARGS["proxy_env"]), ("restart-docker", None)]
    assert p.problems == ()  # dockerd 20.10 with a proxy: no longer a refusal
    env = p.actions[0].content.decode()
    assert f"export HTTP_PROXY=http://me:{SECRET}@10.0.75.1:3128\n" in env
    assert f"export http_proxy=http://me:{SECRET}@10.0.75.1:3128\n" in env
    # The daemon.json is left alone: the proxies are no daemon.json layer before 23.
    assert all(a.path != PLAN_ARGS["daemon_json"] for a in p.actions if a.name() == "write-file")
    done = inputs(db, dockerd_running=True, proxy_env=p.actions[0].content)
    assert plan_host(done, **PLAN_ARGS).actions == ()


def test_removed_proxies_empty_the_file_and_restart():
    p = plan_host(inputs({"etc/hosts": "x"}, dockerd_running=True,
                         proxy_env=proxy.env_file({"http-proxy": "http://p:1"})), **PLAN_ARGS)
    assert names(p)[:2] == [("write-file", PLAN_ARGS["proxy_env"]), ("restart-docker", None)]
    assert p.actions[0].content == proxy.HEADER
    assert plan_host(inputs({}, proxy_env=proxy.HEADER), **PLAN_ARGS).actions == ()  # emptied once
    assert plan_host(inputs({}), **PLAN_ARGS).actions == ()  # never written: nothing to do


def test_docker_23_moves_the_proxies_to_daemon_json_and_restarts():
    db = {"proxy/http": f"http://me:{SECRET}@p:1"}
    p = plan_host(inputs(db, dockerd_version=(24, 0), dockerd_running=True, daemon_json="{}\n",
                         proxy_env=proxy.env_file({"http-proxy": "http://p:1"})), **PLAN_ARGS)
    assert names(p) == [("write-file", PLAN_ARGS["daemon_json"]), ("write-file", PLAN_ARGS["proxy_env"]),
                        ("restart-docker", None)]
    assert p.actions[0].mode == 0o600  # a password in daemon.json: not world-readable
    assert p.actions[1].content == proxy.HEADER


def test_render_rewrites_to_the_configured_host():
    doc = render(Layers(proxy_http="http://localhost:3128"), version=(23, 0), host_address="192.168.5.1")
    assert doc == {"proxies": {"http-proxy": "http://192.168.5.1:3128"}}


# Properties, with oracles from the rules.

hosts = st.one_of(
    st.sampled_from(["localhost", "LOCALHOST", "LocalHost.", "127.0.0.1", "127.9.8.7", "[::1]", "proxy",
                     "proxy.corp.example", "10.1.2.3", "[2001:db8::5]"]),
    st.from_regex(r"\A[a-z][a-z0-9-]{0,10}[a-z0-9](\.[a-z]{2,5}){0,2}\Z"),
)


@given(st.sampled_from(["", "http://", "https://", "socks5://", "HTTP://"]),
       st.one_of(st.just(""), st.from_regex(r"\A[a-z]{1,6}(:[A-Za-z0-9%!*]{1,10})?@\Z")),
       hosts, st.one_of(st.none(), st.integers(-5, 70000)))
def test_proxy_url_property(scheme, userinfo, host, port):
    value = f"{scheme}{userinfo}{host}" + ("" if port is None else f":{port}")
    loop = host.strip("[]").rstrip(".").lower() == "localhost" or (
        host[0].isdigit() or host.startswith("[")) and ipaddress.ip_address(host.strip("[]").rstrip(".")).is_loopback
    if port is not None and not 1 <= port <= 65535:
        with pytest.raises(proxy.ProxyError):
            proxy.proxy_url(value, "10.0.75.1")
        return
    got = proxy.proxy_url(value, "10.0.75.1")
    want_host = "10.0.75.1" if loop else host
    assert got == f"{scheme}{userinfo}{want_host}" + ("" if port is None else f":{port}")
    if userinfo:  # redaction hides what is written
        user, colon, _ = userinfo[:-1].partition(":")
        shown = f"{user}:***@" if colon else ("***@" if scheme else userinfo)
        assert redact_url(got) == got.replace(userinfo, shown, 1)


@given(st.text(max_size=30))
def test_proxy_url_never_accepts_whitespace_or_controls_and_never_raises_otherwise(text):
    try:
        got = proxy.proxy_url(text, "10.0.75.1")
    except proxy.ProxyError as exc:
        assert text.strip() not in str(exc) or len(text.strip()) < 2 or text.strip() in ("empty",)
        return
    assert not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in got)


@given(st.lists(st.from_regex(r"\A[a-z0-9.*/-]{1,12}\Z"), max_size=5), st.sampled_from([",", ", ", " ,"]))
def test_no_proxy_joins_entries_with_commas(entries, sep):
    assert proxy.no_proxy(sep.join(entries)) == ",".join(e for e in entries)


@given(st.dictionaries(st.sampled_from(["http-proxy", "https-proxy", "no-proxy"]),
                       st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                               min_size=1, max_size=20)))
def test_the_environment_file_is_what_a_shell_reads(proxies):
    text = proxy.env_file(proxies).decode()
    for line in text.split("\n")[1:-1]:
        assert line.startswith("export ")
        name, _, quoted = line[len("export "):].partition("=")
        assert shlex.split(quoted) == [proxies[{"HTTP_PROXY": "http-proxy", "HTTPS_PROXY": "https-proxy",
                                                "NO_PROXY": "no-proxy"}[name.upper()]]]


def test_the_environment_file_sourced_by_sh_exports_both_cases(tmp_path):
    f = tmp_path / "env"
    f.write_bytes(proxy.env_file({"http-proxy": "http://u:p'w@h:1", "no-proxy": "a,b"}))
    out = subprocess.run(["sh", "-c", '. "$1"; env', "sh", str(f)], env={}, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert "HTTP_PROXY=http://u:p'w@h:1" in out and "http_proxy=http://u:p'w@h:1" in out
    assert "NO_PROXY=a,b" in out and "no_proxy=a,b" in out
