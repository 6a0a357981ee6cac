import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import agentconfig


def test_defaults_need_no_file(tmp_path):
    s = agentconfig.load(str(tmp_path / "missing.toml"))
    assert s == agentconfig.AgentConfig()
    assert s.host.address == "10.0.75.1"
    assert s.kvp.pool_dir == "/var/lib/hyperv"
    assert s.status.file == "/run/moby-agent/status.json"


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(agentconfig.ConfigError, match="no such file"):
        agentconfig.load(str(tmp_path / "missing.toml"), required=True)


def test_values_are_read():
    s = agentconfig.parse(
        'log_level = "debug"\n[host]\naddress = "10.0.75.9"\n[retry]\nmin_seconds = 2\nmax_seconds = 30.5\n'
    )
    assert s.log_level == "debug"
    assert s.host.address == "10.0.75.9"
    assert s.retry.min_seconds == 2.0 and isinstance(s.retry.min_seconds, float)
    assert s.retry.max_seconds == 30.5


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour = 1", "unknown key 'colour'"),
        ("[host]\nadress = 'x'", "unknown key 'host.adress'"),
        ("[host]\naddress = 5", "host.address: expected a string, got 5"),
        ("[retry]\nmin_seconds = true", "retry.min_seconds: expected a number, got True"),
        ("host = 'x'", "host: expected a table"),
        ("log_level = 'loud'", "log_level: expected one of"),
        ("[watch]\nfollow_containers = 1", "watch.follow_containers: expected true or false, got 1"),
        ("[watch]\nnotify = 'names'", "watch.notify: expected one of auto, notify, rescan, got 'names'"),
        ("[watch]\nnotify = 'rescan'", 'watch.notify: "rescan" needs watch.rescan_seconds above 0'),
        ("[retry]\nmin_seconds = 10\nmax_seconds = 1", "min_seconds <= max_seconds"),
        ("[kvp]\npool_dir = 'relative'", "kvp.pool_dir: expected an absolute path"),
        ("[kvp", "not valid TOML"),
    ],
)
def test_errors_name_file_key_and_expectation(text, message):
    with pytest.raises(agentconfig.ConfigError) as info:
        agentconfig.parse(text, "/etc/moby-agent/agent.toml")
    assert str(info.value).startswith("/etc/moby-agent/agent.toml: ")
    assert message in str(info.value)


def test_shipped_default_config_is_the_defaults():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "packaging" / "agent.toml").read_text()
    # Settings are commented out as "# key = value"; prose uses "##".
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in text.splitlines())
    assert agentconfig.parse(uncommented) == agentconfig.AgentConfig()


@given(st.text(max_size=300))
def test_any_text_gives_settings_or_config_error(text):
    try:
        agentconfig.parse(text)
    except agentconfig.ConfigError:
        pass


HUGE = "1" + "0" * 400


@pytest.mark.parametrize(
    "text, key, bound",
    [
        (f"[shares]\nmax_id = {HUGE}", "shares.max_id", "0 to 4294967294"),
        (f"[shares]\nmax_id = -{HUGE}", "shares.max_id", "0 to 4294967294"),
        (f"[watch]\nmax_dirs = {HUGE}", "watch.max_dirs", "1 to 100000"),
        (f"[watch]\nsettle_ms = {HUGE}", "watch.settle_ms", "0 to 1000"),
        (f"[retry]\nmax_seconds = {HUGE}", "retry.max_seconds", "0.01 to 86400"),
        (f"[database]\npoll_seconds = {HUGE}", "database.poll_seconds", "0 to 86400"),
        (f"[docker]\nverify_timeout = -{HUGE}", "docker.verify_timeout", "0.1 to 600"),
    ],
)
def test_a_huge_integer_is_refused_with_its_bound(text, key, bound):
    """float() of a 400-digit integer raises OverflowError: the bound is
    checked on the integer itself, and the error names file, key and bound."""
    with pytest.raises(agentconfig.ConfigError) as info:
        agentconfig.parse(text, "/etc/moby-agent/agent.toml")
    message = str(info.value)
    assert message.startswith(f"/etc/moby-agent/agent.toml: {key}: expected {bound}, got ")
    assert len(message) < 200  # the number is described, not printed in full


def test_an_integer_too_long_for_python_to_read_is_a_config_error():
    # tomllib raises ValueError (int_max_str_digits) past 4300 digits.
    with pytest.raises(agentconfig.ConfigError, match="not valid TOML"):
        agentconfig.parse("[shares]\nmax_id = 1" + "0" * 5000, "/etc/moby-agent/agent.toml")


def test_integer_bounds_are_exact():
    assert agentconfig.parse("[shares]\nmax_id = 4294967294").shares.max_id == 2**32 - 2
    with pytest.raises(agentconfig.ConfigError, match="shares.max_id: expected 0 to 4294967294, got 4294967295"):
        agentconfig.parse("[shares]\nmax_id = 4294967295")
    assert agentconfig.parse("[watch]\nsettle_ms = 0").watch.settle_ms == 0
