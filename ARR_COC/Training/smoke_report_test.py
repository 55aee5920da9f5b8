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


def test_a_training_run_with_the_report_ends_with_the_smoke_line_and_smoke_json(tmp_path, monkeypatch):
    """A real (tiny, random) training run: the last line is the smoke event, smoke.json holds it."""
    import io

    from ARR_COC.Training import train
    from ARR_COC.Training.config import load_config

    monkeypatch.delenv("AIP_MODEL_DIR", raising=False)
    monkeypatch.setenv("ARR_IMAGE", "h/team/arr-trainer@sha256:" + "c" * 64)
    config = load_config(None, environ={}, overrides={
        "output_dir": str(tmp_path), "max_steps": "3", "smoke_report": "1", "synthetic_train_size": "32",
        "synthetic_eval_size": "4", "max_eval_samples": "4", "batch_size": "4", "gradient_accumulation_steps": "1",
        "save_every_n_steps": "0", "eval_every_n_steps": "0"})
    stream = io.StringIO()
    train.run(config, stream=stream)
    last = json.loads(stream.getvalue().splitlines()[-1])
    written = json.loads((tmp_path / "smoke.json").read_text())
    assert last["event"] == "smoke" and last["smoke_json"] == str(tmp_path / "smoke.json")
    assert written == {k: v for k, v in last.items() if k not in ("step", "smoke_json")}
    assert written["steps"] == 3 and written["samples_per_s"] > 0 and written["device"] == "cpu"
    assert written["image"].endswith("@sha256:" + "c" * 64)
