"""Keep K visual tokens, with a selection that the loss can train.

A straight-through gate on the kept tokens alone gives the unkept ones no
signal and stays at chance. Three training signals that reach the
unkept tokens are offered (`allocator` in the selector config):

- "reinforce": sample K tokens without replacement from
  softmax(scores / temperature) (Gumbel top-K), really keep only those (in
  raster order, as at evaluation), and push up the log-probability of the
  sample in proportion to how much more probable the right answer was than
  with the deterministic top-K selection of the same sample (REINFORCE,
  reward = the answer's probability, self-critical per-sample baseline). The
  gradient is an unbiased estimate of the gradient of the *expected* answer
  probability under the sampling distribution (the baseline does not depend
  on the draw), not of that of the hard top-K selection used at evaluation;
  the two meet as the scores sharpen. The reward is the probability, not
  minus the loss: the loss made empty background a better bet than objects
  (model.answer_cost says why);
- "straight_through": all N tokens go to the language model, each multiplied
  by a mask whose forward value is the hard top-K indicator and whose
  gradient is that of a softmax over all N scores (`hard + p - p.detach()`).
  It trains on a sequence (all N placeholders, most zeroed) that evaluation
  never shows the LM; docs/training.md compares the two.

- "attention" (default): distillation from the frozen LM. With all N tokens given, the
  target is how much of what the LM reads where it starts the answer comes from each
  visual token (attention rollout: model.ARRCOC.attention_flow);
  the scores are trained by cross-entropy of softmax(scores / temperature)
  against it. No sampling and a dense, per-token signal, at the price of one
  all-token LM pass (without gradient) per training step. On the 12-object
  task it is the only one of the three that learnt where to look on every
  backbone tried; on the 14-object task, with the rollout, on seven backbone seeds
  (docs/training.md).

At evaluation the unkept tokens are really dropped (deterministic top-K).
"""

from __future__ import annotations

import torch


def top_k_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """[B, K] indices of the K best tokens, in raster order (the order the LM reads them)."""
    if not 0 < k <= scores.shape[1]:
        raise ValueError(f"cannot keep {k} of {scores.shape[1]} visual tokens")
    return scores.topk(k, dim=1).indices.sort(dim=1).values


def hard_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """[B, N] 1.0 for the K best tokens, 0.0 elsewhere."""
    mask = torch.zeros_like(scores)
    return mask.scatter(1, top_k_indices(scores, k), 1.0)


def straight_through_mask(scores: torch.Tensor, k: int, temperature: float = 1.0) -> torch.Tensor:
    """Hard top-K mask forward; gradient of K * softmax(scores / temperature) backward."""
    soft = k * torch.softmax(scores / temperature, dim=1)
    return hard_mask(scores.detach(), k) + (soft - soft.detach())


def random_indices(batch: int, n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, K] uniformly random distinct tokens in raster order (the benchmark's baseline)."""
    noise = torch.rand(batch, n, generator=generator)
    return top_k_indices(noise, k)


def gumbel_top_k(scores: torch.Tensor, k: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, K] a sample of K distinct tokens from softmax(scores / temperature), in sampling order."""
    if not 0 < k <= scores.shape[1]:
        raise ValueError(f"cannot keep {k} of {scores.shape[1]} visual tokens")
    uniform = torch.rand(scores.shape, generator=generator).to(scores.device).clamp(1e-9, 1 - 1e-9)
    gumbel = -torch.log(-torch.log(uniform))
    return (scores.detach() / temperature + gumbel).topk(k, dim=1).indices


def sample_log_prob(scores: torch.Tensor, order: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """[B] Plackett-Luce log-probability of drawing `order` [B, K] (without replacement) from the scores."""
    logits = scores / temperature
    taken = torch.zeros_like(logits, dtype=torch.bool)
    total = logits.new_zeros(logits.shape[0])
    for j in range(order.shape[1]):
        pick = order[:, j:j + 1]
        total = total + logits.gather(1, pick).squeeze(1) - logits.masked_fill(taken, float("-inf")).logsumexp(1)
        taken = taken.scatter(1, pick, True)
    return total


def reinforce_surrogate(scores: torch.Tensor, order: torch.Tensor, losses: torch.Tensor,
                        baseline: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Scalar whose gradient is the REINFORCE estimate; value 0.

    `losses` [B] costs of the sampled selections `order` (lower is better),
    `baseline` [B] the cost of each sample's own deterministic top-K selection (self-critical): a
    per-sample baseline that does not depend on the draw, so the estimate of
    the gradient of the expected cost stays unbiased, and that gives a
    nonzero gradient at batch size 1 (a batch-mean baseline, which includes
    the sample itself, cancels it there).
    """
    advantage = losses.detach() - baseline.detach()
    surrogate = (advantage * sample_log_prob(scores, order, temperature)).mean()
    return surrogate - surrogate.detach()


def sharpen(distribution: torch.Tensor, power: float) -> torch.Tensor:
    """Rows of `distribution` [B, N] raised to `power` and renormalised: the same ranking, more of the
    mass on the top. As a distillation target it makes a small selector spend itself on putting the
    tokens the teacher is sure of first, not on copying the flat tail (docs/training.md)."""
    raised = distribution.clamp_min(0) ** power
    return raised / raised.sum(1, keepdim=True).clamp_min(1e-30)


def spread_to_neighbours(distribution: torch.Tensor, grid: tuple[int, int], share: float) -> torch.Tensor:
    """Rows of `distribution` [B, H*W] (raster order) where every token also gets `share` times the
    mass of each of its 8 neighbours, renormalised. As a distillation target it sends the kept tokens
    beyond the ones the question points at to their surroundings (in a real image the rest of the
    object and its context) rather than to tokens ranked high whatever is asked (docs/training.md)."""
    import torch.nn.functional as F

    cells = distribution.view(-1, 1, *grid)
    ring = torch.full((1, 1, 3, 3), share, dtype=cells.dtype, device=cells.device)
    ring[0, 0, 1, 1] = 0.0
    spread = distribution + F.conv2d(cells, ring, padding=1).flatten(1)
    return spread / spread.sum(1, keepdim=True).clamp_min(1e-30)


def distillation_surrogate(scores: torch.Tensor, target: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Scalar whose gradient is that of the cross-entropy of softmax(scores / temperature) against
    the target distribution [B, N] (rows summing to 1), averaged over the batch; value 0."""
    cross_entropy = -(target.detach() * torch.log_softmax(scores / temperature, dim=1)).sum(1).mean()
    return cross_entropy - cross_entropy.detach()
