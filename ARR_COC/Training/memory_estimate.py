"""GPU memory of one training step on the real backbone, per batch size, in bf16, for each allocator.

    tools/bazel run //ARR_COC/Training:memory_estimate            # table for docs/training.md

Measured, not guessed, without the 2B weights: the published Qwen3-VL-2B
config (ARR_COC/qwen3_vl_2b/config.json) is cut to 1 or 2 text layers,
1 vision block and a small vocabulary, built in bf16 with random weights on
CPU, and one real `ARRCOC.forward(batch, "train")` + backward at the
production image size and K runs per allocator while a saved-tensor hook
adds up the bytes autograd keeps for the backward pass. The step's bytes are
linear in layers, batch and vocabulary, so two points on each axis give
the full model: weights (bf16, all of them) + kept activations + what the
loss over the logits holds at its peak beyond that (bf16 logits, their fp32
copy, and the fp32 log-softmax where autograd does not keep it). The
"attention" allocator also runs the teacher's all-token pass without
gradient; its peak is the eager attention weights of every layer, held
together until the pass ends (measured the same way, at 1 and 2 layers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ARCHITECTURE = os.path.join(os.path.dirname(HERE), "qwen3_vl_2b")
SMALL_VOCAB, LARGER_VOCAB = 1024, 3072
GIB = 2 ** 30


def kept_bytes(step, parameters) -> int:
    """Bytes of the distinct storages autograd saves for backward during `step()`, parameters excluded
    (a linear layer saves its weight for the backward pass; the weights are counted once, apart)."""
    weights = {p.untyped_storage().data_ptr() for p in parameters}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(seen.values())


def small_backbone(layers: int, vocab: int, image_size: int):
    """The 2B architecture cut to `layers` text layers, one vision block, `vocab` tokens; bf16, frozen."""
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration

    from ARR_COC.backbone import Backbone, freeze, image_processor_for

    config = AutoConfig.from_pretrained(ARCHITECTURE)
    config.text_config.num_hidden_layers = layers
    config.text_config.vocab_size = vocab
    config.vision_config.depth = 1
    config.vision_config.deepstack_visual_indexes = [0]
    for offset, name in enumerate(("image_token_id", "video_token_id", "vision_start_token_id",
                                   "vision_end_token_id")):
        setattr(config, name, vocab - 10 + offset)  # Qwen's ids would not fit the cut vocabulary
    torch.manual_seed(0)
    model = freeze(Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16))
    return Backbone(model, stand_in_tokenizer(config), image_processor_for(config, image_size), "memory-estimate")


def stand_in_tokenizer(config):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = config.text_config.vocab_size
    special = {"<|image_pad|>": config.image_token_id, "<|video_pad|>": config.video_token_id,
               "<|vision_start|>": config.vision_start_token_id, "<|vision_end|>": config.vision_end_token_id,
               "<|im_start|>": vocab - 5, "<|im_end|>": vocab - 4, "<|endoftext|>": vocab - 3}
    words = {word: index for index, word in enumerate(("<unk>", "user", "assistant", "word"))}
    core = Tokenizer(models.WordLevel(vocab={**words, **special}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(list(special))
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>")


def small_model(allocator: str, layers: int, vocab: int, batch_size: int, image_size: int, k: int,
                question_tokens: int, answer_tokens: int):
    """(ARRCOC on the cut backbone, in train mode, and a batch of random images with word questions)."""
    from ARR_COC.model import build_model
    from ARR_COC.preprocess import collate

    backbone = small_backbone(layers, vocab, image_size)
    model = build_model(backbone, k, image_size, allocator=allocator).train()
    rng = np.random.default_rng(0)
    samples = [{"image": rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8),
                "question": " ".join(["word"] * question_tokens), "answer": " ".join(["word"] * answer_tokens)}
               for _ in range(batch_size)]
    return model, collate(samples, backbone, image_size, question_tokens, answer_tokens)


def teacher_bytes(layers: int, vocab: int, batch_size: int, image_size: int, k: int, question_tokens: int,
                  answer_tokens: int) -> int:
    """Bytes of the attention weights the "attention" allocator's all-token pass holds at its end."""
    model, batch = small_model("attention", layers, vocab, batch_size, image_size, k, question_tokens,
                               answer_tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.encode_images(batch["pixel_values"], batch["image_grid_thw"])
        attentions, _ = model.all_token_attentions(batch, features)
    return sum(layer.nbytes for layer in attentions)


def step_bytes(allocator: str, layers: int, vocab: int, batch_size: int, image_size: int, k: int,
               question_tokens: int, answer_tokens: int) -> tuple[int, int]:
    """(kept activation bytes, sequence length) of one training step of the cut model."""
    model, batch = small_model(allocator, layers, vocab, batch_size, image_size, k, question_tokens, answer_tokens)
    output = {}

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output.update(model(batch, "train"))
        output["loss"].backward()

    kept = kept_bytes(step, model.parameters())
    return kept, int(output["inputs"]["input_ids"].shape[1])


def estimate(image_size: int, k: int, question_tokens: int, answer_tokens: int, batch_sizes: list[int]) -> dict:
    from transformers import AutoConfig

    full = AutoConfig.from_pretrained(ARCHITECTURE)
    layers, vocab = full.text_config.num_hidden_layers, full.text_config.vocab_size
    with torch.device("meta"):
        from transformers import Qwen3VLForConditionalGeneration

        weights = sum(p.numel() for p in Qwen3VLForConditionalGeneration._from_config(full).parameters()) * 2
    args = (image_size, k, question_tokens, answer_tokens)
    table = {"weights_gib": round(weights / GIB, 2), "image_size": image_size, "k": k,
             "question_tokens": question_tokens, "answer_tokens": answer_tokens, "allocators": {}}
    for allocator in ("attention", "reinforce", "straight_through"):
        base, length = step_bytes(allocator, 1, SMALL_VOCAB, 1, *args)
        per_layer = step_bytes(allocator, 2, SMALL_VOCAB, 1, *args)[0] - base
        per_vocab = (step_bytes(allocator, 1, LARGER_VOCAB, 1, *args)[0] - base) / (LARGER_VOCAB - SMALL_VOCAB)
        two = step_bytes(allocator, 1, SMALL_VOCAB, 2, *args)[0]
        per_sample_fixed = two - base  # what one more sample adds at 1 layer, small vocabulary
        per_sample = per_sample_fixed + (layers - 1) * per_layer + (vocab - SMALL_VOCAB) * per_vocab
        # At the loss, beyond what autograd keeps: the bf16 logits (returned), their fp32 copy, and the fp32
        # log-softmax, which straight-through keeps for backward (so it is in per_sample already).
        logits_peak = length * vocab * (2 + 4 + (0 if allocator == "straight_through" else 4))
        teacher_peak = 0
        if allocator == "attention":  # the teacher pass runs before the K-token pass and is freed by then
            one = teacher_bytes(1, SMALL_VOCAB, 1, *args)
            teacher_peak = one + (layers - 1) * (teacher_bytes(2, SMALL_VOCAB, 1, *args) - one)
        rows = {str(batch): round((weights + batch * (per_sample + max(logits_peak, teacher_peak))) / GIB, 2)
                for batch in batch_sizes}
        table["allocators"][allocator] = {
            "sequence_length": length, "kept_per_sample_gib": round(per_sample / GIB, 3),
            "kept_per_layer_per_sample_mib": round(per_layer / 2 ** 20, 2),
            "logits_peak_per_sample_gib": round(logits_peak / GIB, 3),
            "teacher_attention_per_sample_gib": round(teacher_peak / GIB, 3), "total_gib_by_batch_size": rows}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--question-tokens", type=int, default=48)
    parser.add_argument("--answer-tokens", type=int, default=8)
    parser.add_argument("--batch-sizes", default="1,2,4,8,16")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table = estimate(args.image_size, args.k, args.question_tokens, args.answer_tokens,
                     [int(b) for b in args.batch_sizes.split(",")])
    print(json.dumps(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
