"""Preflight end to end: real storage client and registry session against loopback servers.

The bucket is looked up by the real `google.cloud.storage.Client` at
`--storage-endpoint` (the fake's GET /storage/v1/b/BUCKET), the service
account over the IAM REST API at `--iam-endpoint`, and the repository by
starting an upload on a real docker-registry; a fault proxy in front of it
answers like Artifact Registry for a repository that does not exist. A
missing piece must stop the launch before any blob is pushed.
"""

import json

import pytest

from tests.support import fake_google, fault_proxy, registry_server as rs
from tools.launch import cli

SA = "trainer@proj.iam.gserviceaccount.com"
NAME_UNKNOWN = json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message":
                                       'Repository "team" not found'}]}).encode()



@pytest.fixture
def google(monkeypatch, tmp_path):
    monkeypatch.setenv("ARR_LAUNCH_STATE", str(tmp_path / "launches.json"))
    fake = fake_google.FakeGoogle()
    fake.buckets.add("proj-arr-coc")
    fake.service_accounts.add(SA)
    with fake_google.running(fake) as url:
        fake.url = url
        yield fake


def launch(capsys, google, image, registry_url, *extra):
    layout, _ = image
    code = cli.main([
        "--project", "proj", "--registry", registry_url + "/team", "--vertex-endpoint", google.url,
        "--no-quota", "--gpu", "L4", "--region", "us-west1",
        "--image-layout", layout, "--image-digest", layout + ".digest", *extra,
    ])
    out, err = capsys.readouterr()
    return code, out, err


def test_everything_present_launches(capsys, google, image, registry):
    code, out, err = launch(capsys, google, image, registry.url, "--storage-endpoint", google.url,
                            "--iam-endpoint", google.url, "--service-account", SA)
    assert code == 0, err
    assert "preflight: artifact_registry: ok" in err
    assert "preflight: bucket: ok: gs://proj-arr-coc exists" in err
    assert f"preflight: service_account: ok: {SA} exists" in err
    assert ("GET", "/storage/v1/b/proj-arr-coc") in google.requests
    assert ("GET", f"/v1/projects/proj/serviceAccounts/{SA}") in google.requests
    assert len(google.creates) == 1


def test_missing_bucket_stops_before_push_with_the_command(capsys, google, image, registry):
    google.buckets.clear()
    with fault_proxy.fault_proxy(registry.url, []) as proxy:
        code, out, err = launch(capsys, google, image, proxy.url, "--storage-endpoint", google.url)
    assert code == 2 and out == ""
    assert ("gcloud storage buckets create gs://proj-arr-coc --location=us-west1 --project=proj"
            in err)
    assert not [m for m, path, _ in proxy.log if m in ("PUT", "PATCH")]  # nothing pushed
    assert google.creates == []


def test_missing_service_account_only_checked_with_iam_endpoint(capsys, google, image, registry):
    other = "nobody@proj.iam.gserviceaccount.com"
    code, out, err = launch(capsys, google, image, registry.url, "--service-account", other)
    assert code == 0, err  # no --iam-endpoint: said, not checked
    assert f"preflight: service_account: not checked: {other}" in err
    assert "gcloud iam service-accounts create nobody --project=proj" in err
    code, out, err = launch(capsys, google, image, registry.url, "--service-account", other,
                            "--iam-endpoint", google.url)
    assert code == 2 and "create it with: gcloud iam service-accounts create nobody --project=proj" in err
    assert len(google.creates) == 1  # only the first launch submitted


def test_missing_repository_is_found_through_the_registry(capsys, google, image, registry):
    rule = fault_proxy.Rule("POST", r"^/v2/team/arr-trainer/blobs/uploads/", "404", times=99,
                            body=NAME_UNKNOWN, content_type="application/json")
    with fault_proxy.fault_proxy(registry.url, [rule]) as proxy:
        code, out, err = launch(capsys, google, image, proxy.url)
    assert code == 2 and "NAME_UNKNOWN" in err and 'Repository "team" not found' in err
    assert [m for m, _, _ in proxy.log] == ["POST"]  # one probe, no blob HEAD/PUT after it
    assert google.creates == []


def test_present_repository_probe_leaves_no_upload_behind(capsys, google, image, registry):
    with fault_proxy.fault_proxy(registry.url, []) as proxy:
        code, out, err = launch(capsys, google, image, proxy.url)
    assert code == 0, err
    assert proxy.log[:2] == [("POST", "/v2/team/arr-trainer/blobs/uploads/", 202),
                             (proxy.log[1][0], proxy.log[1][1], 204)]
    assert proxy.log[1][0] == "DELETE"  # the probe's upload is cancelled


def test_bucket_not_checked_in_a_private_setup_without_its_endpoint(capsys, google, image, registry):
    code, out, err = launch(capsys, google, image, registry.url)
    assert code == 0, err
    assert "preflight: bucket: not checked" in err and "gcloud storage buckets create" in err
    assert not [p for _, p in google.requests if p.startswith("/storage/")]


def test_storage_api_unreachable(capsys, google, image, registry, monkeypatch):
    from tools.launch import preflight

    monkeypatch.setattr(preflight, "STORAGE_RETRY_S", 0.5)  # the client's own retry, shortened
    code, out, err = launch(capsys, google, image, registry.url,
                            "--storage-endpoint", f"http://127.0.0.1:{rs.free_port()}")
    assert code == 2 and "storage API" in err and "unreachable" in err
    assert google.creates == []


def test_registry_refusing_the_probe_is_an_auth_error(capsys, google, image, registry):
    rule = fault_proxy.Rule("POST", r"/blobs/uploads/", "403", times=99)
    with fault_proxy.fault_proxy(registry.url, [rule]) as proxy:
        code, out, err = launch(capsys, google, image, proxy.url)
    assert code == 2 and "refused credentials" in err and google.creates == []
