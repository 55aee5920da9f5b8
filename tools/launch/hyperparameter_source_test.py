"""Production hyperparameters have one source: ARR_COC/Training/configs/vertex.toml.

launch.toml's [env] reaches the job as environment variables, which the
trainer reads over its config file: a key set in both places would silently
win over the training config for every job (it once sent 200 visual tokens
and lr 1e-5 against the config's 64 and 1e-4). --env still overrides one job.
"""

import tomllib

from tools.launch import config as CFG

VERTEX_TOML = "ARR_COC/Training/configs/vertex.toml"  # runfiles path (data of this test)


def training_keys() -> set[str]:
    with open(VERTEX_TOML, "rb") as f:
        return set(tomllib.load(f))


def test_the_training_config_holds_the_production_hyperparameters():
    assert {"base_model", "num_visual_tokens", "learning_rate", "batch_size"} <= training_keys()


def test_launch_toml_sets_no_key_the_training_config_sets():
    shadowed = sorted(k for k in CFG.load()["env"] if k.lower() in training_keys())
    assert not shadowed, (f"launch.toml [env] sets {shadowed}, which would override "
                          f"{VERTEX_TOML} for every job: change them there")


def test_env_flag_still_overrides_one_job_key_by_key(tmp_path):
    config = tmp_path / "launch.toml"
    config.write_text('[env]\nWANDB_PROJECT = "arr"\n')
    cfg = CFG.load(config, {"env": {"LEARNING_RATE": "3e-4"}})
    assert cfg["env"] == {"WANDB_PROJECT": "arr", "LEARNING_RATE": "3e-4"}
