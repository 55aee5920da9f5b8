"""The errors the CLI reports as a one-line message (exit 2) instead of a traceback."""

from __future__ import annotations

import sys


def USER_ERRORS() -> tuple:
    """Each module's own error class; Google API errors only if that SDK was loaded."""
    from tools.launch import (bazel_image, config, endpoints, image, plan, preflight, quota, registry, state,
                              tables, vertex)

    errs = [bazel_image.ImageBuildError, config.ConfigError, endpoints.EndpointError, image.ImageError,
            plan.PlanError, preflight.PreflightError, quota.QuotaError, registry.RegistryError,
            state.WatchLocked, tables.TableError, vertex.SubmitError]
    api = sys.modules.get("google.api_core.exceptions")
    if api is not None:
        errs.append(api.GoogleAPICallError)
    return tuple(errs)
