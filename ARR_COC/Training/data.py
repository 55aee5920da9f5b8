"""Training and evaluation data: the synthetic set, or VQAv2 through `datasets`.

With a hub cache root (config hub_cache_dir), the pinned dataset repository is
staged once per revision (ARR_COC/hub_cache.py) into a local folder that both
splits load from; without one, `datasets` reads the hub through its own cache.
"""

from __future__ import annotations

import torch

from ARR_COC import hub_cache
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


def dataset_source(config, fetch=None) -> dict:
    """What load_dataset is given: the hub name at its revision, or with a hub cache the staged local
    copy, whose arrow files go beside it. `fetch(folder)` fills a folder from the source (default: the
    hub at the pinned revision)."""
    name, revision = config.dataset_name, config.dataset_revision or None
    if not (config.hub_cache_dir and revision and hub_cache.is_hub_name(name)):
        return {"path": name, "revision": revision}
    fetch = fetch or hub_cache.from_hub("datasets", name, revision)
    local = hub_cache.staged("datasets", name, revision, config.hub_cache_dir, fetch)
    return {"path": local, "cache_dir": local + ".arrow"}


def vqav2(config, split: str, limit: int, fetch=None):
    import datasets

    rows = datasets.load_dataset(**dataset_source(config, fetch), split=split)
    if limit:
        rows = rows.select(range(min(limit, len(rows))))
    return VQAv2(rows)


def build_datasets(config, cell_pixels: int, fetch=None):
    """(train, eval) datasets for the config; synthetic train and eval never share a sample.
    Both VQAv2 splits come from one staged copy (`fetch`: see dataset_source)."""
    if config.dataset == "synthetic":
        train_size = min(config.synthetic_train_size, config.max_train_samples or config.synthetic_train_size)
        train = SyntheticVQA(train_size, config.seed, config.image_size, cell_pixels)
        evaluation = SyntheticVQA(config.synthetic_eval_size, config.seed + 10_000, config.image_size, cell_pixels)
        return train, evaluation
    return (vqav2(config, config.train_split, config.max_train_samples, fetch),
            vqav2(config, config.eval_split, config.max_eval_samples, fetch))


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch: a permutation fixed by (seed, epoch), so resumes replay it."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(size, generator=generator).tolist()
