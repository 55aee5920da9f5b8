"""The pytest runner maps Bazel's test environment onto pytest's flags."""

import pytest

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


def test_runner_exits_nonzero_when_nothing_is_collected(tmp_path):
    empty = tmp_path / "empty_test.py"
    empty.write_text("# no tests here\n")
    assert pytest.main(["-p", "no:cacheprovider", str(empty)]) == pytest.ExitCode.NO_TESTS_COLLECTED
