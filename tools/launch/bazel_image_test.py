"""The launcher finds the Bazel-built image from Bazel's own answers."""

import pytest

from tools.launch import bazel_image


def test_output_paths_split_layout_and_digest():
    out = "bazel-out/k8-fastbuild/bin/Stack/arr_trainer\nbazel-out/k8-fastbuild/bin/Stack/arr_trainer.digest\n"
    assert bazel_image.output_paths(out, "/repo") == (
        "/repo/bazel-out/k8-fastbuild/bin/Stack/arr_trainer",
        "/repo/bazel-out/k8-fastbuild/bin/Stack/arr_trainer.digest",
    )


@pytest.mark.parametrize("out", ["", "a\nb\n", "x.digest\ny.digest\n"])
def test_output_paths_refuse_ambiguous_answers(out):
    with pytest.raises(bazel_image.ImageBuildError):
        bazel_image.output_paths(out, "/repo")


def test_outside_bazel_run_the_error_says_how_to_start():
    with pytest.raises(bazel_image.ImageBuildError, match="tools/bazel run //tools:launch"):
        bazel_image.workspace({})
