"""Download the .debs pinned in a lock and verify size and sha256.

Bazel fetches through its own downloader (tools/oci/debian.bzl, which uses
`repository_ctx.download(sha256=...)` and so the repository cache); this
module is the same step for hosts without Bazel and for measurements:

    python3 tools/oci/deb_fetch.py --lock Stack/base/debian.lock.json --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.oci import apt_sources
from tools.oci.deb_lock import fetch


def deb_name(package: dict) -> str:
    """Local file name: name_version_arch.deb with ':' (epochs) made safe."""
    version = package["version"].replace(":", "%3a")
    return f"{package['name']}_{version}_{package['architecture']}.deb"


def url_for(package: dict, mirrors: dict[str, str]) -> str:
    return f"{apt_sources.resolve(package['archive'], mirrors)}/{package['filename']}"


def verify(path: str, package: dict) -> None:
    """Refuse a .deb whose bytes are not the locked ones."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    if sha.hexdigest() != package["sha256"] or os.path.getsize(path) != package["size"]:
        raise RuntimeError(f"{package['name']}: sha256/size mismatch for {path} "
                           "(stale mirror? regenerate the lock or use a snapshot mirror)")


def fetch_one(package: dict, mirrors: dict[str, str], out_dir: str) -> str:
    path = os.path.join(out_dir, deb_name(package))
    if os.path.exists(path):
        try:
            verify(path, package)
            return path
        except RuntimeError:
            os.unlink(path)
    data = fetch(url_for(package, mirrors))
    with open(path + ".part", "wb") as f:
        f.write(data)
    verify(path + ".part", package)
    os.replace(path + ".part", path)
    return path


def fetch_lock(lock: dict, mirrors: dict[str, str], out_dir: str, jobs: int = 8) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda p: fetch_one(p, mirrors, out_dir), lock["packages"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mirror", default=None)
    args = parser.parse_args(argv)
    with open(args.lock) as f:
        lock = json.load(f)
    started = time.monotonic()
    paths = fetch_lock(lock, apt_sources.mirrors(args.mirror), args.out)
    print(f"fetched {len(paths)} .debs in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
