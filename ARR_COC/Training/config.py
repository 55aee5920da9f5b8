"""One training config: defaults, then a TOML file, then environment variables, then flags.

The environment variables are the ones the original trainer read (BASE_MODEL,
NUM_VISUAL_TOKENS, ...), so existing jobs keep working. Every value is
validated against a table; a bad one stops the run with an error that names
the key and what it may be. Relative paths resolve against the caller's
directory (BUILD_WORKING_DIRECTORY under `bazel run`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass

from ARR_COC import architectures
from ARR_COC.hub_cache import is_hub_name as hub_name

SMOKE_TOML = """
# Embedded smoke config: tiny backbone (pretrained weights when ARR_COC_TINY_BACKBONE
# points at them), synthetic data, CPU, a couple of minutes.
base_model = "tiny"
dataset = "synthetic"
image_size = 256
num_visual_tokens = 6
synthetic_train_size = 2048
synthetic_eval_size = 128
batch_size = 16
gradient_accumulation_steps = 2
learning_rate = 1e-2
warmup_ratio = 0.1
max_steps = 60
save_every_n_steps = 20
eval_every_n_steps = 30
output_dir = "arr_coc_runs/smoke"
"""


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and the allowed values."""


@dataclass
class TrainConfig:
    base_model: str = "tiny"
    base_model_revision: str = ""   # hub commit SHA; required for a hub base model (configs/vertex.toml pins it)
    tiny_backbone_weights: str = ""
    dataset: str = "synthetic"
    dataset_name: str = ""          # a parquet dataset on the hub (or a local folder laid out like one)
    dataset_revision: str = ""      # hub commit SHA; required for dataset = "vqav2"
    hub_cache_dir: str = ""         # pinned hub weights and datasets, one copy per revision (ARR_COC/hub_cache.py)
    train_split: str = "train"
    eval_split: str = "validation"
    synthetic_train_size: int = 4096
    synthetic_eval_size: int = 256
    image_size: int = 256
    num_visual_tokens: int = 6
    allocator: str = "attention"
    max_question_tokens: int = 48
    max_answer_tokens: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    num_epochs: int = 1
    max_steps: int = 0
    max_train_samples: int = 0
    max_eval_samples: int = 256
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"
    seed: int = 0
    output_dir: str = "arr_coc_runs/default"
    save_every_n_steps: int = 100
    save_every_minutes: float = 15  # also checkpoint when this long has passed since the last save (0 = off)
    eval_every_n_steps: int = 0
    log_every_n_steps: int = 5
    num_workers: str = "auto"       # DataLoader workers per process: a count, or "auto" (loader_workers)
    rendezvous_timeout_minutes: int = 30  # how long nodes wait for each other at start, and a collective for a slow rank
    wandb_project: str = ""
    smoke_report: int = 0           # 1: end with the {"event": "smoke"} line and smoke.json (configs/smoke_gpu.toml)


ENV_VARS = {
    "BASE_MODEL": "base_model", "BASE_MODEL_REVISION": "base_model_revision", "NUM_VISUAL_TOKENS": "num_visual_tokens", "LEARNING_RATE": "learning_rate",
    "BATCH_SIZE": "batch_size", "GRADIENT_ACCUMULATION_STEPS": "gradient_accumulation_steps",
    "NUM_EPOCHS": "num_epochs", "MAX_TRAIN_SAMPLES": "max_train_samples", "OUTPUT_DIR": "output_dir",
    "SEED": "seed", "SAVE_EVERY_N_STEPS": "save_every_n_steps", "ARR_COC_TINY_BACKBONE": "tiny_backbone_weights",
    "WANDB_PROJECT": "wandb_project", "ARR_HUB_CACHE": "hub_cache_dir",
    "DATASET_CACHE_DIR": "dataset_cache_dir",  # removed: refused with REMOVED_KEYS' hint
    "SAVE_EVERY_MINUTES": "save_every_minutes", "RENDEZVOUS_TIMEOUT_MINUTES": "rendezvous_timeout_minutes",
}

COMMIT = re.compile(r"[0-9a-f]{40}")
positive = (lambda v: v > 0, "an integer > 0")
non_negative = (lambda v: v >= 0, "an integer >= 0 (0 = no limit / off)")
CHECKS = {
    "dataset": (lambda v: v in ("synthetic", "vqav2"), "one of: synthetic, vqav2"),
    "allocator": (lambda v: v in ("reinforce", "straight_through", "attention"),
                  "one of: reinforce, straight_through, attention"),
    "mixed_precision": (lambda v: v in ("auto", "no", "bf16", "fp16"), "one of: auto, no, bf16, fp16"),
    "image_size": (lambda v: v > 0 and v % 32 == 0, "a positive multiple of 32 (patch 16 x merge 2)"),
    "num_visual_tokens": positive, "batch_size": positive, "gradient_accumulation_steps": positive,
    "num_epochs": positive, "synthetic_train_size": positive, "synthetic_eval_size": positive,
    "max_question_tokens": positive, "max_answer_tokens": positive,
    "max_steps": non_negative, "max_train_samples": non_negative, "max_eval_samples": non_negative,
    "save_every_n_steps": non_negative, "eval_every_n_steps": non_negative, "log_every_n_steps": positive,
    "save_every_minutes": (lambda v: v >= 0, "a number >= 0 (0 = off)"), "rendezvous_timeout_minutes": positive,
    "num_workers": (lambda v: v == "auto" or v.isdigit(), "'auto' (from the CPUs) or an integer >= 0"),
    "seed": (lambda v: v >= 0, "an integer >= 0"),
    "smoke_report": (lambda v: v in (0, 1), "0 or 1"),
    "learning_rate": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "weight_decay": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "warmup_ratio": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "max_grad_norm": (lambda v: v > 0, "a number > 0"),
    "base_model": (lambda v: bool(v) and architectures.random_architecture(v) in (None, *architectures.PINNED),
                   "'tiny', a hub name, a local folder, a gs:// folder, or 'random:NAME' (random weights, "
                   f"no download) for a pinned architecture: {', '.join(sorted(architectures.PINNED))}"),
    "output_dir": (lambda v: bool(v), "a local folder or a gs:// folder"),
    "base_model_revision": (lambda v: v == "" or bool(COMMIT.fullmatch(v)), "empty or a 40-hex commit SHA"),
    "dataset_revision": (lambda v: v == "" or bool(COMMIT.fullmatch(v)), "empty or a 40-hex commit SHA"),
}


