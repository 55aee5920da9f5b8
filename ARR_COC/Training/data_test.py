"""Production data: the pinned VQAv2 parquet copy loads with the locked `datasets`.

The hub cannot be reached from tests, so a local folder is laid out like the
pinned repository (its dataset card as README.md, parquet shards under
data/ as the card's `configs` name them), written with `Dataset.to_parquet`
and the card's own features (Image, answers list). The trainer then makes
its real call, `load_dataset(dataset_name, revision=dataset_revision,
split=...)`, with dataset_name pointing at that folder. With a hub cache
(gs:// through the real gcsfs against tests/support/fake_gcs.py), the folder
stands in for the hub behind a fetch that counts its calls.
"""

import os
import shutil

import numpy as np
import pytest
import yaml

from ARR_COC.Training import data
from ARR_COC.Training.config import load_config
from ARR_COC.Training.data import build_datasets
from tests.support import fake_gcs

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


def test_production_config_loads_the_pinned_copy_through_datasets(hub_folder, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))  # HOME is read-only here
    config = load_config(VERTEX, environ={}, overrides={
        "dataset_name": hub_folder, "max_eval_samples": 0})
    train, evaluation = build_datasets(config, cell_pixels=32)
    assert (len(train), len(evaluation)) == (ROWS * 9 // 10, ROWS - ROWS * 9 // 10)
    sample = train[3]
    assert sample["question"] == "Is the picture number 3 bright?"
    assert sample["answer"] == "yes" and sample["answers"] == ["yes"] * 7 + ["no"] * 2 + ["maybe"]
    assert sample["image"].size == (64, 48)
    assert evaluation[0]["question"] == f"Is the picture number {ROWS * 9 // 10} bright?"


def test_both_splits_load_from_one_staged_copy(hub_folder, tmp_path, monkeypatch):
    """The pinned hub name is staged once into the bucket; the eval split reads the machine's copy
    (it still loads with the bucket emptied), and nothing is fetched twice."""
    import tempfile

    import fsspec

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the staged local copy goes
    fetched = []

    def fetch(folder):
        fetched.append(folder)
        shutil.copytree(hub_folder, folder, dirs_exist_ok=True)

    with fake_gcs.gcsfs_served("arr-coc-test") as (fake, _):
        config = load_config(VERTEX, environ={"ARR_HUB_CACHE": "gs://arr-coc-test/cache/hf"},
                             overrides={"max_eval_samples": 0})
        assert config.dataset_name == "lmms-lab/VQAv2"  # a hub name: staged, not read in place
        train = data.vqav2(config, config.train_split, 0, fetch)
        staged = [w for w in fake.writes if w.startswith("arr-coc-test/cache/hf/datasets/lmms-lab/VQAv2@")]
        assert staged[-1].endswith("/complete.json") and len(staged) == 3  # card, shard, marker
        fsspec.filesystem("gs").rm("arr-coc-test/cache", recursive=True)
        evaluation = data.vqav2(config, config.eval_split, 0, fetch)
        assert fake.unhandled == []
    assert len(fetched) == 1
    assert (len(train), len(evaluation)) == (ROWS * 9 // 10, ROWS - ROWS * 9 // 10)
    assert evaluation[0]["question"] == f"Is the picture number {ROWS * 9 // 10} bright?"


def test_the_card_has_what_the_trainer_reads():
    import datasets

    features = card_features()
    assert isinstance(features["image"], datasets.Image)
    assert {"question", "multiple_choice_answer"} <= set(features)
    assert set(features["answers"].feature) == {"answer", "answer_confidence", "answer_id"}
