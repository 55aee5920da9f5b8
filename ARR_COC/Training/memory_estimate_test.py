"""The memory estimate's measurement on the cut Qwen3-VL-2B: what each allocator makes autograd keep."""

import pytest

from ARR_COC.Training.memory_estimate import SMALL_VOCAB, step_bytes

IMAGE, K, QUESTION, ANSWER = 128, 4, 8, 2  # 16 merged tokens: small and quick, same code path


@pytest.fixture(scope="module")
def kept():
    return {(allocator, layers): step_bytes(allocator, layers, SMALL_VOCAB, 1, IMAGE, K, QUESTION, ANSWER)
            for allocator in ("reinforce", "straight_through") for layers in (1, 2)}


def test_reinforce_keeps_nothing_in_the_language_model(kept):
    (one, length), (two, _) = kept[("reinforce", 1)], kept[("reinforce", 2)]
    assert one == two > 0  # only the selector's activations, whatever the depth of the LM
    assert length < kept[("straight_through", 1)][1]  # K tokens reach the LM, not all of them


def test_straight_through_keeps_every_layer(kept):
    (one, length), (two, _) = kept[("straight_through", 1)], kept[("straight_through", 2)]
    per_layer = two - one
    hidden = 2048
    assert per_layer > length * hidden * 2 * 4  # at least a few bf16 copies of the hidden state per token


def test_the_attention_teacher_holds_every_layers_attention_weights():
    """One [heads, L, L] bf16 matrix per layer and sample: what its all-token pass peaks at."""
    from ARR_COC.Training.memory_estimate import teacher_bytes

    one, two = (teacher_bytes(layers, SMALL_VOCAB, 1, IMAGE, K, QUESTION, ANSWER) for layers in (1, 2))
    heads = 16  # the published 2B config
    length = 1 + 16 + 1 + 2 + QUESTION + 3  # chat tokens, 16 visual tokens, question, the answer's opening
    assert two - one == one
    assert one >= heads * length ** 2 * 2 and one < heads * (length + 8) ** 2 * 2
