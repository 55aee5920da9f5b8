"""Push by digest to a real docker-registry on loopback, checked with skopeo.

Needs docker-registry and skopeo on PATH (Debian packages of the same names;
installed into the Bazel root): the tests fail, not skip, when they are absent.
"""

import contextlib
import email.utils
import hashlib
import http.server
import json
import os
import time

import pytest
import requests

from tests.support import fault_proxy as fp
from tests.support import loopback
from tests.support import oci_images, registry_server as rs
from tests.support import token_server as ts
from tools.launch import registry as R
from tools.oci import layout as oci_layout

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


def blob_sizes(layout_dir: str, digest: str) -> dict:
    """{digest: size} of the config and layers, from the manifest."""
    manifest = oci_layout.read_layout(layout_dir, digest).manifest
    return {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}


@pytest.mark.parametrize("below", [0, 1], ids=["exactly-chunk-size", "one-byte-over"])
def test_a_blob_up_to_the_chunk_size_goes_in_one_put_above_it_in_patches(registry, image, tmp_path,
                                                                          below):
    """The monolithic/chunked boundary: size == chunk_size is one PUT; one byte more is two PATCHes."""
    layout, digest = image
    biggest = max(blob_sizes(layout, digest).values())
    chunk = biggest - below
    with fp.fault_proxy(registry.url, []) as proxy:
        report = push(proxy.url, layout, digest, chunk_size=chunk, jobs=1)
    ranges = [r.content_range for r in proxy.seen if r.method == "PATCH"]
    assert ranges == ([] if below == 0 else [f"0-{chunk - 1}", f"{chunk}-{chunk}"])
    assert report.blobs_uploaded == 4 and report.bytes_uploaded == sum(blob_sizes(layout, digest).values())
    assert_landed(f"{registry.host}/arr-trainer", digest, tmp_path)


def test_the_largest_blob_starts_first(registry, image):
    """It is the push's critical path: with one job its HEAD is the first request."""
    layout, digest = image
    sizes = blob_sizes(layout, digest)
    with fp.fault_proxy(registry.url, []) as proxy:
        push(proxy.url, layout, digest, jobs=1)
    heads = [p.rsplit("/", 1)[1] for m, p, _ in proxy.log if m == "HEAD"]
    assert heads == sorted(sizes, key=lambda d: -sizes[d])


def test_a_blob_file_of_another_size_than_its_descriptor_is_refused(registry, image, tmp_path):
    """A damaged layout says which file and what to do, instead of an opaque registry error."""
    layout, digest = image
    sizes = blob_sizes(layout, digest)
    biggest = max(sizes, key=sizes.get)
    path = os.path.join(layout, "blobs", *biggest.split(":"))
    os.truncate(path, sizes[biggest] - 1)
    with pytest.raises(R.RegistryError, match=rf"{sizes[biggest] - 1} bytes, its descriptor says "
                                              rf"{sizes[biggest]}: rebuild the layout"):
        push(registry.url, layout, digest)


@pytest.mark.parametrize(
    "rules",
    [
        [fp.Rule("PUT", r"/blobs/uploads/", "503")],
        [fp.Rule("PATCH", r"/blobs/uploads/", "drop")],
        [fp.Rule("PUT", r"/blobs/uploads/", "drop", times=2)],
        [fp.Rule("HEAD", r"/blobs/", "503", times=3)],
        [fp.Rule("PUT", r"/manifests/sha256:", "drop")],
        [fp.Rule("POST", r"/blobs/uploads/", "502"), fp.Rule("PATCH", r"/blobs/uploads/", "504")],
        [fp.Rule("PATCH", r"/blobs/uploads/", "429", skip=2)],
    ],
    ids=["put-503", "patch-drop", "put-drop-twice", "head-503", "manifest-drop", "post-502-patch-504",
         "patch-429"],
)
def test_faults_mid_upload_still_end_with_a_correct_image(registry, image, tmp_path, rules):
    layout, digest = image
    with fp.fault_proxy(registry.url, rules) as proxy:
        report = push(proxy.url, layout, digest, chunk_size=64 * 1024)
    assert all(r.fired == r.times for r in rules), proxy.log
    assert report.retries == sum(r.times for r in rules)  # each fault re-sent once, no more
    assert_landed(f"{registry.host}/arr-trainer", digest, tmp_path)


