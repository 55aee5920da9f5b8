"""Tokens (hub, W&B) read at start from Secret Manager by name; never logged, never job env."""

from __future__ import annotations

import os

SECRET_TARGETS = {"hf_token_secret": "HF_TOKEN", "wandb_api_key_secret": "WANDB_API_KEY"}


def secret_version_name(name: str, project: str | None) -> str:
    """A full version name from `projects/P/secrets/S[/versions/V]` or a bare secret name."""
    if name.startswith("projects/"):
        return name if "/versions/" in name else f"{name}/versions/latest"
    if not project:
        raise ValueError(f"secret {name!r} needs a project: give projects/P/secrets/{name} or set GOOGLE_CLOUD_PROJECT")
    return f"projects/{project}/secrets/{name}/versions/latest"


def load_secrets(config, environ=os.environ, client=None) -> list[str]:
    """Put configured secrets into this process's environment; returns the variable names set."""
    loaded = []
    for key, variable in SECRET_TARGETS.items():
        name = getattr(config, key)
        if not name:
            continue
        if client is None:
            from google.cloud import secretmanager

            client = secretmanager.SecretManagerServiceClient()
        project = environ.get("GOOGLE_CLOUD_PROJECT") or environ.get("CLOUD_ML_PROJECT_ID")
        response = client.access_secret_version(name=secret_version_name(name, project))
        environ[variable] = response.payload.data.decode("utf-8").strip()
        loaded.append(variable)
    return loaded
