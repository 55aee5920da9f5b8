"""Balance the three ways of knowing per query, with spatial context.

The question decides how much each scorer counts (softmax weights from the
query), and a 3x3 convolution over the three stacked maps lets a cell's final
score depend on its neighbours (an object spans several cells).
"""

from __future__ import annotations

import torch
from torch import nn

NUM_SCORERS = 3


class Balancer(nn.Module):
    def __init__(self, query_dim: int, hidden: int = 32):
        super().__init__()
        self.weigher = nn.Sequential(nn.LayerNorm(query_dim), nn.Linear(query_dim, hidden), nn.GELU(),
                                     nn.Linear(hidden, NUM_SCORERS))
        self.spatial_context = nn.Conv2d(NUM_SCORERS, 1, 3, padding=1)

    def weights(self, query: torch.Tensor) -> torch.Tensor:
        """[B, 3] softmax weights of (information, perspectival, participatory)."""
        return torch.softmax(self.weigher(query), dim=-1)

    def forward(self, scores: list[torch.Tensor], query: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Combine [B, N] score maps into one [B, N] relevance score."""
        stacked = torch.stack(scores, dim=1)
        weighted = (stacked * self.weights(query).unsqueeze(-1)).sum(dim=1)
        neighbourhood = self.spatial_context(stacked.view(stacked.shape[0], NUM_SCORERS, *grid)).flatten(1)
        return weighted + neighbourhood
