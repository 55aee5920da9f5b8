"""Production data: the pinned VQAv2 parquet copy loads with the locked `datasets`.

The hub cannot be reached from tests, so a local folder is laid out like the
pinned repository (its dataset card as README.md, parquet shards under
data/ as the card's `configs` name them), written with `Dataset.to_parquet`
and the card's own features (Image, answers list). The trainer then makes
its real call, `load_dataset(dataset_name, revision=dataset_revision,
split=...)`, with dataset_name pointing at that folder.
"""

import os

import numpy as np
import pytest
import yaml

from ARR_COC.Training.config import load_config
from ARR_COC.Training.data import build_datasets

HERE = os.path.dirname(os.path.abspath(__file__))
CARD = os.path.join(HERE, "testdata", "vqav2_README.md")
VERTEX = os.path.join(HERE, "configs", "vertex.toml")
ROWS = 20


def card_features():
    import datasets

    with open(CARD) as handle:
        header = yaml.safe_load(handle.read().split("---")[1])
    return datasets.Features._from_yaml_list(header["dataset_info"]["features"])


def row(index: int) -> dict:
    from PIL import Image

    colour = np.full((48, 64, 3), index * 10, dtype=np.uint8)
    answers = ["yes"] * 7 + ["no"] * 2 + ["maybe"]
    return {"question_type": "is the", "multiple_choice_answer": "yes", "image_id": 1000 + index // 4,
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)],
            "answer_type": "yes/no", "question_id": (1000 + index // 4) * 1000 + index % 4,
            "question": f"Is the picture number {index} bright?", "image": Image.fromarray(colour)}


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A folder laid out like the pinned hub repository, one validation shard."""
    import datasets

    folder = tmp_path_factory.mktemp("lmms-lab-VQAv2")
    with open(CARD) as handle:  # the card's split size, which `datasets` verifies, says ROWS here
        card = handle.read()
    (folder / "README.md").write_text(card.replace("num_examples: 214354", f"num_examples: {ROWS}"))
    (folder / "data").mkdir()
    rows = datasets.Dataset.from_list([row(i) for i in range(ROWS)], features=card_features())
    rows.to_parquet(str(folder / "data" / "validation-00000-of-00001.parquet"))
    return str(folder)


def test_production_config_loads_the_pinned_copy_through_datasets(hub_folder, tmp_path):
    config = load_config(VERTEX, environ={}, overrides={
        "dataset_name": hub_folder, "dataset_cache_dir": str(tmp_path / "cache"), "max_eval_samples": 0})
    train, evaluation = build_datasets(config, cell_pixels=32)
    assert (len(train), len(evaluation)) == (ROWS * 9 // 10, ROWS - ROWS * 9 // 10)
    sample = train[3]
    assert sample["question"] == "Is the picture number 3 bright?"
    assert sample["answer"] == "yes" and sample["answers"] == ["yes"] * 7 + ["no"] * 2 + ["maybe"]
    assert sample["image"].size == (64, 48)
    assert evaluation[0]["question"] == f"Is the picture number {ROWS * 9 // 10} bright?"


def test_the_card_has_what_the_trainer_reads():
    import datasets

    features = card_features()
    assert isinstance(features["image"], datasets.Image)
    assert {"question", "multiple_choice_answer"} <= set(features)
    assert set(features["answers"].feature) == {"answer", "answer_confidence", "answer_id"}
