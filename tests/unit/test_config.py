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
