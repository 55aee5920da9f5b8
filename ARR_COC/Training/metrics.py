"""Metrics: JSON lines on stdout always; TensorBoard and W&B only when configured.

TensorBoard writes to AIP_TENSORBOARD_LOG_DIR (a local folder or any fsspec
URL). For a URL the events go to a local folder and, at every flush, each
event file is copied whole through fsspec: TensorBoard's own fsspec writer
appends on each flush, and gcsfs cannot append (an append rewrites the
object with only the new bytes), so its gs:// event files lose records.

Evaluation scores answers with the VQA accuracy of the VQAv2 evaluation
(`vqa_accuracy`; its normalisation table is answer_normalization.json).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import tempfile

from ARR_COC import storage

# The answer normalisation of the official VQA evaluation script (number words, articles, contractions).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "answer_normalization.json")) as _handle:
    _NORMALIZATION = json.load(_handle)
NUMBER_WORDS = _NORMALIZATION["number_words"]
ARTICLES = frozenset(_NORMALIZATION["articles"])
CONTRACTIONS = _NORMALIZATION["contractions"]
HUMANS_FOR_FULL_CREDIT = 3


def normalize_answer(text: str) -> str:
    """Lower case; punctuation dropped (a period between digits kept, "," in numbers dropped);
    number words as digits; articles dropped; common contractions restored."""
    text = text.lower().replace("\n", " ").replace("\t", " ").strip()
    text = re.sub(r"(?<=\d),(?=\d)", "", text)
    text = re.sub(r"(?!(?<=\d)\.(?=\d))[^\w\s']", " ", text)
    words = [NUMBER_WORDS.get(word, word) for word in text.split() if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """The official VQA accuracy of one prediction against the human answers.

    For each leave-one-out subset of the annotators (10 choose 9 for VQAv2):
    min(1, annotators in the subset who gave this answer / 3), averaged over
    the subsets. So 1 matching annotator of 10 scores 0.3, 2 score 0.6, 3
    score 0.9, 4 or more 1.0. With a single reference answer (synthetic data)
    it is exact match.
    """
    predicted = normalize_answer(prediction)
    matches = [normalize_answer(answer) == predicted for answer in answers]
    if len(matches) <= 1:
        return float(any(matches))
    subsets = list(itertools.combinations(matches, len(matches) - 1))
    return sum(min(1.0, sum(subset) / HUMANS_FOR_FULL_CREDIT) for subset in subsets) / len(subsets)


def recall_at_k(kept, relevant) -> float:
    """Mean share of each image's relevant cells that the kept tokens cover."""
    import torch

    hits = torch.zeros_like(relevant).scatter(1, kept.to(relevant.device), True) & relevant
    totals = relevant.sum(dim=1).clamp_min(1)
    return float((hits.sum(dim=1) / totals).mean())


class MetricsLogger:
    def __init__(self, enabled: bool, config, stream=sys.stdout):
        self.enabled, self.stream = enabled, stream
        # One JSON line per record; a progress bar on the same terminal swaps in
        # its own writer so lines land above the bar instead of through it.
        self.write_line = lambda line: print(line, file=self.stream, flush=True)
        self.tensorboard = self.wandb = None
        self.remote_log_dir = None
        if not enabled:
            return
        log_dir = os.environ.get("AIP_TENSORBOARD_LOG_DIR")
        if log_dir:
            from torch.utils.tensorboard import SummaryWriter

            if storage.is_url(log_dir):
                self.remote_log_dir, log_dir = log_dir, tempfile.mkdtemp(prefix="arr_coc_tb_")
            self.local_log_dir = log_dir
            self.tensorboard = SummaryWriter(log_dir)
        if config.wandb_project and os.environ.get("WANDB_API_KEY"):
            import wandb

            self.wandb = wandb.init(project=config.wandb_project, config=vars(config))

    def log(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        self.write_line(json.dumps({"step": step, **values}))
        numbers = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tensorboard:
            for key, value in numbers.items():
                self.tensorboard.add_scalar(key, value, step)
        if self.wandb:
            self.wandb.log(numbers, step=step)

    def flush(self) -> None:
        """Write pending events; for a URL, copy each event file whole (never append)."""
        if self.tensorboard:
            self.tensorboard.flush()
            if self.remote_log_dir:
                storage.upload_folder(self.local_log_dir, self.remote_log_dir)

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
            if self.remote_log_dir:
                storage.upload_folder(self.local_log_dir, self.remote_log_dir)
        if self.wandb:
            self.wandb.finish()
