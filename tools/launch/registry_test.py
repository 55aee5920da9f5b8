"""The registry client's pure rules: Retry-After, upload ranges, waits, realm and credential scope."""

import email.utils

import pytest

from tools.launch import registry as R

NOW = 1_700_000_000.0


def http_date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


@pytest.mark.parametrize(
    "value,seconds",
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (http_date(NOW + 30), 30.0),
        (http_date(NOW - 30), 0.0),  # already past: no wait
        ("Tue, 14 Nov 2023 22:13:50", 30.0),  # no zone: RFC 9110 dates are GMT
        ("soon", None),
        ("-1", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, seconds):
    assert R.parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    "value,held",
    [
        ("0-65535", 65536),
        ("bytes=0-99", 100),
        ("0-0", None),  # empty (distribution 2.8) or one byte (the spec): ambiguous
        ("5-10", None),  # a session always holds a prefix
        ("0-", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_upload_range(value, held):
    assert R.parse_upload_range(value) == held


@pytest.mark.parametrize(
    "retry,retry_after,wait",
    [
        (0, None, 0.5),
        (2, None, 2.0),  # doubling
        (10, None, 60.0),  # capped
        (0, 7.0, 7.0),  # the registry's Retry-After replaces the backoff
        (3, 0.0, 0.0),
        (0, 3600.0, 60.0),  # capped
    ],
)
def test_retry_wait(retry, retry_after, wait):
    assert R.RetryPolicy(retries=4, backoff=0.5, max_wait=60.0).wait(retry, retry_after) == wait


@pytest.mark.parametrize(
    "realm",
    ["https://auth.example.com/token", "http://127.0.0.1:5001/token", "http://localhost/token",
     "http://[::1]:8080/token"],
)
def test_realm_allowed(realm):
    assert R.check_realm(realm, "https://registry.example.com") == realm


@pytest.mark.parametrize(
    "realm,message",
    [
        ("http://auth.example.com/token", "plain HTTP is only allowed to loopback"),
        ("http://10.0.0.1/token", "plain HTTP is only allowed to loopback"),
        ("ftp://127.0.0.1/token", "not an http"),
        ("/token", "not an http"),
        ("", "without realm"),
        (None, "without realm"),
    ],
)
def test_realm_refused(realm, message):
    with pytest.raises(R.RegistryError, match=message):
        R.check_realm(realm, "http://127.0.0.1:5000")


@pytest.mark.parametrize(
    "url,allowed",
    [
        ("https://reg.example.com/v2/x/blobs/uploads/1?_state=a", True),
        ("https://REG.example.com/v2/x", True),
        ("https://storage.example.com/upload/1", False),  # an upload Location elsewhere
        ("https://reg.example.com:8443/v2/x", False),
        ("http://reg.example.com/v2/x", False),
    ],
)
def test_credentials_only_to_the_registry_origin(url, allowed):
    assert R.may_carry_credentials(url, "https://reg.example.com") is allowed


def test_basic_auth_repr_hides_the_password():
    assert "s3cret" not in repr(R.BasicAuth("alice", "s3cret"))
