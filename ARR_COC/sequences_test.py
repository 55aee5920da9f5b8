"""Sequences: M-RoPE positions of kept tokens and answer-only labels."""

import pytest
import torch

from ARR_COC import sequences
from ARR_COC.sequences import IGNORE

TEMPLATE = sequences.ChatTemplate(before_image=(6, 10, 2), after_image=(3,), before_answer=(1, 6, 11),
                                  end=1, image_pad=4, pad=0)


@pytest.mark.parametrize("kept, grid, expected_image_positions, text_resumes_at", [
    # 4x4 grid, keep cells 1 (0,1), 6 (1,2), 15 (3,3): (t, h, w) = (3, 3 + row, 3 + col)
    ([1, 6, 15], (4, 4), [(3, 3, 4), (3, 4, 5), (3, 6, 6)], 7),
    # 2x3 grid, keep everything: stock raster positions, text resumes at 3 + max(2, 3)
    ([0, 1, 2, 3, 4, 5], (2, 3), [(3, 3, 3), (3, 3, 4), (3, 3, 5), (3, 4, 3), (3, 4, 4), (3, 4, 5)], 6),
])
def test_kept_tokens_keep_their_true_position(kept, grid, expected_image_positions, text_resumes_at):
    batch = sequences.build_batch(TEMPLATE, [[20, 21]], [[30]], torch.tensor([kept]), grid)
    positions = batch["position_ids"][:, 0]
    ids = batch["input_ids"][0]
    image = (ids == TEMPLATE.image_pad).nonzero().flatten()
    assert len(image) == len(kept)
    assert [tuple(positions[:, i].tolist()) for i in image] == expected_image_positions
    assert positions[:, :3].tolist() == [[0, 1, 2]] * 3
    after = image[-1] + 1
    assert positions[:, after].tolist() == [text_resumes_at] * 3


def test_labels_are_the_answer_and_its_end_only():
    batch = sequences.build_batch(TEMPLATE, [[20, 21, 22], [20]], [[30, 31], [32]], torch.tensor([[0, 1], [2, 3]]), (2, 2))
    for row, answer in enumerate([[30, 31], [32]]):
        labels = batch["labels"][row]
        kept_labels = labels[labels != IGNORE].tolist()
        assert kept_labels == answer + [TEMPLATE.end]
        ids = batch["input_ids"][row]
        assert ids[labels != IGNORE].tolist() == answer + [TEMPLATE.end]
    assert (batch["labels"][1][batch["attention_mask"][1] == 0] == IGNORE).all()


def test_left_padding_puts_prompts_flush_right_without_labels():
    batch = sequences.build_batch(TEMPLATE, [[20, 21, 22], [20]], None, torch.tensor([[0], [1]]), (1, 2), "left")
    assert batch["attention_mask"][1, :2].tolist() == [0, 0]
    assert batch["input_ids"][:, -1].tolist() == [TEMPLATE.before_answer[-1]] * 2
    assert (batch["labels"] == IGNORE).all()
    assert batch["position_ids"][:, 1, 2].tolist() == [0, 0, 0]


@pytest.mark.parametrize("kept", [[[0, 2], [3, 1]], [[1, 1], [0, 3]], [[3], [2]]])
def test_kept_rows_takes_each_images_own_rows_in_kept_order(kept):
    rows = torch.arange(2 * 4 * 3).view(2, 4, 3)
    kept = torch.tensor(kept)
    expected = torch.stack([rows[b, kept[b]] for b in range(2)])
    assert torch.equal(sequences.kept_rows(rows, kept), expected)
