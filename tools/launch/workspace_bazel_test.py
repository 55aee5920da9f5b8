"""The workspace's Bazel from inside `bazel run`: the image's outputs from Bazel's own answers,
and --local's trainer run through a real process standing in for tools/bazel."""

import json
import os
import stat
import sys

import pytest

from tools.launch import workspace_bazel as WB


def test_output_paths_split_layout_and_digest():
    out = "bazel-out/k8-fastbuild/bin/Stack/arr_trainer\nbazel-out/k8-fastbuild/bin/Stack/arr_trainer.digest\n"
    assert WB.output_paths(out, "/repo") == (
        "/repo/bazel-out/k8-fastbuild/bin/Stack/arr_trainer",
        "/repo/bazel-out/k8-fastbuild/bin/Stack/arr_trainer.digest",
    )


@pytest.mark.parametrize("out", ["", "a\nb\n", "x.digest\ny.digest\n"])
def test_output_paths_refuse_ambiguous_answers(out):
    with pytest.raises(WB.ImageBuildError):
        WB.output_paths(out, "/repo")


def test_outside_bazel_run_the_error_says_how_to_start():
    with pytest.raises(WB.ImageBuildError, match="tools/bazel run //tools:launch"):
        WB.workspace({})


def test_trainer_command_is_bazel_run_of_the_train_target():
    assert WB.trainer_command("/repo", ["--output-dir", "arr_coc_runs/x"]) == [
        "/repo/tools/bazel", "run", "//ARR_COC/Training:train", "--", "--output-dir", "arr_coc_runs/x"]


def test_trainer_env_drops_what_bazel_run_set_for_the_launcher():
    environ = {"HOME": "/h", "PYTHONPATH": "/launcher/runfiles", "RUNFILES_DIR": "/r",
               "BUILD_WORKSPACE_DIRECTORY": "/repo", "BUILD_WORKING_DIRECTORY": "/repo/x", "SEED": "1"}
    assert WB.trainer_env(environ, {"SEED": "7", "LEARNING_RATE": "1e-3"}) == {
        "HOME": "/h", "SEED": "7", "LEARNING_RATE": "1e-3"}


def test_run_trainer_runs_the_workspace_bazel_in_the_callers_folder(tmp_path):
    """A workspace whose tools/bazel records how it was called and exits 3: the code passes through."""
    root, caller = tmp_path / "repo", tmp_path / "caller"
    (root / "tools").mkdir(parents=True)
    caller.mkdir()
    record = tmp_path / "called.json"
    bazel = root / "tools" / "bazel"
    bazel.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                     f"json.dump({{'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': dict(os.environ)}}, "
                     f"open({str(record)!r}, 'w'))\nsys.exit(3)\n")
    bazel.chmod(bazel.stat().st_mode | stat.S_IXUSR)
    environ = {**os.environ, "BUILD_WORKSPACE_DIRECTORY": str(root), "BUILD_WORKING_DIRECTORY": str(caller),
               "PYTHONPATH": "/launcher/runfiles"}
    assert WB.run_trainer(["--output-dir", "arr_coc_runs/a"], {"SEED": "5"}, environ) == 3
    called = json.loads(record.read_text())
    assert called["argv"] == ["run", "//ARR_COC/Training:train", "--", "--output-dir", "arr_coc_runs/a"]
    assert called["cwd"] == str(caller)
    assert called["env"]["SEED"] == "5" and "PYTHONPATH" not in called["env"]
