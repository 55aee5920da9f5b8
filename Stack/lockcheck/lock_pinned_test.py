"""Every locked requirement is pinned to one version and to sha256 hashes.

pip installs exactly what the lock names only if nothing is left to resolve:
an unpinned or hash-less line would let the image and the tests drift apart.
"""

import os
import re

import pytest

_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._-]*\])?==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def parse_lock(text):
    """{name: (line, hashes)} for each requirement of a pip-compile --generate-hashes lock."""
    entries, current = {}, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not raw.startswith((" ", "\t")):
            match = _REQUIREMENT.match(line)
            if not match:
                raise ValueError(f"not a pinned requirement: {raw!r}")
            current = match.group("name").lower()
            entries[current] = (raw, [])
        if current is None:
            raise ValueError(f"option before any requirement: {raw!r}")
        entries[current][1].extend(_HASH.findall(line))
    return entries


@pytest.fixture(scope="module")
def lock():
    with open(os.environ["LOCK_FILE"]) as f:
        return parse_lock(f.read())


def test_lock_is_not_empty_and_has_the_core_stack(lock):
    for name in ("torch", "accelerate", "transformers", "google-cloud-aiplatform", "google-auth", "pytest"):
        assert name in lock, f"{name} missing from the lock"


def test_every_requirement_has_a_sha256_hash(lock):
    unhashed = [name for name, (_, hashes) in lock.items() if not hashes]
    assert unhashed == []


@pytest.mark.parametrize(
    "text, error",
    [
        ("torch>=2.0 \\\n    --hash=sha256:" + "0" * 64 + "\n", "not a pinned requirement"),
        ("torch \\\n", "not a pinned requirement"),
        ("    --hash=sha256:" + "0" * 64 + "\n", "option before any requirement"),
    ],
)
def test_parser_rejects_loose_lines(text, error):
    with pytest.raises(ValueError, match=error):
        parse_lock(text)


def test_parser_finds_hash_less_entries():
    parsed = parse_lock("six==1.17.0\nidna==3.20 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    assert parsed["six"][1] == [] and len(parsed["idna"][1]) == 1
