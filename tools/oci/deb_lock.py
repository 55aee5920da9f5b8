"""Resolve and lock the Debian packages of the image base.

Why: the base must build offline and byte-identically, so its inputs are
pinned by name, version, pool path (the Packages `Filename`) and sha256 in
`Stack/base/debian.lock.json`. The mirror is not part of the lock
(tools/oci/apt_sources.py). The main mirror drops superseded versions, so a
lock goes stale after a security update: rerun this tool (or point
ARR_DEBIAN_MIRROR at a snapshot archive that still has the locked versions).

    tools/bazel run //Stack/base:debian_lock.update        # rewrites the lock (the one way)

The index chain is verified: InRelease (gpgv against the Debian archive
keyring, when gpgv and the keyring exist) -> Packages.xz sha256 -> each
package's sha256 recorded here (and checked again at fetch time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

if __package__ in (None, ""):  # run as a script (bazel run, repository rules)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.oci import apt_sources

ROOTS = (
    "python3.11-minimal", "libpython3.11-stdlib", "libssl3", "ca-certificates", "tzdata",
    "netbase", "libstdc++6", "libgcc-s1", "libgomp1", "base-files", "libc-bin",
)
# Only maintainer scripts need these; the image makes their files itself.
EXCLUDED = ("awk", "debconf", "debconf-2.0", "dpkg", "openssl", "perl-base")
SOURCES = (("debian", "bookworm"), ("debian", "bookworm-updates"), ("debian-security", "bookworm-security"))
ARCH = "amd64"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
FIELDS = ("package", "version", "architecture", "filename", "sha256", "size",
          "depends", "pre-depends", "provides", "multi-arch")


# ---- Debian version comparison (dpkg's algorithm) -------------------------

def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate non-digit runs (with ~ sorting first) and
    numeric runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """<0, 0, >0 like dpkg --compare-versions."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return ea - eb
    return _compare_part(ua, ub) or _compare_part(ra, rb)


_RELATIONS = {
    ">=": lambda c: c >= 0, "<=": lambda c: c <= 0, ">>": lambda c: c > 0,
    "<<": lambda c: c < 0, "=": lambda c: c == 0, ">": lambda c: c >= 0, "<": lambda c: c <= 0,
}


def satisfies(version: str, relation: str | None, wanted: str | None) -> bool:
    if relation is None:
        return True
    return _RELATIONS[relation](compare_versions(version, wanted))


# ---- Packages index -------------------------------------------------------

_DEP = re.compile(r"^\s*([a-z0-9][a-z0-9+.\-]*)(?::[a-z0-9\-]+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?\s*(?:\[.*\])?\s*$")


def parse_relation(text: str) -> list[list[tuple[str, str | None, str | None]]]:
    """'a (>= 1) | b, c' -> [[(a, '>=', '1'), (b, None, None)], [(c, None, None)]]."""
    groups = []
    for group in filter(None, (g.strip() for g in text.split(","))):
        alternatives = []
        for alt in group.split("|"):
            m = _DEP.match(alt)
            if not m:
                raise ValueError(f"cannot parse dependency {alt!r}")
            alternatives.append((m.group(1), m.group(2), m.group(3)))
        groups.append(alternatives)
    return groups


def parse_packages(text: str, archive: str, suite: str) -> list[dict]:
    """Stanzas of a Packages file, only the fields the lock needs."""
    out = []
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t"):
                if key in fields:
                    fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.lower()
            if key in FIELDS:
                fields[key] = value.strip()
        if "package" in fields:
            fields["archive"], fields["suite"] = archive, suite
            out.append(fields)
    return out


class Index:
    """All candidate packages across the suites, newest version per name."""

    def __init__(self, stanzas: list[dict]):
        self.packages: dict[str, dict] = {}
        for s in stanzas:
            if s.get("architecture") not in (ARCH, "all"):
                continue
            old = self.packages.get(s["package"])
            if old is None or compare_versions(s["version"], old["version"]) > 0:
                self.packages[s["package"]] = s
        self.providers: dict[str, list[str]] = {}
        for name in sorted(self.packages):
            for group in parse_relation(self.packages[name].get("provides", "")):
                for provided, _, _ in group:
                    self.providers.setdefault(provided, []).append(name)

    def pick(self, alternatives, chosen: set[str], excluded: set[str]) -> str | None:
        """The package satisfying one dependency group; None when an excluded
        alternative comes first (its files are made by the image itself)."""
        for name, relation, version in alternatives:
            if name in excluded:
                return None
            pkg = self.packages.get(name)
            if pkg and satisfies(pkg["version"], relation, version):
                return name
            providers = self.providers.get(name, [])
            for provider in sorted(providers, key=lambda p: (p not in chosen, p)):
                if provider not in excluded:
                    return provider
        raise LookupError(f"unsatisfiable dependency {alternatives}")


