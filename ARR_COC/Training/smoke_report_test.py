"""The smoke report: throughput without the warm-up step, peak memory, and where smoke.json goes."""

import json

import pytest

from ARR_COC.Training import smoke_report as S


class Clock:
    def __init__(self, times):
        self.times = iter(times)

    def __call__(self):
        return next(self.times)


@pytest.mark.parametrize(
    "times,samples,expected",
    [
        ([0.0, 10.0, 11.0, 12.0], [4, 4, 4], 4.0),  # the first step's 10 s warm-up is left out
        ([0.0, 2.0], [4], 2.0),                      # one step: it is all there is
        ([0.0], [], 0.0),                            # no step at all
    ],
)
def test_samples_per_s(times, samples, expected):
    timer = S.StepTimer(Clock(times))
    for count in samples:
        timer.step(count)
    assert timer.samples_per_s() == pytest.approx(expected)


@pytest.mark.parametrize(
    "environ,folder",
    [
        ({"AIP_MODEL_DIR": "gs://b/run/model/"}, "gs://b/run"),
        ({"AIP_MODEL_DIR": "gs://b/run/model"}, "gs://b/run"),
        ({}, "out/here"),
    ],
)
def test_output_folder(environ, folder):
    assert S.output_folder("out/here", environ) == folder


def test_report_on_cpu_has_peak_rss_and_is_written_whole(tmp_path):
    timer = S.StepTimer(Clock([0.0, 1.0, 2.0]))
    timer.step(4)
    timer.step(4)
    result = S.report(timer, cuda=False, environ={"ARR_IMAGE": "h/r@sha256:ab"})
    assert result["event"] == "smoke" and result["steps"] == 2 and result["device"] == "cpu"
    assert result["image"] == "h/r@sha256:ab"
    assert result["samples_per_s"] == 4.0 and result["peak_gpu_memory_bytes"] > 10 * 2**20  # at least 10 MiB
    where = S.write(f"memory://{tmp_path.name}/run", result)
    import fsspec

    with fsspec.open(where) as handle:
        assert json.load(handle) == result
