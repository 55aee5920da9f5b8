"""Where the Debian packages come from: the host's apt configuration or a setting.

Why: the lock pins packages by pool path and sha256 but never names a mirror
(docs/architecture.md, decision 4), so every machine uses the mirror it is allowed
to reach, and a snapshot archive can be swapped in when the main mirror has
dropped a superseded version.

A mirror map is {archive: base URL}, where the archive is the last path
debian* component of the URI ("debian", "debian-security"). An archive the
config does not name is derived from another one by replacing that component,
which is how deb.debian.org and snapshot.debian.org lay out their archives
(.../archive/debian/<time> and .../archive/debian-security/<time>).

    python3 tools/oci/apt_sources.py [--setting "$ARR_DEBIAN_MIRROR"] [--etc /etc/apt] [--archive NAME ...]
prints the map as JSON (used by the Bazel repository rule).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

ENV_VAR = "ARR_DEBIAN_MIRROR"


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    """Split a deb822 .sources file into {field: value} stanzas (comments and
    continuation lines handled; field names lower-cased)."""
    stanzas, current, key = [], {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_deb822(text: str) -> list[tuple[str, str]]:
    """[(uri, suite)] of the enabled `deb` entries of a .sources file."""
    out = []
    for stanza in _deb822_stanzas(text):
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        for uri in stanza.get("uris", "").split():
            out.extend((uri, suite) for suite in stanza.get("suites", "").split())
    return out


def parse_one_line(text: str) -> list[tuple[str, str]]:
    """[(uri, suite)] of `deb [options] URI SUITE COMPONENTS...` lines."""
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            out.append((words[0], words[1]))
    return out


def host_sources(etc: str = "/etc/apt") -> list[tuple[str, str]]:
    """Every (uri, suite) the host's apt would use, in file order."""
    out = []
    one_line = [os.path.join(etc, "sources.list")] + sorted(glob.glob(os.path.join(etc, "sources.list.d", "*.list")))
    for path in one_line:
        if os.path.isfile(path):
            with open(path) as f:
                out.extend(parse_one_line(f.read()))
    for path in sorted(glob.glob(os.path.join(etc, "sources.list.d", "*.sources"))):
        with open(path) as f:
            out.extend(parse_deb822(f.read()))
    return out


def archive_name(uri: str) -> str:
    """'http://m/debian-security' -> 'debian-security'; a snapshot URL
    '.../archive/debian/20250520T000000Z' -> 'debian' (last debian* component)."""
    parts = uri.split("://", 1)[-1].rstrip("/").split("/")[1:]
    named = [p for p in parts if p.startswith("debian")]
    return named[-1] if named else (parts[-1] if parts else "")


def _replace_component(url: str, old: str, new: str) -> str | None:
    """Swap the last path component equal to `old` for `new`."""
    scheme, _, rest = url.partition("://")
    parts = rest.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] == old:
            parts[i] = new
            return scheme + "://" + "/".join(parts)
    return None


def mirror_map(sources: list[tuple[str, str]]) -> dict[str, str]:
    """{archive: uri}, first mention wins (apt's own order)."""
    out: dict[str, str] = {}
    for uri, _suite in sources:
        if uri.startswith(("http://", "https://", "file:")):
            out.setdefault(archive_name(uri), uri.rstrip("/"))
    return out


def parse_setting(setting: str) -> dict[str, str]:
    """`URL` (the "debian" archive) or `archive=URL archive=URL ...`."""
    out = {}
    for word in setting.replace(",", " ").split():
        if "=" in word and not word.startswith(("http", "file")):
            name, url = word.split("=", 1)
            out[name] = url.rstrip("/")
        else:
            out[archive_name(word) or "debian"] = word.rstrip("/")
    return out


def resolve(archive: str, mirrors: dict[str, str]) -> str:
    """Base URL for `archive`, derived from a sibling archive if unnamed."""
    if archive in mirrors:
        return mirrors[archive]
    for name, url in sorted(mirrors.items()):
        derived = _replace_component(url, name, archive)
        if derived:
            return derived
    raise LookupError(f"no mirror for Debian archive {archive!r}; set {ENV_VAR}")


def mirrors(setting: str | None = None, etc: str = "/etc/apt") -> dict[str, str]:
    """The mirror map: an explicit setting (argument or $ARR_DEBIAN_MIRROR) wins
    over the host's apt configuration."""
    setting = setting if setting is not None else os.environ.get(ENV_VAR, "")
    if setting.strip():
        return parse_setting(setting)
    found = mirror_map(host_sources(etc))
    if not found:
        raise LookupError(f"no deb source in {etc}; set {ENV_VAR}")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default=None)
    parser.add_argument("--etc", default="/etc/apt")
    parser.add_argument("--archive", action="append", default=[],
                        help="print the resolved URL of these archives only")
    args = parser.parse_args(argv)
    found = mirrors(args.setting, args.etc)
    if args.archive:
        found = {a: resolve(a, found) for a in args.archive}
    json.dump(found, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