@pytest.mark.parametrize(
    "rule",
    [fp.Rule("PUT", r"/blobs/uploads/", "500"), fp.Rule("PATCH", r"/blobs/uploads/", "400"),
     fp.Rule("POST", r"/blobs/uploads/", "409")],
    ids=["put-500", "patch-400", "post-409"],
)
def test_500_and_other_4xx_are_not_retried(registry, image, rule):
    layout, digest = image
    with fp.fault_proxy(registry.url, [rule]) as proxy:
        with pytest.raises(R.RegistryError, match=f"unexpected HTTP {rule.action}"):
            push(proxy.url, layout, digest, chunk_size=64 * 1024, jobs=1)
    assert rule.fired == 1
    i = [s for _, _, s in proxy.log].index(int(rule.action))
    method, path, _ = proxy.log[i]
    assert (method, path) not in [(m, p) for m, p, _ in proxy.log[i + 1:]]  # never re-sent
    assert proxy.log[i + 1:] == []  # and no other blob started after it


# -- the distribution spec's upload errors ------------------------------------


@pytest.mark.parametrize(
    "rule",
    [fp.Rule("PATCH", r"/blobs/uploads/", "lose-session", skip=1),
     fp.Rule("PUT", r"/blobs/uploads/.*digest=", "lose-session")],
    ids=["patch", "closing-put"],
)
def test_lost_upload_session_starts_the_blob_again(registry, image, tmp_path, rule):
    """404 BLOB_UPLOAD_UNKNOWN (the registry's own answer) on a session: new POST, blob from byte 0."""
    layout, digest = image
    with fp.fault_proxy(registry.url, [rule]) as proxy:
        report = push(proxy.url, layout, digest, chunk_size=64 * 1024)
    assert rule.fired == 1
    assert (rule.method, 404) in [(m, s) for m, _, s in proxy.log]
    assert report.blobs_restarted == 1 and report.retries == 0
    assert [m for m, _, _ in proxy.log].count("POST") == 5  # 4 blobs + the restarted one
    assert_landed(f"{registry.host}/arr-trainer", digest, tmp_path)


def test_416_resumes_from_the_range_it_returns(registry, image, tmp_path):
    """Half of a chunk landed: the next PATCH starts at the registry's offset, mid-chunk."""
    layout, digest = image
    rule = fp.Rule("PATCH", r"/blobs/uploads/", "416-partial", skip=1)
    with fp.fault_proxy(registry.url, [rule]) as proxy:
        report = push(proxy.url, layout, digest, chunk_size=64 * 1024, jobs=1)
    assert rule.fired == 1 and report.chunk_resumes == 1 and report.blobs_restarted == 0
    patches = [r for r in proxy.seen if r.method == "PATCH"]
    i = [r.status for r in patches].index(416)
    start = int(patches[i].content_range.split("-")[0])
    assert patches[i + 1].content_range.startswith(f"{start + 32 * 1024}-")  # the held half kept
    assert not [r for r in proxy.seen if r.method == "GET"]  # the 416's Range sufficed
    assert_landed(f"{registry.host}/arr-trainer", digest, tmp_path)


def test_416_without_range_asks_the_upload_status(registry, image, tmp_path):
    layout, digest = image
    rule = fp.Rule("PATCH", r"/blobs/uploads/", "416", skip=1, body=b"")
    with fp.fault_proxy(registry.url, [rule]) as proxy:
        report = push(proxy.url, layout, digest, chunk_size=64 * 1024, jobs=1)
    assert rule.fired == 1 and report.chunk_resumes == 1 and report.blobs_restarted == 0
    assert [(m, s) for m, p, s in proxy.log if m == "GET"] == [("GET", 204)]  # the registry's status
    patches = [r for r in proxy.seen if r.method == "PATCH"]
    i = [r.status for r in patches].index(416)
    assert patches[i + 1].content_range == patches[i].content_range  # it held nothing of that chunk
    assert_landed(f"{registry.host}/arr-trainer", digest, tmp_path)


