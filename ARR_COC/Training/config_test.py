"""Config layering and validation errors that name the key and the allowed values."""

import pytest

from ARR_COC.Training.config import ConfigError, load_config


def test_layers_apply_in_order(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('num_visual_tokens = 8\nlearning_rate = 0.01\nbatch_size = 2\n')
    config = load_config(str(toml), environ={"NUM_VISUAL_TOKENS": "12", "BATCH_SIZE": "3"},
                         overrides={"batch_size": "5"})
    assert (config.num_visual_tokens, config.learning_rate, config.batch_size) == (12, 0.01, 5)


def test_embedded_smoke_config_without_file():
    config = load_config(None, environ={})
    assert config.base_model == "tiny" and config.dataset == "synthetic" and config.max_steps > 0


def test_relative_paths_follow_the_callers_directory(tmp_path):
    config = load_config(None, environ={"BUILD_WORKING_DIRECTORY": str(tmp_path), "OUTPUT_DIR": "runs/x"})
    assert config.output_dir == str(tmp_path / "runs" / "x")
    assert load_config(None, environ={"OUTPUT_DIR": "gs://b/run"}).output_dir == "gs://b/run"
    assert load_config(None, environ={"ARR_HUB_CACHE": "gs://b/cache/hf"}).hub_cache_dir == "gs://b/cache/hf"


@pytest.mark.parametrize("environ, message", [
    ({"NUM_VISUAL_TOKENS": "many"}, "num_visual_tokens = 'many' is not a valid int; allowed: an integer > 0"),
    ({"NUM_VISUAL_TOKENS": "0"}, "num_visual_tokens = 0 is not allowed; it must be an integer > 0"),
    ({"LEARNING_RATE": "2"}, "learning_rate = 2.0 is not allowed; it must be a number in (0, 1)"),
    ({"BATCH_SIZE": "1.5"}, "batch_size = '1.5' is not a valid int"),
    ({"GRADIENT_ACCUMULATION_STEPS": "-1"}, "gradient_accumulation_steps = -1 is not allowed"),
    ({"DATASET_CACHE_DIR": "gs://b/datasets"}, "dataset_cache_dir was removed; set hub_cache_dir (env ARR_HUB_CACHE)"),
])
def test_bad_environment_values_name_key_and_allowed(environ, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, environ=environ)
    assert message in str(error.value)


@pytest.mark.parametrize("toml, message", [
    ('dataset = "imagenet"', "dataset = 'imagenet' is not allowed; it must be one of: synthetic, vqav2"),
    ("image_size = 100", "image_size = 100 is not allowed; it must be a positive multiple of 32"),
    ("num_visual_tokns = 4", "unknown key 'num_visual_tokns'; allowed keys:"),
    ('mixed_precision = "fp8"', "one of: auto, no, bf16, fp16"),
    ('wandb_api_key_secret = "wandb"', "wandb_api_key_secret was removed; secrets are no longer config keys: "
     "pass a reference in ARR_SECRET_REFS (the launcher's --secret WANDB_API_KEY=projects/P/secrets/NAME)"),
    ('hf_token_secret = "hf"', "hf_token_secret was removed; secrets are no longer config keys"),
    ('dataset_cache_dir = "gs://b/d"', "dataset_cache_dir was removed; set hub_cache_dir (env ARR_HUB_CACHE) instead"),
])
def test_bad_file_values_name_key_and_allowed(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path), environ={})
    assert message in str(error.value)


def test_production_config_is_valid():
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    config = load_config(os.path.join(here, "configs", "vertex.toml"), environ={})
    assert config.base_model == "Qwen/Qwen3-VL-2B-Instruct" and config.dataset == "vqav2"
    assert len(config.base_model_revision) == 40 and len(config.dataset_revision) == 40


@pytest.mark.parametrize("overrides, message", [
    ({"dataset": "vqav2", "dataset_name": "org/vqa"}, "dataset = 'vqav2' needs dataset_revision, the dataset's 40-hex"),
    ({"dataset": "vqav2", "dataset_revision": "a" * 40}, "dataset = 'vqav2' needs dataset_name"),
    ({"base_model": "Qwen/Qwen3-VL-2B-Instruct"}, "a hub base_model needs base_model_revision"),
    ({"base_model_revision": "main"}, "base_model_revision = 'main' is not allowed; it must be empty or a 40-hex"),
])
def test_hub_sources_must_be_pinned(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, environ={}, overrides=overrides)
    assert message in str(error.value)


def test_a_local_base_model_folder_needs_no_revision(tmp_path):
    assert load_config(None, environ={}, overrides={"base_model": str(tmp_path)}).base_model == str(tmp_path)


def test_a_random_pinned_architecture_needs_no_revision():
    config = load_config(None, environ={"BASE_MODEL": "random:Qwen/Qwen3-VL-2B-Instruct"})
    assert config.base_model == "random:Qwen/Qwen3-VL-2B-Instruct" and config.base_model_revision == ""


@pytest.mark.parametrize("base_model", ["random:Qwen/Qwen9-VL", "random:", "random:tiny"])
def test_a_random_architecture_that_is_not_pinned_is_refused(base_model):
    with pytest.raises(ConfigError) as error:
        load_config(None, environ={"BASE_MODEL": base_model})
    assert f"base_model = {base_model!r} is not allowed" in str(error.value)
    assert "'random:NAME' (random weights, no download) for a pinned architecture: Qwen/Qwen3-VL-2B-Instruct" in str(
        error.value)


def test_the_gpu_smoke_config_is_the_production_model_at_full_size_on_synthetic_data():
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    smoke = load_config(os.path.join(here, "configs", "smoke_gpu.toml"), environ={})
    production = load_config(os.path.join(here, "configs", "vertex.toml"), environ={})
    assert smoke.base_model == "random:" + production.base_model and smoke.dataset == "synthetic"
    same = ("image_size", "num_visual_tokens", "allocator", "mixed_precision", "batch_size", "max_question_tokens",
            "max_answer_tokens")
    assert {k: getattr(smoke, k) for k in same} == {k: getattr(production, k) for k in same}
    assert 0 < smoke.max_steps <= 16 and smoke.smoke_report == 1 and smoke.synthetic_eval_size <= 8
