"""The pytest runner maps Bazel's test environment onto pytest's flags."""

import os
import subprocess
import sys

import pytest

from tools.pytest import pytest_main
from tools.pytest.pytest_main import pytest_args


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, []),
        ({"XML_OUTPUT_FILE": "/out/test.xml"}, ["--junitxml=/out/test.xml"]),
        ({"TESTBRIDGE_TEST_ONLY": "gradient"}, ["-k", "gradient"]),
        ({"TESTBRIDGE_TEST_ONLY": ""}, []),
        ({"TEST_TMPDIR": "/t"}, ["--basetemp=/t/pytest"]),
    ],
)
def test_bazel_environment_becomes_pytest_flags(environ, expected):
    args = pytest_args(["a_test.py"], environ)
    assert args[-1] == "a_test.py"
    assert args[4:-1] == expected


def run_runner(cwd, *files):
    """The runner as Bazel starts it: the script itself, with the test files as arguments."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, pytest_main.__file__, *files], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "source, code",
    [
        ("def test_ok():\n    pass\n", 0),
        ("def test_bad():\n    assert False\n", 1),
        ("# no tests here\n", pytest.ExitCode.NO_TESTS_COLLECTED),  # fails the target, never a silent pass
    ],
)
def test_runner_exit_code(tmp_path, source, code):
    (tmp_path / "a_test.py").write_text(source)
    done = run_runner(tmp_path, "a_test.py")
    assert done.returncode == code, done.stdout + done.stderr


def test_runner_without_test_files_says_so(tmp_path):
    done = run_runner(tmp_path)
    assert done.returncode == 1 and "no test files given" in done.stderr
