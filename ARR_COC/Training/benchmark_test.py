"""The benchmark's controls and summaries: pure functions on small hand-made inputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from ARR_COC.Training import benchmark, pictures


def test_background_cells_never_hold_an_object():
    objects = torch.zeros(4, 64, dtype=torch.bool)
    objects[:, ::3] = True
    kept = benchmark.background_indices(objects, 6, torch.Generator().manual_seed(0))
    assert kept.shape == (4, 6)
    assert not objects.gather(1, kept).any()
    assert all(len(set(row)) == 6 for row in kept.tolist())


def test_background_refuses_when_too_few_cells_are_empty():
    objects = torch.ones(1, 64, dtype=torch.bool)
    objects[0, :3] = False
    with pytest.raises(ValueError, match="fewer than 6 empty cells"):
        benchmark.background_indices(objects, 6, torch.Generator().manual_seed(0))


def test_saliency_keeps_the_cells_that_stand_out_without_a_question():
    image = torch.full((1, 3, 64, 64), 0.1)
    image[:, :, 0:16, 16:32] = torch.tensor([0.9, 0.2, 0.2]).view(1, 3, 1, 1)   # cell 1
    image[:, :, 48:64, 32:48] = torch.tensor([0.2, 0.9, 0.2]).view(1, 3, 1, 1)  # cell 14
    assert sorted(benchmark.saliency_indices(image, 16, 2)[0].tolist()) == [1, 14]


@pytest.mark.parametrize("answers, expected", [
    ([("shape", "red"), ("shape", "red"), ("shape", "blue"), ("shape", "green")], 0.5),
    ([("shape", "red"), ("shape", "blue")], 0.5),
    ([("shape", "red")] * 3, 1.0),
    # the majority is taken per kind: "red" twice over two kinds is not a majority of either
    ([("shape", "red"), ("shape", "blue"), ("colour", "circle"), ("colour", "circle"), ("position", "red")], 0.8),
])
def test_chance_is_the_majority_answer_of_each_kind(answers, expected):
    samples = [{"kind": kind, "answer": answer} for kind, answer in answers]
    assert benchmark.chance(samples) == expected


def test_every_method_is_measured_at_k_and_the_curve_methods_at_every_budget():
    pairs = benchmark.method_budgets(6, 64)
    assert {method for method, budget in pairs if budget in (6, 64)} == set(benchmark.METHODS)
    for method in benchmark.CURVE_METHODS:
        assert {budget for m, budget in pairs if m == method} == {2, 4, 6, 8, 16}


def test_summary_splits_by_kind():
    row = {"correct": [1.0, 0.0, 1.0, 1.0], "recall": [1.0, 0.0, 0.5, 1.0],
           "kind": ["shape", "shape", "colour", "position"]}
    summary = benchmark.summarize(row)
    assert summary["accuracy"] == pytest.approx(3 / 4) and summary["recall_at_k"] == pytest.approx(2.5 / 4)
    assert summary["by_kind"] == {"shape": {"accuracy": 0.5, "recall_at_k": 0.5},
                                  "colour": {"accuracy": 1.0, "recall_at_k": 0.5},
                                  "position": {"accuracy": 1.0, "recall_at_k": 1.0}}


def test_runs_are_grouped_by_backbone_in_order():
    def run(backbone, all_tokens, trained):
        return {"backbone": backbone, "tokens": 64, "summaries": {("all", 64): {"accuracy": all_tokens},
                                                                  ("trained", 6): {"accuracy": trained}}}

    runs = [run("/c/a.safetensors", 0.9, 0.8), run("/c/a.safetensors", 0.92, 0.7), run("/t/b.safetensors", 0.95, 0.2)]
    assert benchmark.runs_by_backbone(runs, 6) == [
        {"backbone": "a.safetensors", "all": [0.9, 0.92], "trained": [0.8, 0.7]},
        {"backbone": "b.safetensors", "all": [0.95], "trained": [0.2]}]


def test_accuracy_picture_draws_each_method(tmp_path):
    lines = {"trained": [(2, 0.5), (4, 0.9)], "random": [(2, 0.2), (4, 0.3)], "all": [(64, 0.95)]}
    path = pictures.accuracy_against_k(lines, 64, str(tmp_path / "curve.png"))
    colours = {tuple(p) for p in np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).tolist()}
    assert pictures.LINE_COLOURS["trained"] in colours and pictures.LINE_COLOURS["random"] in colours
