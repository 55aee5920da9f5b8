"""Training and evaluation data: the synthetic set, or VQAv2 through `datasets`.

VQAv2 is cached at `dataset_cache_dir`; when that is a gs:// folder the
cache is mirrored to a local folder before loading and uploaded after the
first download, so later jobs do not download the dataset again.
"""

from __future__ import annotations

import os
import tempfile

import torch

from ARR_COC.Training.synthetic import SyntheticVQA


class VQAv2(torch.utils.data.Dataset):
    """VQAv2 rows as samples {image, question, answer, answers}."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[int(index)]
        answers = [a["answer"] if isinstance(a, dict) else str(a) for a in row.get("answers") or []]
        answer = row.get("multiple_choice_answer") or (answers[0] if answers else "")
        return {"image": row["image"], "question": row["question"], "answer": answer, "answers": answers or [answer]}


def mirrored_cache(cache_dir: str) -> tuple[str, callable]:
    """(local cache folder, upload function) for a local or remote dataset cache."""
    if not cache_dir or "://" not in cache_dir:
        return cache_dir or None, lambda: None
    import fsspec

    fs, remote = fsspec.core.url_to_fs(cache_dir)
    local = os.path.join(tempfile.gettempdir(), "arr_coc_dataset_cache")
    os.makedirs(local, exist_ok=True)
    if fs.exists(remote) and fs.ls(remote):
        fs.get(remote.rstrip("/") + "/", local + "/", recursive=True)
        return local, lambda: None
    return local, lambda: fs.put(local + "/", remote.rstrip("/") + "/", recursive=True)


def vqav2(config, split: str, limit: int):
    import datasets

    local, upload = mirrored_cache(config.dataset_cache_dir)
    rows = datasets.load_dataset(config.dataset_name, revision=config.dataset_revision or None, split=split,
                                 cache_dir=local)
    upload()
    if limit:
        rows = rows.select(range(min(limit, len(rows))))
    return VQAv2(rows)


def build_datasets(config, cell_pixels: int):
    """(train, eval) datasets for the config; synthetic train and eval never share a sample."""
    if config.dataset == "synthetic":
        train_size = min(config.synthetic_train_size, config.max_train_samples or config.synthetic_train_size)
        train = SyntheticVQA(train_size, config.seed, config.image_size, cell_pixels)
        evaluation = SyntheticVQA(config.synthetic_eval_size, config.seed + 10_000, config.image_size, cell_pixels)
        return train, evaluation
    return (vqav2(config, config.train_split, config.max_train_samples),
            vqav2(config, config.eval_split, config.max_eval_samples))


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch: a permutation fixed by (seed, epoch), so resumes replay it."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(size, generator=generator).tolist()
