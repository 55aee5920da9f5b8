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


def test_plackett_luce_log_probs_of_all_ordered_samples_sum_to_one():
    import itertools

    scores = torch.tensor([[0.3, -1.0, 2.0, 0.5]])
    orders = list(itertools.permutations(range(4), 2))
    total = sum(attending.sample_log_prob(scores, torch.tensor([order])).exp() for order in orders)
    assert torch.allclose(total, torch.ones(1), atol=1e-6)


def test_gumbel_top_k_draws_distinct_tokens_at_softmax_frequencies():
    scores = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).expand(4000, -1)
    sample = attending.gumbel_top_k(scores, 1, generator=torch.Generator().manual_seed(0))
    frequencies = torch.bincount(sample.flatten(), minlength=4).float() / 4000
    assert torch.allclose(frequencies, torch.softmax(scores[0], 0), atol=0.03)
    pairs = attending.gumbel_top_k(scores, 3, generator=torch.Generator().manual_seed(1))
    assert all(len(set(row)) == 3 for row in pairs.tolist())


def test_reinforce_raises_the_log_probability_of_samples_better_than_their_baseline():
    scores = torch.zeros(2, 4, requires_grad=True)
    order = torch.tensor([[0, 1], [2, 3]])
    surrogate = attending.reinforce_surrogate(scores, order, torch.tensor([0.1, 2.0]), torch.tensor([0.5, 1.0]))
    assert surrogate.item() == 0.0
    surrogate.backward()
    assert scores.grad[0, 0] < 0 < scores.grad[1, 2], "descending must favour the low-loss sample's tokens"


@pytest.mark.parametrize("loss, baseline, sign", [(0.2, 1.0, -1), (1.0, 0.2, 1), (0.7, 0.7, 0)])
def test_reinforce_at_batch_size_one_follows_the_self_critical_baseline(loss, baseline, sign):
    """A batch-mean baseline gives no gradient for one sample; the per-sample baseline does."""
    scores = torch.tensor([[0.3, -0.2, 0.1, 0.0]], requires_grad=True)
    attending.reinforce_surrogate(scores, torch.tensor([[2, 0]]), torch.tensor([loss]),
                                  torch.tensor([baseline])).backward()
    assert torch.sign(scores.grad[0, 2]).item() == sign


def test_distillation_moves_the_scores_towards_the_target_and_has_value_zero():
    scores = torch.zeros(2, 4, requires_grad=True)
    target = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.5, 0.5]])
    surrogate = attending.distillation_surrogate(scores, target)
    assert surrogate.item() == 0.0
    surrogate.backward()
    # d/d scores of mean cross-entropy = (softmax(scores) - target) / batch
    torch.testing.assert_close(scores.grad, (torch.full((2, 4), 0.25) - target) / 2)


@pytest.mark.parametrize("power", [1.0, 2.0, 4.0])
def test_sharpening_keeps_the_ranking_and_moves_mass_to_the_top(power):
    target = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.05, 0.05, 0.6, 0.3]])
    sharp = attending.sharpen(target, power)
    torch.testing.assert_close(sharp.sum(1), torch.ones(2))
    assert torch.equal(sharp.argsort(1), target.argsort(1))
    top = sharp.max(1).values
    assert torch.allclose(top, target.max(1).values) if power == 1.0 else bool((top > target.max(1).values).all())


@pytest.mark.parametrize("cell, neighbours", [(5, 8), (0, 3), (1, 5), (3, 3), (15, 3)])
def test_spreading_gives_each_neighbour_a_share_of_the_cell(cell, neighbours):
    """A 4 x 4 grid with all mass on one cell: its neighbours (8 inside, 5 on an edge, 3 in a corner)
    get `share` of it each, every other cell nothing."""
    share = 0.1
    target = torch.zeros(1, 16)
    target[0, cell] = 1.0
    spread = attending.spread_to_neighbours(target, (4, 4), share)
    total = 1 + neighbours * share
    row, column = divmod(cell, 4)
    for other in range(16):
        near = max(abs(other // 4 - row), abs(other % 4 - column)) == 1
        expected = 1 / total if other == cell else (share / total if near else 0.0)
        assert spread[0, other].item() == pytest.approx(expected)


def test_spreading_keeps_rows_summing_to_one_on_a_wide_grid():
    target = torch.softmax(torch.randn(3, 2 * 5, generator=torch.Generator().manual_seed(0)), 1)
    torch.testing.assert_close(attending.spread_to_neighbours(target, (2, 5), 0.05).sum(1), torch.ones(3))
