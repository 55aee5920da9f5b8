"""--local argument handling, without Bazel: what runs, with which argv and environment.

The training run itself is the model package's to test (//ARR_COC/Training);
here: the smoke config stays in charge (no --config, no Vertex
hyperparameters), --run-name picks a resumable output folder, and nothing
needs the image. How the trainer is started through Bazel: workspace_bazel_test.
"""

import json

import pytest

from tools.launch import cli


def invocation(*argv):
    return cli.local_invocation(cli.launch_parser().parse_args(["--local", *argv]))


@pytest.mark.parametrize(
    "argv,expected_argv,expected_env",
    [
        ([], [], {}),  # the embedded smoke config, its own output folder
        (["--run-name", "smoke-2"], ["--output-dir", "arr_coc_runs/smoke-2"], {}),
        (["--env", "LEARNING_RATE=1e-3,SEED=7"], [], {"LEARNING_RATE": "1e-3", "SEED": "7"}),
        (["--env", "SEED=1", "--env", "SEED=2"], [], {"SEED": "2"}),  # last one wins
        # cloud flags change nothing locally
        (["--gpu", "H100", "--region", "us-east4", "--project", "p"], [], {}),
    ],
)
def test_local_invocation(argv, expected_argv, expected_env):
    assert invocation(*argv) == (expected_argv, expected_env)


def test_dry_run_shows_what_would_run_without_any_image(capsys):
    assert cli.main(["--local", "--dry-run", "--run-name", "try", "--env", "SEED=3"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"local": {"target": "//ARR_COC/Training:train",
                                         "argv": ["--output-dir", "arr_coc_runs/try"],
                                         "env": {"SEED": "3"}}}


def test_bad_run_name_is_refused_before_training(capsys, monkeypatch, tmp_path):
    """A workspace whose tools/bazel (a real process) leaves a mark if it is ever started."""
    bazel, mark = tmp_path / "tools" / "bazel", tmp_path / "started"
    bazel.parent.mkdir()
    bazel.write_text(f"#!/bin/sh\ntouch {mark}\n")
    bazel.chmod(0o755)
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(tmp_path))
    assert cli.main(["--local", "--run-name", "Bad_Name"]) == 2
    assert "run name 'Bad_Name'" in capsys.readouterr().err
    assert not mark.exists()


def test_outside_bazel_run_local_says_how_to_start(capsys, monkeypatch):
    monkeypatch.delenv("BUILD_WORKSPACE_DIRECTORY", raising=False)
    assert cli.main(["--local"]) == 2
    assert "tools/bazel run //tools:launch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "path,cwd,expected",
    [
        ("launch.toml", "/home/u/repo", "/home/u/repo/launch.toml"),  # bazel run: the caller's dir
        ("/etc/l.toml", "/home/u/repo", "/etc/l.toml"),
        ("launch.toml", None, "launch.toml"),  # plain python: the process's own cwd
        (None, "/home/u/repo", None),
    ],
)
def test_user_paths_resolve_against_the_callers_directory(path, cwd, expected):
    env = {"BUILD_WORKING_DIRECTORY": cwd} if cwd else {}
    got = cli.user_path(path, env)
    assert (str(got) if got is not None else None) == expected
