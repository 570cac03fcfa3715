"""Every test has a time limit (conftest.py): past it, the test fails with a message instead of hanging the suite."""

import shutil
import subprocess
import sys

from vgcourse.paths import REPO_ROOT

SLOW = '''
import subprocess
import time

import pytest


@pytest.mark.timeout(1)
def test_sleeps():
    time.sleep(30)


@pytest.mark.timeout(1)
def test_waits_on_a_process():
    subprocess.run(["sleep", "30"])


def test_quick():
    pass
'''


def test_tests_past_their_limit_fail_with_a_message(tmp_path):
    shutil.copy(REPO_ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_slow.py").write_text(SLOW)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_slow.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "test_slow.py::test_sleeps ran past its time limit of 1 s" in proc.stdout
    assert "test_slow.py::test_waits_on_a_process ran past its time limit of 1 s" in proc.stdout
    assert "2 failed, 1 passed" in proc.stdout
