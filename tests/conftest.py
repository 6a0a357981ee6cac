"""Shared test plumbing.

Under CI=true (.ci/run sets it whatever it inherits) a test that cannot run
is a failure, never a silent skip: a skipped test, a module skipped at
import (pytest.skip(allow_module_level=True), pytest.importorskip), and any
xfail (a failing xfail, or an xfail that passes: strict) all fail. On a
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
# `make mutate`: every mutant runs the tests that reach it; fewer examples, the
# same ones each time (a mutant's verdict must not depend on luck).
settings.register_profile("mutate", deadline=None, max_examples=30, derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _reason(report) -> str:
    longrepr = report.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not IN_CI:
        return
    if hasattr(report, "wasxfail"):
        # An xfail that failed (skipped, wasxfail) or passed (passed, wasxfail):
        # under CI neither may hide a result.
        if report.skipped or report.passed:
            report.outcome = "failed"
            report.longrepr = f"xfail under CI=true, which counts as a failure: {report.wasxfail or call.excinfo}"
        return
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module skipped while collected (a module-level pytest.skip, or
    pytest.importorskip of a missing module) fails under CI."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under CI=true, which counts as a failure: {_reason(report)}"


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
