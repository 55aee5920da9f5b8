"""The 13-channel texture map, one value per merged visual token cell.

The original duplicated two channels; here every channel measures something
different (colour, opponent colour, oriented edges, position, saliency, local
contrast), and the map is pooled on exactly the grid of merged visual tokens
(cell = patch_size * spatial_merge_size pixels), so texture cell j and visual
token j describe the same square of the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHANNELS = (
    "red", "green", "blue",          # mean sRGB colour of the cell
    "lab_lightness", "lab_a",        # perceptual lightness, green-red opponent colour
    "edge_x", "edge_y",              # mean |Sobel| of lightness along x and along y
    "edge_magnitude",                # mean gradient magnitude (corners and diagonals count)
    "row", "column",                 # where the cell is (0..1)
    "centre_distance",               # distance of the cell centre from the image centre
    "saliency",                      # colour distance of the cell from the whole image's mean
    "local_contrast",                # standard deviation of lightness inside the cell
)
NUM_CHANNELS = len(CHANNELS)

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0
_RGB_TO_XYZ = torch.tensor([
    [0.4124, 0.3576, 0.1805],
    [0.2126, 0.7152, 0.0722],
    [0.0193, 0.1192, 0.9505],
])
_WHITE = torch.tensor([0.9505, 1.0, 1.089])


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIE Lab (L in 0..1, a and b roughly -1..1) of sRGB images [B, 3, H, W] in 0..1."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,bjhw->bihw", _RGB_TO_XYZ.to(rgb), linear) / _WHITE.to(rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-8) ** (1 / 3), 7.787 * xyz + 16 / 116)
    lightness = 1.16 * f[:, 1] - 0.16
    a = 5.0 * (f[:, 0] - f[:, 1])
    b = 2.0 * (f[:, 1] - f[:, 2])
    return torch.stack([lightness, a, b], dim=1)


def sobel(lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical gradients of [B, 1, H, W]."""
    kernel_x = _SOBEL_X.to(lightness).view(1, 1, 3, 3)
    padded = F.pad(lightness, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernel_x), F.conv2d(padded, kernel_x.transpose(2, 3))


def position_channels(rows: int, columns: int, like: torch.Tensor) -> torch.Tensor:
    """Row, column and centre distance of each cell centre, [3, rows, columns], in 0..1."""
    row = (torch.arange(rows, dtype=like.dtype, device=like.device) + 0.5) / rows
    column = (torch.arange(columns, dtype=like.dtype, device=like.device) + 0.5) / columns
    grid_row, grid_column = torch.meshgrid(row, column, indexing="ij")
    distance = torch.sqrt((grid_row - 0.5) ** 2 + (grid_column - 0.5) ** 2) / (0.5 * 2 ** 0.5)
    return torch.stack([grid_row, grid_column, distance])


def texture_map(images: torch.Tensor, cell_pixels: int) -> torch.Tensor:
    """[B, 13, H/cell, W/cell] texture of sRGB images [B, 3, H, W] in 0..1."""
    batch, _, height, width = images.shape
    if height % cell_pixels or width % cell_pixels:
        raise ValueError(f"image {height}x{width} is not a multiple of the token cell {cell_pixels}")
    pool = lambda x: F.avg_pool2d(x, cell_pixels)  # noqa: E731
    lab = rgb_to_lab(images)
    gradient_x, gradient_y = sobel(lab[:, :1])
    cell_lab = pool(lab)
    image_lab = lab.mean(dim=(2, 3), keepdim=True)
    saliency = torch.linalg.vector_norm(cell_lab - image_lab, dim=1, keepdim=True)
    cell_mean_lightness = F.interpolate(cell_lab[:, :1], scale_factor=cell_pixels, mode="nearest")
    local_contrast = pool((lab[:, :1] - cell_mean_lightness) ** 2).sqrt()
    positions = position_channels(height // cell_pixels, width // cell_pixels, images).expand(batch, -1, -1, -1)
    return torch.cat([
        pool(images), cell_lab[:, :2],
        pool(gradient_x.abs()), pool(gradient_y.abs()),
        pool(torch.sqrt(gradient_x ** 2 + gradient_y ** 2)),
        positions, saliency, local_contrast,
    ], dim=1)
