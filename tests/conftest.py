"""Shared test plumbing.

Under CI=true a test that cannot run is a failure, never a silent skip; on a
laptop without root, tests that need it skip with a one-line reason.
"""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

IN_CI = os.environ.get("CI", "").lower() == "true"

# Property tests: a quick profile for every run, and `make soak`'s
# (HYPOTHESIS_PROFILE=soak): 10,000 examples for every parser of outside input.
settings.register_profile("default", deadline=None, max_examples=200)
settings.register_profile("soak", deadline=None, max_examples=10_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (run the suite as root)")


@pytest.fixture
def agent_cmd():
    """argv prefix that runs this checkout's agent."""
    return [sys.executable, "-m", "agent"]


@pytest.fixture
def agent_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env
