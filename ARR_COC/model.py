"""ARR-COC in front of a frozen Qwen3-VL: score the merged visual tokens, keep K, answer.

The vision encoder runs once per batch on what it really takes (flattened
patches + image_grid_thw). Selection happens on its merged tokens
(pooler_output) and, with the same rows, on its deepstack features; the
language model gets them through `mm_encoder_outputs` with hand-built M-RoPE
positions (see sequences.py). Modes:

- "train": with the "reinforce" allocator, K tokens sampled from the scores
  (Gumbel top-K) really kept, and the returned loss carries the REINFORCE
  gradient to the scores (self-critical baseline: one more LM pass, without
  gradient, with the deterministic top-K); with "straight_through", all N placeholders, each
  token scaled by the straight-through top-K mask (attending.py); with "attention", the
  deterministic top-K kept, and the loss's gradient pulls softmax(scores) towards the visual
  tokens the frozen LM's answer reads when it sees all of them (`attention_flow`, sharpened and
  spread a little to each token's neighbours);
- "select": the K best tokens really kept (evaluation, inference);
- "random": K random tokens; "all": every token (benchmark baselines).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ARR_COC import attending, sequences, storage
from ARR_COC.backbone import Backbone, load_backbone
from ARR_COC.balancing import Balancer
from ARR_COC.knowing import InformationScorer, ParticipatoryScorer, PerspectivalScorer
from ARR_COC.texture import CHANNELS, texture_map

MODES = ("train", "select", "random", "all")
ALLOCATORS = ("reinforce", "straight_through", "attention")
# The "attention" allocator distils its teacher raised to this power (attending.sharpen). With the
# rollout teacher on backbone seed 1237, selector recall@6 0.84 at power 1, 0.92 at 2, 0.94 at 4 and 8;
# with the one before it, the same order on three backbones (docs/training.md).
TEACHER_POWER = 4
# ... and spread to each token's 8 neighbours with this share (attending.spread_to_neighbours). With the
# teacher before the rollout, selector seed 0 on two backbones: question-swap overlap 0.40 / 0.45 ->
# 0.29 / 0.36, accuracy 0.943 / 0.875 -> 0.948 / 0.859; 0.1 cost more accuracy, 0.05 left more overlap
# (docs/training.md).
NEIGHBOUR_SHARE = 0.075
# The teacher's rollout passes this share of each layer's input on through attention, the rest through
# the residual path. How often the teacher puts the target first, backbone seeds 1234-1237 and 1239:
# 0.87 / 0.98 / 0.83 / 0.77 / 0.79 at 0.5, 0.92 / 0.92 / 0.93 / 0.82 / 0.95 at 0.8, 0.71 / 0.45 / 0.95 /
# 0.84 / 0.95 at 1 (docs/training.md).
ROLLOUT_ATTENTION_SHARE = 0.8
SELECTOR_WEIGHTS = "selector.safetensors"
SELECTOR_CONFIG = "selector_config.json"
PROVENANCE = "provenance.json"  # what the selector was trained from: base model and dataset revisions, figures


@dataclass
class SelectorConfig:
    """What is needed to rebuild the selector around a backbone."""

    num_visual_tokens: int
    token_dim: int
    query_dim: int
    image_size: int
    base_model: str
    temperature: float = 1.0
    allocator: str = "attention"
    texture_channels: tuple[str, ...] = CHANNELS
    base_model_revision: str = ""   # the pinned hub commit of base_model ("" for tiny or a folder)


class Selector(nn.Module):
    """The trainable part: three scorers and the balancer (about 30 k parameters on the tiny model)."""

    def __init__(self, config: SelectorConfig):
        super().__init__()
        self.config = config
        self.information = InformationScorer(config.token_dim)
        self.perspectival = PerspectivalScorer()
        self.participatory = ParticipatoryScorer(config.token_dim, config.query_dim)
        self.balancer = Balancer(config.query_dim)

    def forward(self, texture: torch.Tensor, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """[B, N] relevance of each merged visual token for this query."""
        grid = texture.shape[2:]
        texture, tokens, query = texture.float(), tokens.float(), query.float()
        scores = [self.information(texture, tokens), self.perspectival(texture),
                  self.participatory(texture, tokens, query)]
        return self.balancer(scores, query, grid)


@dataclass
class VisualFeatures:
    tokens: torch.Tensor            # [B, N, D] merged visual tokens
    deepstack: list[torch.Tensor]   # per deepstack layer [B, N, D]
    grid: tuple[int, int]           # merged-token grid (H, W)


class ARRCOC(nn.Module):
    """Frozen backbone + trainable selector."""

    def __init__(self, backbone: Backbone, config: SelectorConfig):
        super().__init__()
        self.backbone = backbone
        self.language_vision_model = backbone.model
        self.selector = Selector(config)
        self.template = sequences.ChatTemplate.from_tokenizer(backbone.tokenizer)
        # Draws the "reinforce" allocator's samples; its own generator (not the global one, which
        # data loaders also draw from) so that a checkpoint can save it and a resumed run repeat them.
        self.sampling = torch.Generator()

    @property
    def num_visual_tokens(self) -> int:
        return self.selector.config.num_visual_tokens

    def train(self, mode: bool = True):
        """Only the selector switches mode: the frozen backbone stays in eval (no dropout)."""
        self.selector.train(mode)
        self.training = mode
        return self

    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> VisualFeatures:
        """Run the frozen vision encoder once; all images of a batch share one grid."""
        merge = self.backbone.merge_size
        grids = {tuple(row) for row in image_grid_thw.tolist()}
        if len(grids) != 1:
            raise ValueError(f"a batch must share one image grid, got {sorted(grids)}")
        _, height, width = grids.pop()
        output = self.language_vision_model.model.get_image_features(pixel_values, image_grid_thw)
        tokens = torch.stack(output.pooler_output)
        deepstack = [torch.stack(layer) for layer in output.deepstack_features]
        return VisualFeatures(tokens, deepstack, (height // merge, width // merge))

    @torch.no_grad()
    def query_embedding(self, questions: list[list[int]]) -> torch.Tensor:
        """[B, D] mean of the frozen input embeddings of the question tokens."""
        embed = self.language_vision_model.get_input_embeddings()
        device = embed.weight.device
        return torch.stack([embed(torch.tensor(q or [self.template.pad], device=device)).mean(0) for q in questions])

    def scores(self, batch: dict, features: VisualFeatures) -> torch.Tensor:
        """[B, N] selector scores, in fp32 even under bf16 autocast: top-K and the sampling compare
        small score differences, and training and evaluation must rank tokens alike."""
        with torch.autocast(features.tokens.device.type, enabled=False):
            texture = texture_map(batch["images"].float(), self.backbone.cell_pixels)
            return self.selector(texture, features.tokens, self.query_embedding(batch["question_ids"]))

    def kept_tokens(self, scores: torch.Tensor, mode: str, generator: torch.Generator | None = None):
        """(kept indices [B, K'], row scale [B, K'] or None) for a mode."""
        batch, n = scores.shape
        k = self.num_visual_tokens
        everything = torch.arange(n, device=scores.device).expand(batch, -1)
        if mode == "train" and self.selector.config.allocator != "attention":
            if self.selector.config.allocator == "reinforce":
                return attending.gumbel_top_k(scores, k, self.selector.config.temperature,
                                              generator or self.sampling), None
            return everything, attending.straight_through_mask(scores, k, self.selector.config.temperature)
        if mode in ("select", "train"):
            return attending.top_k_indices(scores, k), None
        if mode == "random":
            return attending.random_indices(batch, n, k, generator).to(scores.device), None
        if mode == "all":
            return everything, None
        raise ValueError(f"mode {mode!r} is not one of {MODES}")

    def encoder_outputs(self, features: VisualFeatures, kept: torch.Tensor, scale: torch.Tensor | None):
        """mm_encoder_outputs with the kept rows of pooler_output and of every deepstack layer."""
        from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

        def pick(rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
            chosen = sequences.kept_rows(rows, kept)
            if scale is not None:
                chosen = chosen * scale.unsqueeze(-1).to(chosen.dtype)
            return tuple(chosen)

        return {"image": BaseModelOutputWithDeepstackFeatures(
            pooler_output=pick(features.tokens), deepstack_features=[pick(layer) for layer in features.deepstack])}

    def language_model_pass(self, batch: dict, features: VisualFeatures, kept: torch.Tensor,
                            scale: torch.Tensor | None, device) -> tuple:
        """(LM output, its inputs) with the kept tokens [B, K] given in raster order."""
        inputs = sequences.build_batch(self.template, batch["question_ids"], batch.get("answer_ids"),
                                       kept, features.grid)
        inputs = {name: value.to(device) for name, value in inputs.items()}
        output = self.language_vision_model(
            **inputs, mm_encoder_outputs=self.encoder_outputs(features, kept, scale), use_cache=False)
        return output, inputs

    def forward(self, batch: dict, mode: str = "train", generator: torch.Generator | None = None) -> dict:
        """Loss (answer tokens only), logits, inputs and the kept token indices."""
        features = self.encode_images(batch["pixel_values"], batch["image_grid_thw"])
        scores = self.scores(batch, features)
        kept, scale = self.kept_tokens(scores, mode, generator)
        reinforce = mode == "train" and self.selector.config.allocator == "reinforce"
        distil = mode == "train" and self.selector.config.allocator == "attention"
        # The teacher's all-token pass first: its attention weights are freed before the logits exist.
        target = self.attention_flow(batch, features) if distil else None
        order, kept = kept, kept.sort(dim=1).values  # the LM reads kept tokens in raster order, always
        output, inputs = self.language_model_pass(batch, features, kept, scale, scores.device)
        loss = output.loss
        if reinforce:
            # Value: the answer loss of the sampled selection; gradient: REINFORCE on the scores, with
            # the loss of the deterministic top-K selection of each sample as its baseline.
            best = attending.top_k_indices(scores, self.num_visual_tokens)
            with torch.no_grad():
                greedy, _ = self.language_model_pass(batch, features, best, None, scores.device)
            loss = loss.detach() + attending.reinforce_surrogate(
                scores, order, answer_cost(output.logits, inputs["labels"]),
                answer_cost(greedy.logits, inputs["labels"]), self.selector.config.temperature)
        elif distil:
            # Value: the answer loss with the top-K kept; gradient: towards what the answer reads.
            loss = loss.detach() + attending.distillation_surrogate(
                scores, distillation_target(target, features.grid), self.selector.config.temperature)
        selected = attending.top_k_indices(scores, self.num_visual_tokens) if mode == "train" else kept
        return {"loss": loss, "logits": output.logits, "inputs": inputs, "kept": selected,
                "scores": scores, "grid": features.grid}

    @torch.no_grad()
    def all_token_attentions(self, batch: dict, features: VisualFeatures) -> tuple[tuple[torch.Tensor, ...], dict]:
        """(per layer [B, heads, L, L] attention weights, inputs) of the frozen LM given all N visual
        tokens and the prompt, no answer. Logits for the last position only: the teacher reads none,
        and on the 2B model the full ones would cost L x 151,936 values per sample."""
        batch_size, n = features.tokens.shape[:2]
        everything = torch.arange(n).expand(batch_size, -1)
        inputs = sequences.build_batch(self.template, batch["question_ids"], None, everything, features.grid)
        inputs = {name: value.to(features.tokens.device) for name, value in inputs.items() if name != "labels"}
        model = self.language_vision_model
        previous = model.config._attn_implementation
        model.set_attn_implementation("eager")  # the fused kernels do not return attention weights
        try:
            output = model(**inputs, mm_encoder_outputs=self.encoder_outputs(features, everything, None),
                           output_attentions=True, use_cache=False, logits_to_keep=1)
        finally:
            model.set_attn_implementation(previous)
        return output.attentions, inputs

    @torch.no_grad()
    def attention_flow(self, batch: dict, features: VisualFeatures) -> torch.Tensor:
        """[B, N] how much of what the frozen LM reads where it starts the answer comes from each
        visual token, with all N given: attention rollout. Each layer passes a row on through its
        head-mean attention (share ROLLOUT_ATTENTION_SHARE) and its residual path (the rest); the row
        starts at the position that predicts the answer's first token. It follows the question word
        to the object it picked out, because the answer reads that word. The question words' own
        attention (the maximum over words and layers, the teacher before this one) also counted the
        objects other words' heads looked at, and on some backbones those outweighed the target
        (docs/training.md). No labels."""
        n = features.tokens.shape[1]
        attentions, inputs = self.all_token_attentions(batch, features)
        mask = inputs["attention_mask"]
        flow = nn.functional.one_hot(mask.sum(1) - 1, mask.shape[1]).float()  # right-padded: last real position
        for layer in reversed(attentions):
            through_attention = torch.einsum("bq,bqk->bk", flow, layer.mean(1, dtype=torch.float32))
            flow = ROLLOUT_ATTENTION_SHARE * through_attention + (1 - ROLLOUT_ATTENTION_SHARE) * flow
        start = len(self.template.before_image)
        image = flow[:, start:start + n]
        return image / image.sum(1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def generate(self, batch: dict, mode: str = "select", max_new_tokens: int = 8,
                 generator: torch.Generator | None = None) -> tuple[list[list[int]], torch.Tensor]:
        """Greedy answers (token ids, up to <|im_end|>) with K kept tokens, and the kept indices."""
        features = self.encode_images(batch["pixel_values"], batch["image_grid_thw"])
        kept, _ = self.kept_tokens(self.scores(batch, features), mode if mode != "train" else "select", generator)
        return self.answer(batch, features, kept, max_new_tokens), kept

    @torch.no_grad()
    def answer(self, batch: dict, features: VisualFeatures, kept: torch.Tensor,
               max_new_tokens: int = 8) -> list[list[int]]:
        """Greedy answers given the kept token indices [B, K'] (any rule: the benchmark's controls too)."""
        kept = kept.sort(dim=1).values
        inputs = sequences.build_batch(self.template, batch["question_ids"], None, kept, features.grid, "left")
        device = features.tokens.device
        ids, mask, positions = (inputs[k].to(device) for k in ("input_ids", "attention_mask", "position_ids"))
        encoder_outputs = self.encoder_outputs(features, kept, None)
        answers = [[] for _ in range(ids.shape[0])]
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)
        for _ in range(max_new_tokens):
            logits = self.language_vision_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                                mm_encoder_outputs=encoder_outputs, use_cache=False).logits
            next_token = logits[:, -1].argmax(-1)
            for i, token in enumerate(next_token.tolist()):
                if not finished[i] and token != self.template.end:
                    answers[i].append(token)
            finished |= next_token == self.template.end
            if finished.all():
                break
            ids = torch.cat([ids, next_token[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = torch.cat([positions, positions[:, :, -1:] + 1], dim=2)
        return answers

    def export(self, directory: str, provenance: dict | None = None) -> None:
        """Write the selector weights and config (all that load_selector needs besides the backbone).

        `directory` is a local folder or any fsspec URL (gs://...); `provenance`
        (dataset and base-model revisions, figures) is written beside them.
        """
        from safetensors.torch import save

        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.selector.state_dict().items()}
        files = {SELECTOR_WEIGHTS: save(state),
                 SELECTOR_CONFIG: json.dumps(asdict(self.selector.config), indent=2).encode()}
        if provenance is not None:
            files[PROVENANCE] = json.dumps(provenance, indent=2, sort_keys=True).encode()
        storage.write_files(directory, files)


def distillation_target(teacher: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[B, N] what the "attention" allocator's scores are pulled towards: the teacher sharpened
    (TEACHER_POWER) and spread to each token's neighbours (NEIGHBOUR_SHARE)."""
    return attending.spread_to_neighbours(attending.sharpen(teacher, TEACHER_POWER), grid, NEIGHBOUR_SHARE)


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] mean next-token cross-entropy over each sample's answer tokens (labels -100 elsewhere)."""
    shifted = labels[:, 1:]
    token_loss = nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), shifted,
                                             ignore_index=-100, reduction="none")
    counts = (shifted != -100).sum(1).clamp_min(1)
    return token_loss.sum(1) / counts