def closure(index: Index, roots, excluded) -> list[dict]:
    """Depends + Pre-Depends closure of `roots`, sorted by name."""
    excluded = set(excluded)
    chosen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        if name not in index.packages:
            raise LookupError(f"root package {name!r} not in the index")
        chosen.add(name)
        pkg = index.packages[name]
        for field in ("pre-depends", "depends"):
            for group in parse_relation(pkg.get(field, "")):
                picked = index.pick(group, chosen, excluded)
                if picked and picked not in chosen:
                    todo.append(picked)
    return [index.packages[n] for n in sorted(chosen)]


def lock_document(packages: list[dict], roots, excluded, sources) -> dict:
    return {
        "comment": "Generated by tools/oci/deb_lock.py; regenerate with "
                   "`tools/bazel run //Stack/base:debian_lock.update`. No mirror here on purpose.",
        "architecture": ARCH,
        "sources": [{"archive": a, "suite": s} for a, s in sources],
        "roots": sorted(roots),
        "excluded": sorted(excluded),
        "packages": [
            {
                "name": p["package"], "version": p["version"], "architecture": p["architecture"],
                "archive": p["archive"], "suite": p["suite"], "filename": p["filename"],
                "sha256": p["sha256"], "size": int(p["size"]),
            }
            for p in packages
        ],
    }


# ---- Fetching the index ---------------------------------------------------

def fetch(url: str, attempts: int = 3) -> bytes:
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.read()
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def verify_inrelease(data: bytes, keyring: str = KEYRING, require: bool = False) -> None:
    """gpgv the InRelease file; without gpgv or keyring, warn (or fail if required)."""
    gpgv = next((p for p in ("/usr/bin/gpgv", "/bin/gpgv") if os.path.exists(p)), None)
    if not gpgv or not os.path.exists(keyring):
        if require:
            raise RuntimeError("gpgv or the Debian archive keyring is missing")
        print("warning: InRelease signature not checked (no gpgv/keyring)", file=sys.stderr)
        return
    with tempfile.NamedTemporaryFile(suffix=".InRelease") as f:
        f.write(data)
        f.flush()
        subprocess.run([gpgv, "--quiet", "--keyring", keyring, f.name], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def release_sha256(inrelease: str, path: str) -> tuple[str, int]:
    """(sha256, size) of `path` from the SHA256 section of a Release file."""
    in_section = False
    for line in inrelease.splitlines():
        if not line.startswith(" "):
            in_section = line.startswith("SHA256:")
            continue
        if in_section:
            digest, size, name = line.split()
            if name == path:
                return digest, int(size)
    raise LookupError(f"{path} not listed in Release")


def load_suite(base: str, archive: str, suite: str, require_signature=False) -> list[dict]:
    inrelease = fetch(f"{base}/dists/{suite}/InRelease")
    verify_inrelease(inrelease, require=require_signature)
    rel_path = f"main/binary-{ARCH}/Packages.xz"
    digest, size = release_sha256(inrelease.decode("utf-8", "replace"), rel_path)
    data = fetch(f"{base}/dists/{suite}/{rel_path}")
    if hashlib.sha256(data).hexdigest() != digest or len(data) != size:
        raise RuntimeError(f"{suite}/{rel_path}: sha256 does not match InRelease")
    return parse_packages(lzma.decompress(data).decode("utf-8"), archive, suite)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="lock file to write")
    parser.add_argument("--mirror", default=None, help=f"overrides ${apt_sources.ENV_VAR} and apt config")
    parser.add_argument("--etc-apt", default="/etc/apt")
    parser.add_argument("--require-signature", action="store_true")
    args = parser.parse_args(argv)
    out = args.out
    if not os.path.isabs(out) and os.environ.get("BUILD_WORKSPACE_DIRECTORY"):
        out = os.path.join(os.environ["BUILD_WORKSPACE_DIRECTORY"], out)
    mirrors = apt_sources.mirrors(args.mirror, args.etc_apt)
    started = time.monotonic()
    stanzas = []
    for archive, suite in SOURCES:
        stanzas += load_suite(apt_sources.resolve(archive, mirrors), archive, suite,
                              args.require_signature)
    packages = closure(Index(stanzas), ROOTS, EXCLUDED)
    document = lock_document(packages, ROOTS, EXCLUDED, SOURCES)
    with open(out + ".tmp", "w") as f:
        json.dump(document, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(out + ".tmp", out)
    total = sum(p["size"] for p in document["packages"])
    print(f"locked {len(packages)} packages, {total / 1e6:.1f} MB of .debs, "
          f"in {time.monotonic() - started:.1f} s -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
