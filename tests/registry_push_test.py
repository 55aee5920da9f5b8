"""Push by digest to a real docker-registry on loopback, checked with skopeo.

Needs docker-registry and skopeo on PATH (Debian packages of the same names;
installed into the Bazel root): the tests fail, not skip, when they are absent.
"""

import hashlib
import os

import pytest

from tests.support import fault_proxy as fp
from tests.support import oci_images, registry_server as rs
from tests.support import token_server as ts
from tools.launch import registry as R

LAYERS = [{"base/a.bin": 200_000}, {"deps/b.bin": 150_000}, {"app/main.py": b"print('hi')\n"}]


@pytest.fixture
def image(tmp_path):
    layout = str(tmp_path / "img")
    digest = oci_images.make_image(layout, LAYERS)
    return layout, digest


def push(url, layout, digest, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("backoff", 0.01)
    return R.push_layout(url, "arr-trainer", layout, digest, **kw)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def assert_landed(host_path: str, digest: str, tmp_path, creds=None):
    """skopeo reads the same manifest bytes and pulls every blob with verification."""
    raw = rs.skopeo_inspect_raw(f"{host_path}@{digest}", creds)
    assert sha256(raw) == digest
    pulled = rs.skopeo_copy_to_layout(f"{host_path}@{digest}", str(tmp_path / "pulled"), creds)
    assert pulled == digest


def test_push_lands_with_the_same_digest_and_short_tag(registry, image, tmp_path):
    layout, digest = image
    report = push(registry.url + "/team", layout, digest)
    assert report.reference == f"{registry.host}/team/arr-trainer@{digest}"
    assert report.tag == digest[-7:] and report.tag != "latest"
    assert report.blobs_uploaded == 4  # config + 3 layers
    assert_landed(f"{registry.host}/team/arr-trainer", digest, tmp_path)
    tagged = rs.skopeo_inspect_raw(f"{registry.host}/team/arr-trainer:{digest[-7:]}")
    assert sha256(tagged) == digest
    tags = os.listdir(os.path.join(registry.root, "docker/registry/v2/repositories/team/arr-trainer/_manifests/tags"))
    assert tags == [digest[-7:]]  # never `latest`


def test_second_push_uploads_no_blob(registry, image):
    layout, digest = image
    push(registry.url, layout, digest)
    again = push(registry.url, layout, digest)
    assert (again.blobs_uploaded, again.bytes_uploaded, again.blobs_skipped) == (0, 0, 4)


def test_one_changed_layer_uploads_only_that_layer(registry, image, tmp_path):
    layout, digest = image
    push(registry.url, layout, digest)
    changed = [*LAYERS[:2], {"app/main.py": b"print('changed')\n"}]
    layout2 = str(tmp_path / "img2")
    digest2 = oci_images.make_image(layout2, changed)
    report = push(registry.url, layout2, digest2)
    old, new = oci_images.layer_digests(layout, digest), oci_images.layer_digests(layout2, digest2)
    assert old[:2] == new[:2] and old[2] != new[2]
    # the changed layer and the new config (its diff_ids changed), nothing else
    assert report.blobs_uploaded == 2 and report.blobs_skipped == 2
    assert report.bytes_uploaded < 2_000
    assert_landed(f"{registry.host}/arr-trainer", digest2, tmp_path)


def test_chunked_upload_with_relative_locations(registry, image, tmp_path):
    layout, digest = image
    with fp.fault_proxy(registry.url, [], relative_locations=True) as proxy:
        report = push(proxy.url, layout, digest, chunk_size=64 * 1024)
        patches = [p for m, p, _ in proxy.log if m == "PATCH"]
    # 200 kB -> 4 chunks, 150 kB -> 3 chunks of 64 KiB; small blobs go monolithic
    assert len(patches) == 7
    assert report.blobs_uploaded == 4
    assert_landed(f"{registry.host}/arr-trainer", digest, tmp_path)


def test_cross_repository_mount(registry, image):
    layout, digest = image
    push(registry.url + "/a", layout, digest)
    report = R.push_layout(registry.url, "b/arr-trainer", layout, digest, progress=False,
                           mount_from="a/arr-trainer")
    assert (report.blobs_mounted, report.blobs_uploaded) == (4, 0)


@pytest.mark.parametrize(
    "rules",
    [
        [fp.Rule("PUT", r"/blobs/uploads/", "500")],
        [fp.Rule("PATCH", r"/blobs/uploads/", "drop")],
        [fp.Rule("PUT", r"/blobs/uploads/", "drop", times=2)],
        [fp.Rule("HEAD", r"/blobs/", "503", times=3)],
        [fp.Rule("PUT", r"/manifests/sha256:", "drop")],
        [fp.Rule("POST", r"/blobs/uploads/", "502"), fp.Rule("PATCH", r"/blobs/uploads/", "500")],
    ],
    ids=["put-500", "patch-drop", "put-drop-twice", "head-503", "manifest-drop", "post-502-patch-500"],
)
def test_faults_mid_upload_still_end_with_a_correct_image(registry, image, tmp_path, rules):
    layout, digest = image
    with fp.fault_proxy(registry.url, rules) as proxy:
        report = push(proxy.url, layout, digest, chunk_size=64 * 1024)
    assert all(r.fired == r.times for r in rules), proxy.log
    assert report.retries >= sum(r.times for r in rules)
    assert_landed(f"{registry.host}/arr-trainer", digest, tmp_path)


def test_unreachable_registry_says_so(image):
    layout, digest = image
    with pytest.raises(R.RegistryError, match="unreachable"):
        push(f"http://127.0.0.1:{rs.free_port()}", layout, digest, retries=1)


# -- Basic auth ---------------------------------------------------------------


@pytest.fixture
def basic_registry(tmp_path):
    work = tmp_path / "reg"
    work.mkdir()
    with rs.running_registry(str(work), rs.htpasswd_auth(str(work), {"alice": "s3cret"})) as reg:
        yield reg


def test_basic_auth_push(basic_registry, image, tmp_path):
    layout, digest = image
    report = push(basic_registry.url, layout, digest, auth=R.BasicAuth("alice", "s3cret"))
    assert report.blobs_uploaded == 4
    assert_landed(f"{basic_registry.host}/arr-trainer", digest, tmp_path, creds="alice:s3cret")


@pytest.mark.parametrize(
    "auth,message",
    [
        (R.BasicAuth("alice", "wrong"), "refused credentials"),
        (None, "set ARR_REGISTRY_USER and ARR_REGISTRY_PASSWORD"),
    ],
)
def test_basic_auth_refused(basic_registry, image, auth, message):
    layout, digest = image
    with pytest.raises(R.RegistryError, match=message):
        push(basic_registry.url, layout, digest, auth=auth)


# -- Bearer token flow --------------------------------------------------------


@pytest.fixture
def token_registry(tmp_path):
    work = tmp_path / "reg"
    work.mkdir()
    cert = str(work / "token-root.pem")
    key, crt = ts.make_signing_cert(cert)
    server = ts.TokenServer(key, crt, issuer="test-issuer", service="test-registry",
                            users={"bob": "pw"})
    with ts.running_token_server(server) as realm:
        auth = rs.token_auth(realm, "test-registry", "test-issuer", cert)
        with rs.running_registry(str(work), auth) as reg:
            yield reg, server


def test_bearer_token_flow(token_registry, image):
    reg, server = token_registry
    layout, digest = image
    report = push(reg.url + "/team", layout, digest, auth=R.BasicAuth("bob", "pw"))
    assert report.blobs_uploaded == 4
    assert server.requests, "the token server was never asked"
    assert all(r["user"] == "bob" for r in server.requests)
    assert ["repository:team/arr-trainer:pull,push"] in [r["scopes"] for r in server.requests]
    # The registry accepted the token: a pull-capable token reads the manifest back.
    again = push(reg.url + "/team", layout, digest, auth=R.BasicAuth("bob", "pw"))
    assert again.blobs_uploaded == 0


def test_bearer_token_refused(token_registry, image):
    reg, _ = token_registry
    layout, digest = image
    with pytest.raises(R.RegistryError, match="token server .* refused credentials"):
        push(reg.url, layout, digest, auth=R.BasicAuth("bob", "wrong"))
