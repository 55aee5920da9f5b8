"""The cached backbone file: equal weights must be equal bytes, whichever process writes them."""

import hashlib
import subprocess
import sys

import pytest

WRITE = """
import sys, torch
from ARR_COC.Training.pretrain_tiny import save_weights
torch.manual_seed(0)
save_weights({"a": torch.randn(3, 4), "b": torch.arange(5)}, sys.argv[1],
             {"steps": 600, "seed": 1234, "all_token_accuracy": 0.84})
"""


def test_two_processes_write_the_same_bytes(tmp_path):
    """Several metadata keys came out in per-process hash order (two sha256 for one backbone)."""
    digests = set()
    for run in range(4):
        path = tmp_path / f"weights_{run}.safetensors"
        subprocess.run([sys.executable, "-c", WRITE, str(path)], check=True, env={"PYTHONPATH": ":".join(sys.path)})
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_the_short_forward_gives_the_stock_logits():
    """Pretraining trains through language_logits; the selector and the benchmark use the stock forward."""
    import torch

    from ARR_COC.backbone import load_backbone
    from ARR_COC.Training.pretrain_tiny import IMAGE_SIZE, batch_inputs, language_logits
    from ARR_COC.Training.synthetic import SyntheticVQA

    backbone = load_backbone("tiny", IMAGE_SIZE, seed=3)
    samples = SyntheticVQA(4, 0, IMAGE_SIZE, backbone.cell_pixels)
    inputs = batch_inputs(backbone, [samples[i] for i in range(4)])
    with torch.no_grad():
        stock = backbone.model(**inputs, use_cache=False).logits
    short = language_logits(backbone.model, inputs)
    assert stock.abs().max() > 0.1
    torch.testing.assert_close(short, stock, rtol=1e-5, atol=1e-5)


def test_the_short_forward_with_kept_tokens_gives_the_stock_logits():
    """Pruned steps give the LM only some tokens, as a selector does through mm_encoder_outputs."""
    import torch
    from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

    from ARR_COC import sequences
    from ARR_COC.backbone import load_backbone
    from ARR_COC.Training.pretrain_tiny import IMAGE_SIZE, batch_inputs, language_logits, pruned_cells
    from ARR_COC.Training.synthetic import SyntheticVQA

    backbone = load_backbone("tiny", IMAGE_SIZE, seed=3)
    samples = SyntheticVQA(4, 0, IMAGE_SIZE, backbone.cell_pixels)
    samples = [samples[i] for i in range(4)]
    kept = pruned_cells(samples, torch.Generator().manual_seed(5))
    assert kept.shape[1] < 64, "the draw keeps only some tokens"
    inputs = batch_inputs(backbone, samples, kept)
    model = backbone.model
    with torch.no_grad():
        features = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])

        def pick(rows):
            rows = torch.stack(list(rows))
            return tuple(sequences.kept_rows(rows, kept))

        encoder = BaseModelOutputWithDeepstackFeatures(pooler_output=pick(features.pooler_output),
                                                       deepstack_features=[pick(layer) for layer in
                                                                           features.deepstack_features])
        stock = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                      position_ids=inputs["position_ids"], mm_encoder_outputs={"image": encoder},
                      use_cache=False).logits
    torch.testing.assert_close(language_logits(model, inputs), stock, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pruned_steps_keep_the_target_among_a_few_cells_in_raster_order(seed):
    import torch

    from ARR_COC.Training.pretrain_tiny import IMAGE_SIZE, pruned_cells
    from ARR_COC.Training.synthetic import SyntheticVQA

    dataset = SyntheticVQA(8, seed, IMAGE_SIZE, 32)
    samples = [dataset[i] for i in range(8)]
    kept = pruned_cells(samples, torch.Generator().manual_seed(seed))
    again = pruned_cells(samples, torch.Generator().manual_seed(seed))
    assert torch.equal(kept, again), "the same generator state draws the same cells"
    assert 1 <= kept.shape[1] <= 64
    for row, sample in zip(kept, samples):
        assert int(sample["relevant"].nonzero()[0][0]) in row.tolist()
        assert row.tolist() == sorted(set(row.tolist())), "distinct, in raster order"
