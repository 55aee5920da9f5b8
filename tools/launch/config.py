"""The launch config: checked-in TOML defaults, each field overridable by a flag."""

from __future__ import annotations

import pathlib
import tomllib

DEFAULT_CONFIG = pathlib.Path(__file__).resolve().parent / "launch.toml"

# Field -> type used to parse a flag's string value; the one list of config fields.
FIELDS = {
    "project": str,
    "gpu_preference": list,
    "count": int,
    "regions": list,
    "scheduling": str,
    "timeout_s": int,
    "max_wait_s": int,
    "registry": str,
    "repository": str,
    "image_name": str,
    "bucket": str,
    "service_account": str,
    "run_name": str,
    "env": dict,
}


class ConfigError(ValueError):
    """A config file or flag value that cannot be used; says which and why."""


def parse_value(field: str, text: str):
    """A flag string as the field's type: lists are comma-separated, env is K=V,K=V."""
    kind = FIELDS[field]
    if kind is list:
        return [p.strip() for p in text.split(",") if p.strip()]
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"--{field.replace('_', '-')} wants an integer, got {text!r}") from None
    if kind is dict:
        out = {}
        for pair in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in pair:
                raise ConfigError(f"--env wants KEY=VALUE pairs, got {pair!r}")
            k, v = pair.split("=", 1)
            out[k.strip()] = v
        return out
    return text


def load(path: pathlib.Path | str = DEFAULT_CONFIG, overrides: dict | None = None) -> dict:
    """The config file merged with overrides (None values mean "not given").

    `env` overrides are merged key by key so one hyperparameter can change
    without restating the others.
    """
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    unknown = set(cfg) - set(FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    cfg = {k: cfg.get(k, FIELDS[k]()) for k in FIELDS}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in FIELDS:
            raise ConfigError(f"unknown config field {key!r}")
        if key == "env":
            cfg["env"] = {**cfg["env"], **value}
        else:
            cfg[key] = value
    if cfg["count"] < 1:
        raise ConfigError(f"count must be at least 1, got {cfg['count']}")
    return cfg
