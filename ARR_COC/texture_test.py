"""The texture map: 13 distinct, meaningful channels on the merged-token grid."""

import pytest
import torch

from ARR_COC.texture import CHANNELS, NUM_CHANNELS, texture_map

CELL = 32


def blank(colour=(0.1, 0.1, 0.1), cells=4) -> torch.Tensor:
    return torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, cells * CELL, cells * CELL).clone()


def with_block(row: int, column: int, colour=(0.9, 0.1, 0.1)) -> torch.Tensor:
    image = blank()
    image[0, :, row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL] = torch.tensor(colour).view(3, 1, 1)
    return image


def channel(texture: torch.Tensor, name: str) -> torch.Tensor:
    return texture[0, CHANNELS.index(name)]


def test_thirteen_named_channels_on_the_token_grid():
    texture = texture_map(with_block(1, 2), CELL)
    assert NUM_CHANNELS == 13 and len(set(CHANNELS)) == 13
    assert texture.shape == (1, 13, 4, 4)


def test_no_channel_duplicates_another():
    """Seeded noise with four differently coloured patches: one colour alone would make every
    colour channel move with it (G and LAB a anti-correlated at 0.9985-0.9991 over seeds)."""
    images = torch.rand(2, 3, 8 * CELL, 8 * CELL, generator=torch.Generator().manual_seed(0))
    patches = {(0, 0): (0.9, 0.2, 0.1), (64, 32): (0.1, 0.8, 0.2), (128, 128): (0.2, 0.3, 0.9),
               (192, 64): (0.95, 0.95, 0.95)}
    for (y, x), colour in patches.items():
        images[:, :, y:y + 64, x:x + 64] = torch.tensor(colour).view(1, 3, 1, 1)
    texture = texture_map(images, CELL).transpose(0, 1).reshape(NUM_CHANNELS, -1)
    correlation = torch.corrcoef(texture).abs()
    off_diagonal = correlation - torch.eye(NUM_CHANNELS)
    assert off_diagonal.max() < 0.999, f"duplicate channels: {(off_diagonal >= 0.999).nonzero().tolist()}"


@pytest.mark.parametrize("name, strongest_cell", [
    ("red", (1, 2)),              # the red block
    ("lab_a", (1, 2)),            # red is far on the green-red axis
    ("saliency", (1, 2)),         # the one cell unlike the rest of the image
    ("row", (3, 0)),              # bottom row
    ("column", (0, 3)),           # right column
    ("centre_distance", (0, 0)),  # a corner
])
def test_channel_peaks_where_it_should(name, strongest_cell):
    values = channel(texture_map(with_block(1, 2), CELL), name)
    peak = divmod(int(values.argmax()), values.shape[1])
    assert values.flatten().max() > values.flatten().min()
    assert peak == strongest_cell or values[peak] == values[strongest_cell]


@pytest.mark.parametrize("name", ["edge_x", "edge_y", "edge_magnitude", "local_contrast"])
def test_structure_channels_are_zero_on_flat_cells_and_positive_on_edges(name):
    image = blank()
    image[0, :, 40:88, 40:88] = 0.9  # a bright square whose edges cross cells (1, 1)..(2, 2)
    values = channel(texture_map(image, CELL), name)
    assert values[3, 3] == pytest.approx(0.0, abs=1e-6)
    assert values[1, 1] > 0.01


def test_oriented_edges_tell_vertical_from_horizontal():
    vertical_edge = blank()
    vertical_edge[0, :, :, 48:] = 0.9  # brightness changes along x inside column 1
    texture = texture_map(vertical_edge, CELL)
    assert channel(texture, "edge_x")[0, 1] > 0.05
    assert channel(texture, "edge_y")[0, 1] == pytest.approx(0.0, abs=1e-6)


def test_image_must_fit_the_token_grid():
    with pytest.raises(ValueError, match="multiple of the token cell 32"):
        texture_map(torch.rand(1, 3, 100, 96), CELL)
