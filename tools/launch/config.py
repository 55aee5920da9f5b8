"""The launch config: checked-in TOML defaults, each field overridable by a flag.

`FIELDS` is the one list of config fields: its type (how a flag string is
parsed) and what values are allowed (checked for the file and the flags
alike, with a message that names the field and the flag).
"""

from __future__ import annotations

import pathlib
import re
import tomllib

from tools.launch.errors import ConfigError

DEFAULT_CONFIG = pathlib.Path(__file__).resolve().parent / "launch.toml"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _positive(v) -> bool:
    return v > 0


def _optional_positive(v) -> bool:
    return v is None or v > 0


def _names(v) -> bool:
    return all(isinstance(x, str) and x.strip() for x in v)


def _env(v) -> bool:
    return all(_ENV_NAME.match(k) and isinstance(x, (str, int, float)) for k, x in v.items())


def _any(v) -> bool:
    return True


# field -> (type, default when the file omits it, check, what is allowed)
FIELDS = {
    "project": (str, "", _any, "a Google Cloud project ID"),
    "gpu_preference": (list, ["L4"], lambda v: bool(v) and _names(v), "one or more GPU names, e.g. L4,T4"),
    "count": (int, 1, _positive, "GPUs per machine, at least 1"),
    "nodes": (int, 1, _positive, "machines, at least 1 (1 chief + N-1 workers)"),
    "regions": (list, [], _names, "region names, e.g. us-central1,europe-west4"),
    "scheduling": (str, "SPOT", lambda v: v in ("SPOT", "STANDARD", "FLEX_START"),
                   "SPOT, STANDARD or FLEX_START"),
    "timeout_s": (int, 7 * 24 * 3600, _positive, "seconds, at least 1 (FLEX_START: at most 7 days)"),
    # its range is FLEX_START's, checked from data/scheduling.toml by tables.check_job_limits
    "max_wait_s": (int, 86400, _any, "seconds FLEX_START may wait for capacity"),
    "max_queue_s": (int, 900, _positive, "seconds a job may stay QUEUED/PENDING before it is moved, at least 1"),
    "max_attempts": (int, 5, _positive, "jobs to try in all, at least 1"),
    "max_cost": (float, None, _optional_positive, "a cost limit above 0, in the price table's currency"),
    "registry": (str, "", _any, "a registry URL"),
    "repository": (str, "arr-coc-registry", lambda v: bool(v), "an Artifact Registry repository name"),
    "image_name": (str, "arr-trainer", lambda v: bool(v), "an image name"),
    "bucket": (str, "", _any, "a bucket name"),
    "service_account": (str, "", _any, "a service account email"),
    "run_name": (str, "", _any, "a run name"),
    "env": (dict, {}, _env, "KEY=VALUE pairs with KEY a shell variable name"),
}


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def parse_value(field: str, text: str):
    """A flag string as the field's type: lists are comma-separated, env is K=V,K=V."""
    kind = FIELDS[field][0]
    if kind is list:
        return [p.strip() for p in text.split(",") if p.strip()]
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"{flag(field)} wants {noun}, got {text!r}") from None
    if kind is dict:
        out = {}
        for pair in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in pair:
                raise ConfigError(f"{flag(field)} wants KEY=VALUE pairs, got {pair!r}")
            k, v = pair.split("=", 1)
            out[k.strip()] = v
        return out
    return text


def check(field: str, value, where: str) -> None:
    """Raises ConfigError naming FIELD (and WHERE it came from) unless VALUE is allowed."""
    kind, default, ok, allowed = FIELDS[field]
    if value is None and default is None:
        return
    typed = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        typed = True
    if not typed or not ok(value):
        raise ConfigError(f"{field} ({flag(field)}) from {where}: {value!r} is not allowed; want {allowed}")


def _read(path: pathlib.Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file (the default is {DEFAULT_CONFIG.name} "
                          "beside the launcher)") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"--config {path}: cannot read it as TOML ({e})") from None


def load(path: pathlib.Path | str = DEFAULT_CONFIG, overrides: dict | None = None) -> dict:
    """The config file merged with overrides (None values mean "not given"), every value checked.

    `env` overrides are merged key by key so one hyperparameter can change
    without restating the others.
    """
    raw = _read(pathlib.Path(path))
    unknown = set(raw) - set(FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(FIELDS)}")
    for key, value in raw.items():
        check(key, value, str(path))
    cfg = {k: raw.get(k, FIELDS[k][1]) for k in FIELDS}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in FIELDS:
            raise ConfigError(f"unknown config field {key!r}")
        check(key, value, "the command line")
        cfg[key] = {**cfg["env"], **value} if key == "env" else value
    return cfg
