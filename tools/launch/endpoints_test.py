"""Endpoints from flags, which API may be called, registry URLs, the loopback rule, the short tag."""

import argparse

import pytest

from tools.launch import built_image
from tools.launch import endpoints as E

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
    assert built_image.reference(reg.host, reg.repository("arr-trainer"), DIGEST) == f"{host}/{repo}@{DIGEST}"


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
    assert built_image.short_tag(DIGEST) == "9abcdef"  # DIGEST ends in ...89abcdef


LOCAL = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "eps,api,allowed",
    [
        (E.Endpoints(), "quota", True),  # nothing overridden: Google's own APIs
        (E.Endpoints(), "storage", True),
        (E.Endpoints(), "logging", True),
        (E.Endpoints(), "iam", False),  # IAM only ever at --iam-endpoint
        (E.Endpoints(iam=LOCAL), "iam", True),
        (E.Endpoints(registry=LOCAL), "quota", False),  # private: no Google call without its own flag
        (E.Endpoints(vertex=LOCAL), "storage", False),
        (E.Endpoints(vertex=LOCAL), "logging", False),
        (E.Endpoints(vertex=LOCAL, quota=LOCAL), "quota", True),
        (E.Endpoints(vertex=LOCAL, logging=LOCAL), "logging", True),
        (E.Endpoints(quota=LOCAL), "storage", True),  # a quota override alone is not a private setup
    ],
)
def test_may_call(eps, api, allowed):
    assert eps.may_call(api) is allowed


def test_built_once_from_flags_with_subcommands_lacking_some():
    args = argparse.Namespace(registry=LOCAL, vertex_endpoint=LOCAL, quota_endpoint=None, storage_endpoint="",
                              iam_endpoint=None, logging_endpoint=LOCAL)
    assert E.Endpoints.from_flags(args) == E.Endpoints(registry=LOCAL, vertex=LOCAL, logging=LOCAL)
    assert E.Endpoints.from_flags(argparse.Namespace(vertex_endpoint=LOCAL)) == E.Endpoints(vertex=LOCAL)


def test_flags_win_over_a_launchs_stored_endpoints_which_round_trip():
    stored = E.Endpoints(registry=LOCAL, vertex=LOCAL, logging=LOCAL)
    record = {"endpoints": stored.as_json()}
    assert E.Endpoints.from_record(record) == stored
    assert E.Endpoints(vertex="http://127.0.0.1:7").over(stored) == E.Endpoints(
        registry=LOCAL, vertex="http://127.0.0.1:7", logging=LOCAL)


def test_records_of_older_launchers_keep_their_vertex_and_logging_endpoints():
    old = {"vertex_endpoint": LOCAL, "logging_endpoint": None, "private": True}
    eps = E.Endpoints.from_record(old)
    assert eps == E.Endpoints(vertex=LOCAL) and eps.private and not eps.may_call("logging")
