"""CI cannot be talked out of a test: .ci/run forces CI=true, and under it
tests/conftest.py turns every way of not running a test into a failure."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

SAMPLES = {
    "test_module_skip.py": "import pytest\npytest.skip('no tool', allow_module_level=True)\n"
                           "def test_x():\n    pass\n",
    "test_importorskip.py": "import pytest\npytest.importorskip('no_such_module_moby')\n"
                            "def test_x():\n    pass\n",
    "test_skip.py": "import pytest\ndef test_x():\n    pytest.skip('later')\n",
    "test_skipif.py": "import pytest\n@pytest.mark.skipif(True, reason='r')\ndef test_x():\n    pass\n",
    "test_xfail_fails.py": "import pytest\n@pytest.mark.xfail(reason='known')\ndef test_x():\n    assert 0\n",
    "test_xfail_passes.py": "import pytest\n@pytest.mark.xfail(reason='known')\ndef test_x():\n    pass\n",
    "test_xfail_call.py": "import pytest\ndef test_x():\n    pytest.xfail('known')\n",
    "test_ok.py": "def test_x():\n    pass\n",
}


def run_samples(tmp_path, ci):
    (tmp_path / "tests").mkdir()
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    for name, text in SAMPLES.items():
        (tmp_path / "tests" / name).write_text(text)
    env = dict(os.environ, CI=ci, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           "--continue-on-collection-errors", "tests"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc.stdout


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_under_ci_nothing_but_a_pass_passes(tmp_path, ci):
    out = run_samples(tmp_path, ci)
    failed = {name for name in SAMPLES if f"tests/{name}" in out and (
        f"FAILED tests/{name}" in out or f"ERROR tests/{name}" in out)}
    assert failed == set(SAMPLES) - {"test_ok.py"}, out
    assert "1 passed" in out, out


def test_without_ci_skips_stay_skips(tmp_path):
    out = run_samples(tmp_path, "")
    assert "FAILED" not in out and "ERROR" not in out, out
    assert "4 skipped" in out and "2 xfailed" in out and "1 xpassed" in out, out


def test_ci_run_sets_ci_true_whatever_it_inherits(tmp_path):
    (tmp_path / ".ci").mkdir()
    (tmp_path / "tests").mkdir()
    shutil.copy(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "tests" / "run-all").write_text('printf "%s" "$CI"\n')
    for inherited in ({"CI": "false"}, {"CI": ""}, {"CI": "0"}, {}):
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env.update(inherited)
        out = subprocess.run(["sh", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True,
                             timeout=30, check=True).stdout
        assert out == "true", inherited


def test_lint_covers_every_python_file():
    """tests/tools/lint finds the files itself: every *.py and every script
    whose first line names python (packaging/moby-agent)."""
    out = subprocess.run(["sh", str(REPO / "tests" / "tools" / "lint"), "--list-python"], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    listed = {os.path.normpath(p) for p in out}
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    expected = set()
    for path in tracked:
        full = REPO / path
        if path.endswith(".py"):
            expected.add(path)
        elif full.is_file():
            with open(full, "rb") as f:
                first = f.readline()
            if first.startswith(b"#!") and b"python" in first:
                expected.add(path)
    assert "packaging/moby-agent" in expected
    assert expected <= listed, sorted(expected - listed)