def answer_cost(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] minus the probability the LM gives the right answer (per token, geometric mean): the
    REINFORCE cost. Bounded, unlike the answer loss: with the loss as cost, a selection of
    distractors (a confidently wrong answer, loss ~4) cost more than one of empty background
    (a guess, loss ~1.8), so the selector learnt to keep background and never found the target."""
    return -torch.exp(-per_sample_loss(logits, labels))


def load_selector(directory: str, base_model: str | None = None, weights_path: str | None = None,
                  dtype: torch.dtype = torch.float32) -> ARRCOC:
    """Load a backbone plus an exported selector for evaluation or inference.

    `directory` is what `ARRCOC.export` wrote (a local folder or any fsspec
    URL, read in place). `base_model` overrides the backbone (and its pinned
    revision) recorded at export time (e.g. a local copy of it);
    `weights_path` gives the tiny backbone its weights.

        model = load_selector("gs://bucket/run/model")
        answers, kept = model.generate(batch)
    """
    from safetensors.torch import load

    raw = json.loads(storage.read_file(directory, SELECTOR_CONFIG))
    raw["texture_channels"] = tuple(raw["texture_channels"])
    if raw["texture_channels"] != CHANNELS:
        raise ValueError(f"selector was trained on texture channels {raw['texture_channels']}, this code has {CHANNELS}")
    config = SelectorConfig(**raw)
    revision = None if base_model else (config.base_model_revision or None)
    backbone = load_backbone(base_model or config.base_model, config.image_size, weights_path, dtype, revision=revision)
    model = ARRCOC(backbone, config)
    model.selector.load_state_dict(load(storage.read_file(directory, SELECTOR_WEIGHTS)))
    return model.eval()


def build_model(backbone: Backbone, num_visual_tokens: int, image_size: int, seed: int = 0,
                allocator: str = "attention", temperature: float = 1.0, base_model_revision: str = "") -> ARRCOC:
    """A fresh selector (seeded) around a loaded backbone."""
    if allocator not in ALLOCATORS:
        raise ValueError(f"allocator {allocator!r} is not one of {ALLOCATORS}")
    torch.manual_seed(seed)
    hidden = backbone.text_hidden_size
    config = SelectorConfig(num_visual_tokens, hidden, hidden, image_size, backbone.name, temperature, allocator,
                            base_model_revision=base_model_revision)
    model = ARRCOC(backbone, config)
    model.sampling.manual_seed(seed)
    return model
