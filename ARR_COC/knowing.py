"""Three ways of knowing which visual tokens matter, each a learned score map [B, N].

- information: what a cell holds by itself (its texture and its visual token),
  the same whatever is asked;
- perspectival: how a cell stands out from its neighbourhood (a spatial
  convolution over the texture map), also query-free;
- participatory: how well a cell fits the question (query-conditioned cosine
  similarity between projected visual tokens + texture and the query).
"""

from __future__ import annotations

import torch
from torch import nn

from ARR_COC.texture import NUM_CHANNELS


def standardize_cells(texture: torch.Tensor) -> torch.Tensor:
    """Per image and channel, zero mean and unit spread over cells, so scales do not dominate."""
    mean = texture.mean(dim=(2, 3), keepdim=True)
    spread = texture.std(dim=(2, 3), keepdim=True, unbiased=False)
    return (texture - mean) / (spread + 1e-3)


def cells_to_tokens(maps: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H*W, C] in the raster order of the merged visual tokens."""
    return maps.flatten(2).transpose(1, 2)


class InformationScorer(nn.Module):
    """What a cell carries on its own: an MLP over its texture and its (frozen) visual token."""

    def __init__(self, token_dim: int, hidden: int = 64):
        super().__init__()
        self.token_norm = nn.LayerNorm(token_dim)
        self.mlp = nn.Sequential(nn.Linear(token_dim + NUM_CHANNELS, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, texture: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.token_norm(tokens), cells_to_tokens(texture)], dim=-1)
        return self.mlp(features).squeeze(-1)


class PerspectivalScorer(nn.Module):
    """What stands out from its surroundings: 3x3 convolutions over the texture map."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(NUM_CHANNELS, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, 1, 3, padding=1),
        )

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        return self.conv(texture).flatten(1)


class ParticipatoryScorer(nn.Module):
    """What the question asks for: cosine similarity of cell and query in a learned shared space."""

    def __init__(self, token_dim: int, query_dim: int, shared: int = 64):
        super().__init__()
        self.token_norm = nn.LayerNorm(token_dim)
        self.cell_projection = nn.Linear(token_dim + NUM_CHANNELS, shared)
        self.query_projection = nn.Sequential(nn.LayerNorm(query_dim), nn.Linear(query_dim, shared))
        self.log_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, texture: torch.Tensor, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        cells = self.cell_projection(torch.cat([self.token_norm(tokens), cells_to_tokens(texture)], dim=-1))
        query = self.query_projection(query)
        similarity = torch.einsum("bnd,bd->bn", nn.functional.normalize(cells, dim=-1),
                                  nn.functional.normalize(query, dim=-1))
        return similarity * self.log_scale.exp()
