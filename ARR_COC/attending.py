"""Keep K visual tokens, with a selection that the loss can train.

A straight-through gate on the kept tokens alone gives the unkept ones no
signal and stays at chance (QWEN3VL.md). So during training all N tokens go
to the language model, each multiplied by a mask whose forward value is the
hard top-K indicator and whose gradient is that of a softmax over all N
scores (`hard + p - p.detach()`): every token, kept or not, learns whether it
would have helped. At evaluation the unkept tokens are really dropped.
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
