"""Registry URL parsing, the loopback rule and the short tag: table-driven."""

import pytest

from tools.launch import endpoints as E
from tools.launch import image

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "url,base,host,repo",
    [
        ("http://127.0.0.1:5000/team", "http://127.0.0.1:5000", "127.0.0.1:5000", "team/arr-trainer"),
        ("http://localhost:5000", "http://localhost:5000", "localhost:5000", "arr-trainer"),
        ("http://[::1]:5000/a/b/", "http://[::1]:5000", "[::1]:5000", "a/b/arr-trainer"),
        ("us-central1-docker.pkg.dev/p/arr-coc-registry", "https://us-central1-docker.pkg.dev",
         "us-central1-docker.pkg.dev", "p/arr-coc-registry/arr-trainer"),
    ],
)
def test_parse_registry(url, base, host, repo):
    reg = E.parse_registry(url)
    assert (reg.base, reg.host, reg.repository("arr-trainer")) == (base, host, repo)
    assert image.reference(reg.host, reg.repository("arr-trainer"), DIGEST) == f"{host}/{repo}@{DIGEST}"


@pytest.mark.parametrize("url", ["http://10.0.0.1:5000", "http://registry.example.com/x", "ftp://127.0.0.1/x"])
def test_plain_http_only_to_loopback(url):
    with pytest.raises(E.EndpointError):
        E.parse_registry(url)


@pytest.mark.parametrize(
    "url,expected",
    [("http://127.0.0.1:8080", "http://127.0.0.1:8080"), ("https://x.googleapis.com", "x.googleapis.com"),
     ("x.googleapis.com", "x.googleapis.com")],
)
def test_api_endpoint(url, expected):
    assert E.api_endpoint(url) == expected


def test_short_tag_is_the_last_seven_hex():
    assert image.short_tag(DIGEST) == "89abcdef"[-7:] and image.short_tag(DIGEST) != "latest"
