"""One error base: every error a launcher module raises is a LaunchError with its exit code."""

import pytest

from tools.launch import (built_image, cli, config, endpoints, errors, plan, preflight, quota, refresh_prices,
                          registry, state, supervise, tables, vertex, workspace_bazel)


@pytest.mark.parametrize(
    "error,code",
    [
        (config.ConfigError, 2), (tables.TableError, 2), (endpoints.EndpointError, 2), (built_image.ImageError, 2),
        (workspace_bazel.ImageBuildError, 2), (plan.PlanError, 2), (quota.QuotaError, 2),
        (preflight.PreflightError, 2), (registry.RegistryError, 2), (vertex.SubmitError, 2),
        (state.WatchLocked, 2), (refresh_prices.RefreshError, 2),
        (vertex.CandidatesExhausted, 1), (supervise.Stopped, 1),
    ],
)
def test_every_module_error_is_a_launch_error_with_its_exit_code(error, code):
    assert issubclass(error, errors.LaunchError) and error.exit_code == code


def test_the_cli_reports_a_launch_error_as_one_line_with_its_code(capsys, tmp_path):
    assert cli.main(["watch", "nobody", "--state-file", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("launch: error: 'nobody' is not a job name") and err.count("\n") == 1, err
