"""Table-driven tests of preflight's pure parts: create commands, which endpoint to call, the report."""

import types

import pytest

from tools.launch import endpoints as E
from tools.launch import preflight as PF

# The plan fields preflight reads (a full Plan is made and tested in tests/launch_*_test.py).
AR_FIELDS = {
    "project": "proj", "region": "us-west1", "bucket": "proj-arr-coc",
    "registry": "https://us-west1-docker.pkg.dev",
    "repository": "proj/arr-coc-registry/arr-trainer",
    "service_account": "trainer@proj.iam.gserviceaccount.com",
}
AR_PLAN = types.SimpleNamespace(**AR_FIELDS)
LOCAL_PLAN = types.SimpleNamespace(**dict(AR_FIELDS, registry="http://127.0.0.1:5000", repository="team/arr-trainer",
                                          service_account=None))


@pytest.mark.parametrize(
    "plan,what,command",
    [
        (AR_PLAN, "bucket", "gcloud storage buckets create gs://proj-arr-coc --location=us-west1 --project=proj"),
        (AR_PLAN, "artifact_registry", "gcloud artifacts repositories create arr-coc-registry "
                                       "--repository-format=docker --location=us-west1 --project=proj"),
        (AR_PLAN, "service_account", "gcloud iam service-accounts create trainer --project=proj"),
        (LOCAL_PLAN, "artifact_registry", None),  # other registries: not a gcloud matter
        (LOCAL_PLAN, "service_account", None),  # none set: nothing to create
    ],
)
def test_create_commands(plan, what, command):
    assert PF.commands(plan).get(what) == command


@pytest.mark.parametrize(
    "eps,expected",
    [
        (E.Endpoints(registry="http://127.0.0.1:5000", storage="http://127.0.0.1:9"), "http://127.0.0.1:9"),
        (E.Endpoints(storage="http://127.0.0.1:9"), "http://127.0.0.1:9"),  # the override wins
        (E.Endpoints(), PF.STORAGE_DEFAULT),  # real setup: the real API
        (E.Endpoints(vertex="http://127.0.0.1:9"), None),  # private setup: never Google without its own flag
    ],
)
def test_storage_endpoint(eps, expected):
    assert PF.storage_endpoint(eps) == expected


def test_report_notes_unchecked_with_the_create_command():
    lines = PF.report(AR_PLAN, [
        PF.Finding("artifact_registry", PF.OK, "push can start"),
        PF.Finding("bucket", PF.UNCHECKED, "gs://proj-arr-coc: no --storage-endpoint"),
    ])
    assert lines[0] == "preflight: artifact_registry: ok: push can start"
    assert lines[1].endswith("if missing: gcloud storage buckets create gs://proj-arr-coc "
                             "--location=us-west1 --project=proj")


def test_report_stops_on_anything_missing_with_every_command():
    with pytest.raises(PF.PreflightError) as e:
        PF.report(AR_PLAN, [
            PF.Finding("artifact_registry", PF.MISSING, "NAME_UNKNOWN: Repository not found"),
            PF.Finding("bucket", PF.MISSING, "gs://proj-arr-coc does not exist"),
            PF.Finding("service_account", PF.OK, "exists"),
        ])
    msg = str(e.value)
    assert "nothing was pushed or submitted" in msg
    assert "gcloud artifacts repositories create arr-coc-registry" in msg
    assert "gcloud storage buckets create gs://proj-arr-coc" in msg
    assert "service-accounts create" not in msg


def test_missing_repository_of_another_registry_says_where():
    with pytest.raises(PF.PreflightError, match="create it in that registry"):
        PF.report(LOCAL_PLAN, [PF.Finding("artifact_registry", PF.MISSING, "NAME_UNKNOWN")])