def http_date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.parametrize(
    "status,retry_after,max_wait,least,most",
    [
        ("429", "2", 60, 2.0, 60),
        ("503", lambda: http_date_in(3), 60, 1.0, 3.0),  # HTTP dates have whole seconds
        ("429", "3600", 1.0, 1.0, 1.0),  # capped
    ],
    ids=["429-seconds", "503-http-date", "429-capped"],
)
def test_retry_after_is_honoured(registry, image, tmp_path, status, retry_after, max_wait, least, most):
    layout, digest = image
    rule = fp.Rule("PUT", r"/manifests/sha256:", status, headers={"Retry-After": retry_after})
    with fp.fault_proxy(registry.url, [rule]) as proxy:
        report = push(proxy.url, layout, digest, max_wait=max_wait)
    assert rule.fired == 1 and report.retries == 1
    assert least <= report.retry_wait_s <= most
    puts = [r for r in proxy.seen if r.method == "PUT" and "/manifests/sha256:" in r.path]
    assert [r.status for r in puts] == [int(status), 201]
    assert puts[1].at - puts[0].at >= least  # the re-send really waited
    assert_landed(f"{registry.host}/arr-trainer", digest, tmp_path)


def test_retries_are_bounded(registry, image):
    layout, digest = image
    rule = fp.Rule("HEAD", r"/blobs/", "503", times=99)
    with fp.fault_proxy(registry.url, [rule]) as proxy:
        with pytest.raises(R.RegistryError, match="failing after 3 tries: .*HTTP 503"):
            push(proxy.url, layout, digest, retries=2, jobs=1)
    assert rule.fired == 3 and len(proxy.log) == 3


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


@contextlib.contextmanager
def token_stack(tmp_path, realm=None, **server_kw):
    """docker-registry trusting our token server; REALM overrides the realm its challenge names."""
    work = tmp_path / "reg"
    work.mkdir()
    cert = str(work / "token-root.pem")
    key, crt = ts.make_signing_cert(cert)
    server = ts.TokenServer(key, crt, issuer="test-issuer", service="test-registry",
                            users={"bob": PASSWORD}, **server_kw)
    with ts.running_token_server(server) as own_realm:
        auth = rs.token_auth(realm or own_realm, "test-registry", "test-issuer", cert)
        with rs.running_registry(str(work), auth) as reg:
            yield reg, server


PASSWORD = "pw-Zq81-never-printed"


def test_expired_token_mid_push_is_renewed(tmp_path, image):
    layout, digest = image
    with token_stack(tmp_path) as (reg, server), fp.fault_proxy(reg.url, [], token_uses=5) as proxy:
        report = push(proxy.url, layout, digest, auth=R.BasicAuth("bob", PASSWORD), jobs=1,
                      chunk_size=64 * 1024)
        assert proxy.expired >= 2  # the registry refused an expired token, more than once
        assert report.token_requests == len(server.requests) == 1 + proxy.expired  # one renewal each
        assert report.blobs_uploaded == 4 and report.retries == 0
        assert_landed(f"{reg.host}/arr-trainer", digest, tmp_path, creds=f"bob:{PASSWORD}")


def test_a_renewed_token_refused_again_names_the_credentials(tmp_path, image):
    layout, digest = image
    with token_stack(tmp_path, revoke_after=1) as (reg, server), \
            fp.fault_proxy(reg.url, [], token_uses=3) as proxy:
        with pytest.raises(R.RegistryError) as err:
            push(proxy.url, layout, digest, auth=R.BasicAuth("bob", PASSWORD), jobs=1)
    message = str(err.value)
    assert "even with a fresh token from http://127.0.0.1:" in message
    assert "fix ARR_REGISTRY_USER (bob) / ARR_REGISTRY_PASSWORD" in message
    assert PASSWORD not in message
    assert proxy.expired == 1 and len(server.requests) == 2  # renewed once, then given up


@pytest.fixture
def trap(monkeypatch):
    """An HTTP proxy on loopback that records whatever is sent to a host off loopback."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append((self.path, "Authorization" in self.headers))
            body = json.dumps({"token": "trap"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with loopback.serving(Handler) as url:
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield seen


def test_plain_http_realm_off_loopback_is_refused_before_any_credential(tmp_path, image, trap):
    layout, digest = image
    realm = "http://token.example/token"
    with token_stack(tmp_path, realm=realm) as (reg, server):
        with pytest.raises(R.RegistryError, match=f"token realm {realm}: plain HTTP is only allowed to loopback"):
            push(reg.url, layout, digest, auth=R.BasicAuth("bob", PASSWORD))
        assert trap == [] and server.requests == []  # nothing went to any realm
        # the trap does catch what is sent to that realm: the empty list above is meaningful
        assert requests.get(realm, timeout=5).json() == {"token": "trap"}
        assert trap == [(realm, False)]
