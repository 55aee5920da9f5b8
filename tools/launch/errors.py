"""Every error the launcher reports as a message instead of a traceback.

One module at the bottom of the import graph (it imports nothing of the
launcher), so every module raises these and `cli.main` catches one base,
`LaunchError`, mapping it to its exit code: 2 (bad input or a setup to fix,
nothing submitted) unless the class says 1 (the launch ran and ran out).
Modules re-export the names they raise, so `config.ConfigError` still reads
naturally where it is used.
"""

from __future__ import annotations

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


class LaunchError(Exception):
    """Base: a problem the user can act on; the message says what to do."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(LaunchError, ValueError):
    """A config file or flag value that cannot be used; says which and why."""


class TableError(LaunchError, ValueError):
    """A data table (machines, regions, scheduling, prices) is inconsistent, or a request does not fit it."""


class EndpointError(LaunchError, ValueError):
    """An endpoint or credential problem, with what to do about it."""


class ImageError(LaunchError, ValueError):
    """The image's layout or digest file is missing or inconsistent."""


class ImageBuildError(LaunchError):
    """The workspace's Bazel could not build or locate what the launcher asked for."""


class PlanError(LaunchError, ValueError):
    """No plan can be made; the message lists what was considered."""


class QuotaError(LaunchError):
    """The quota API could not be read; says which endpoint and why."""


class PreflightError(LaunchError):
    """Something the job needs is missing; the message has the commands that create it."""


class RegistryError(LaunchError):
    """A push failed for a reason the user can act on (unreachable, auth, protocol)."""


class SubmitError(LaunchError):
    """Submission failed for a reason failover cannot fix; says what was tried."""


class SmokeRequired(LaunchError):
    """--require-smoke: no passing smoke run for this image digest on the planned GPUs; names the command."""


class SmokeFailed(LaunchError):
    """The smoke job ended without a usable smoke.json; says what it found."""

    exit_code = EXIT_FAILED


class WatchLocked(LaunchError):
    """Another launcher process is already watching this launch."""


class RefreshError(LaunchError):
    """The price catalog could not be read or gave nothing usable; says what to check."""


class CandidatesExhausted(LaunchError):
    """Every candidate of the plan failed or is blocked: nothing more to try."""

    exit_code = EXIT_FAILED


class Stopped(LaunchError):
    """Supervision ended without the job running or succeeding; says why."""

    exit_code = EXIT_FAILED