# Checks across keys: what must be pinned so that a run can be repeated.
PINS = (
    (lambda c: c.dataset != "vqav2" or bool(c.dataset_name), "dataset = 'vqav2' needs dataset_name"),
    (lambda c: c.dataset != "vqav2" or bool(c.dataset_revision),
     "dataset = 'vqav2' needs dataset_revision, the dataset's 40-hex commit SHA on the hub"),
    (lambda c: not hub_name(c.base_model) or bool(c.base_model_revision),
     "a hub base_model needs base_model_revision, its 40-hex commit SHA on the hub"),
)
PATH_KEYS = ("output_dir", "tiny_backbone_weights", "hub_cache_dir")
FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
SECRET_HINT = ("secrets are no longer config keys: pass a reference in ARR_SECRET_REFS "
               "(the launcher's --secret {variable}=projects/P/secrets/NAME); the trainer resolves it at start")
REMOVED_KEYS = {"wandb_api_key_secret": SECRET_HINT.format(variable="WANDB_API_KEY"),
                "hf_token_secret": SECRET_HINT.format(variable="HF_TOKEN"),
                "dataset_cache_dir": "set hub_cache_dir (env ARR_HUB_CACHE) instead: the dataset and the base "
                                     "model are kept there once per revision; the launcher sets it to "
                                     "gs://BUCKET/cache/hf"}


def convert(key: str, value, source: str):
    """Coerce a raw value (TOML, env string or flag string) to the field's type, or name the key."""
    kind = FIELD_TYPES[key]
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} = {value!r} is not a valid {kind}; allowed: "
                          f"{CHECKS.get(key, (None, 'a ' + kind))[1]}") from None


def merge(values: dict, updates: dict, source: str) -> None:
    for key, value in updates.items():
        if key in REMOVED_KEYS:
            raise ConfigError(f"{source}: {key} was removed; {REMOVED_KEYS[key]}")
        if key not in FIELD_TYPES:
            raise ConfigError(f"{source}: unknown key {key!r}; allowed keys: {', '.join(sorted(FIELD_TYPES))}")
        values[key] = convert(key, value, source)


def validate(config: TrainConfig) -> TrainConfig:
    for key, (check, allowed) in CHECKS.items():
        if not check(getattr(config, key)):
            raise ConfigError(f"{key} = {getattr(config, key)!r} is not allowed; it must be {allowed}")
    for check, message in PINS:
        if not check(config):
            raise ConfigError(message)
    return config


def resolve_path(path: str, base: str | None) -> str:
    """Relative local paths are relative to the caller (BUILD_WORKING_DIRECTORY), not to runfiles."""
    if not path or "://" in path or os.path.isabs(path) or not base:
        return path
    return os.path.normpath(os.path.join(base, path))


def load_config(config_path: str | None = None, environ: dict | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults < TOML file (or the embedded smoke config) < environment < flags; then validated."""
    environ = os.environ if environ is None else environ
    base = environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd()
    values: dict = {}
    if config_path:
        with open(resolve_path(config_path, base), "rb") as handle:
            merge(values, tomllib.load(handle), config_path)
    else:
        merge(values, tomllib.loads(SMOKE_TOML), "embedded smoke config")
    from_env = {ENV_VARS[name]: environ[name] for name in ENV_VARS if environ.get(name)}
    if from_env.get("tiny_backbone_weights"):  # set by Bazel as a runfiles path: relative to cwd, not the caller
        from_env["tiny_backbone_weights"] = os.path.abspath(from_env["tiny_backbone_weights"])
    merge(values, from_env, "environment")
    merge(values, {k: v for k, v in (overrides or {}).items() if v is not None}, "flags")
    config = TrainConfig(**values)
    for key in PATH_KEYS:
        setattr(config, key, resolve_path(getattr(config, key), base))
    return validate(config)


def argument_parser() -> argparse.ArgumentParser:
    """The trainer's flags; the entry point reads the same ones for its start-up check."""
    parser = argparse.ArgumentParser(description="Train the ARR-COC selector.")
    parser.add_argument("--config", help="TOML config (default: the embedded smoke config)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--output-dir", help="where checkpoints and the model go (local or gs://)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    return parser


def parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise ConfigError(f"--set wants KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = value
    return overrides


def config_from_args(args: argparse.Namespace, environ: dict | None = None) -> TrainConfig:
    """The config that the trainer's parsed flags name: file, environment, then --set and the flags."""
    return load_config(args.config, environ, overrides={**parse_overrides(args.set), "max_steps": args.max_steps,
                                                        "output_dir": args.output_dir})


LOADER_WORKERS_CAP = 8  # more workers than this only cost memory (each holds a copy of the dataset)


def loader_workers(setting: str, cpus: int, processes_per_node: int) -> int:
    """DataLoader workers per process. "auto": the node's CPUs split among its training processes,
    one of each share left to the process itself (it runs the step and feeds the GPU), capped."""
    if setting != "auto":
        return int(setting)
    return max(0, min(LOADER_WORKERS_CAP, cpus // max(1, processes_per_node) - 1))
