"""Runs pytest as a Bazel test: junit XML, --test_filter, and no silent empty runs.

A py_test whose file has no main silently runs nothing; this runner is the main
of every pytest_test target, and pytest's own "no tests collected" exit code (5)
fails the target.
"""

import os
import sys

import pytest


def pytest_args(test_files, environ):
    """The pytest command line for these files under Bazel's test environment."""
    args = ["-p", "no:cacheprovider", "-ra", "--strict-markers"]
    if "XML_OUTPUT_FILE" in environ:
        args.append("--junitxml=" + environ["XML_OUTPUT_FILE"])
    if environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", environ["TESTBRIDGE_TEST_ONLY"]]
    if "TEST_TMPDIR" in environ:
        args.append("--basetemp=" + os.path.join(environ["TEST_TMPDIR"], "pytest"))
    return args + list(test_files)


def main(argv):
    if not argv:
        sys.exit("pytest_main: no test files given (the pytest_test macro passes its srcs)")
    # Bazel's TEST_PREMATURE_EXIT_FILE is removed by the test runner only if we exit normally.
    sys.exit(pytest.main(pytest_args(argv, os.environ)))


if __name__ == "__main__":
    main(sys.argv[1:])
