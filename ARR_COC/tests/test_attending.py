"""The allocator: K kept, raster order, and a straight-through signal for every token."""

import pytest
import torch

from ARR_COC import attending


@pytest.mark.parametrize("scores, k, expected", [
    ([[0.1, 0.9, 0.3, 0.8]], 2, [[1, 3]]),
    ([[5.0, 1.0, 4.0, 3.0, 2.0]], 3, [[0, 2, 3]]),
    ([[0.0, 1.0], [1.0, 0.0]], 1, [[1], [0]]),
])
def test_top_k_keeps_the_best_in_raster_order(scores, k, expected):
    assert attending.top_k_indices(torch.tensor(scores), k).tolist() == expected


@pytest.mark.parametrize("k", [0, 5])
def test_impossible_budget_is_refused(k):
    with pytest.raises(ValueError, match=f"cannot keep {k} of 4"):
        attending.top_k_indices(torch.rand(1, 4), k)


def test_straight_through_mask_is_hard_forward_and_reaches_unkept_tokens_backward():
    scores = torch.tensor([[0.5, 2.0, -1.0, 1.0, 0.0]], requires_grad=True)
    mask = attending.straight_through_mask(scores, 2)
    assert mask.tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]]
    (mask * torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])).sum().backward()
    assert (scores.grad[0, [0, 2, 4]] != 0).all(), "unkept tokens must get a signal"


def test_random_indices_are_distinct_and_sorted():
    kept = attending.random_indices(3, 10, 4, torch.Generator().manual_seed(0))
    assert kept.shape == (3, 4)
    for row in kept.tolist():
        assert row == sorted(set(row))
