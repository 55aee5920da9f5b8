"""Token sequences for the language model with K kept visual tokens.

Each sample reads: <|im_start|>user <|vision_start|> [K image pads]
<|vision_end|> question <|im_end|> <|im_start|>assistant answer <|im_end|>.
M-RoPE position ids [3, B, L] are built by hand so that each kept token keeps
its true (t, h, w) = (s0, s0 + row, s0 + col) and the text after the image
resumes at s0 + max(H, W), exactly as for the full image (docs/architecture.md).
Labels are the answer and its closing <|im_end|>; everything else is -100.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass(frozen=True)
class ChatTemplate:
    """Token ids of the fixed parts of the prompt, taken from the backbone's tokenizer."""

    before_image: tuple[int, ...]
    after_image: tuple[int, ...]
    before_answer: tuple[int, ...]
    end: int
    image_pad: int
    pad: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "ChatTemplate":
        encode = lambda text: tuple(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
        return cls(
            before_image=encode("<|im_start|>user\n<|vision_start|>"),
            after_image=encode("<|vision_end|>"),
            before_answer=encode("<|im_end|>\n<|im_start|>assistant\n"),
            end=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            image_pad=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
            pad=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )


def sample_tokens(template: ChatTemplate, num_visual: int, question: list[int],
                  answer: list[int] | None) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one sample; with no answer the prompt ends where the answer starts."""
    prompt = (list(template.before_image) + [template.image_pad] * num_visual + list(template.after_image)
              + list(question) + list(template.before_answer))
    if answer is None:
        return prompt, [IGNORE] * len(prompt)
    target = list(answer) + [template.end]
    return prompt + target, [IGNORE] * len(prompt) + target


def sample_positions(start: int, kept_cells: torch.Tensor, grid: tuple[int, int], length: int) -> torch.Tensor:
    """[3, length] positions: text before the image, kept tokens at true (t, h, w), text after."""
    before = torch.arange(start).expand(3, -1)
    rows, columns = kept_cells[:, 0], kept_cells[:, 1]
    image = torch.stack([torch.full_like(rows, start), start + rows, start + columns])
    resume = start + max(grid)
    after = (resume + torch.arange(length - start - len(kept_cells))).expand(3, -1)
    return torch.cat([before, image, after], dim=1)


def kept_rows(rows: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """[B, K, D]: each image's rows [B, N, D] at its kept token indices [B, K], in kept's order.
    The one place the LM's visual inputs are cut down: selector passes and pruned pretraining."""
    return torch.gather(rows, 1, kept.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))


def cells_of(indices: torch.Tensor, grid_width: int) -> torch.Tensor:
    """[..., 2] (row, column) of raster token indices."""
    return torch.stack([indices // grid_width, indices % grid_width], dim=-1)


def build_batch(template: ChatTemplate, questions: list[list[int]], answers: list[list[int]] | None,
                kept: torch.Tensor, grid: tuple[int, int], padding_side: str = "right") -> dict:
    """input_ids, attention_mask, position_ids [3, B, L] and labels for kept token indices [B, K]."""
    pieces = [sample_tokens(template, kept.shape[1], question, None if answers is None else answers[i])
              for i, question in enumerate(questions)]
    length = max(len(ids) for ids, _ in pieces)
    batch = len(pieces)
    input_ids = torch.full((batch, length), template.pad, dtype=torch.long)
    labels = torch.full((batch, length), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((batch, length), dtype=torch.long)
    position_ids = torch.zeros((3, batch, length), dtype=torch.long)
    cells = cells_of(kept.cpu(), grid[1])
    for i, (ids, sample_labels) in enumerate(pieces):
        span = slice(length - len(ids), length) if padding_side == "left" else slice(0, len(ids))
        input_ids[i, span] = torch.tensor(ids)
        labels[i, span] = torch.tensor(sample_labels)
        attention_mask[i, span] = 1
        position_ids[:, i, span] = sample_positions(len(template.before_image), cells[i], grid, len(ids))
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
            "labels": labels}
