"""Metrics: JSON lines on stdout always; TensorBoard and W&B only when configured.

TensorBoard writes to AIP_TENSORBOARD_LOG_DIR; a gs:// folder is written
locally and copied up on every flush (the writer itself cannot write to gs://
without TensorFlow).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile


def normalize_answer(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", text.lower())).strip()


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA accuracy: min(1, matches / 3) over the human answers (exact match if fewer than 3)."""
    predicted = normalize_answer(prediction)
    matches = sum(normalize_answer(answer) == predicted for answer in answers)
    return min(1.0, matches / min(3, max(len(answers), 1)))


def recall_at_k(kept, relevant) -> float:
    """Mean share of each image's relevant cells that the kept tokens cover."""
    import torch

    hits = torch.zeros_like(relevant).scatter(1, kept.to(relevant.device), True) & relevant
    totals = relevant.sum(dim=1).clamp_min(1)
    return float((hits.sum(dim=1) / totals).mean())


class MetricsLogger:
    def __init__(self, enabled: bool, config, stream=sys.stdout):
        self.enabled, self.stream = enabled, stream
        self.tensorboard = self.wandb = None
        self.remote_log_dir = None
        if not enabled:
            return
        log_dir = os.environ.get("AIP_TENSORBOARD_LOG_DIR")
        if log_dir:
            from torch.utils.tensorboard import SummaryWriter

            if "://" in log_dir:
                self.remote_log_dir, log_dir = log_dir, tempfile.mkdtemp(prefix="arr_coc_tb_")
            self.local_log_dir = log_dir
            self.tensorboard = SummaryWriter(log_dir)
        if config.wandb_project and os.environ.get("WANDB_API_KEY"):
            import wandb

            self.wandb = wandb.init(project=config.wandb_project, config=vars(config))

    def log(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        print(json.dumps({"step": step, **values}), file=self.stream, flush=True)
        numbers = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tensorboard:
            for key, value in numbers.items():
                self.tensorboard.add_scalar(key, value, step)
        if self.wandb:
            self.wandb.log(numbers, step=step)

    def flush(self) -> None:
        if self.tensorboard:
            self.tensorboard.flush()
            if self.remote_log_dir:
                import fsspec

                fs, remote = fsspec.core.url_to_fs(self.remote_log_dir)
                fs.put(self.local_log_dir + "/", remote.rstrip("/") + "/", recursive=True)

    def close(self) -> None:
        self.flush()
        if self.tensorboard:
            self.tensorboard.close()
        if self.wandb:
            self.wandb.finish()
