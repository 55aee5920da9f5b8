"""The Debian inputs: mirror discovery, index parsing, dependency closure,
version order and the .deb reader. Pure functions, table-driven."""

import pytest

from tools.oci import apt_sources, deb_lock, debfile
from tools.oci.deb_fixtures import make_deb

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Enabled: yes
"""


def test_deb822_sources():
    assert apt_sources.parse_deb822(DEB822) == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://mirror.example/debian", "bookworm-updates"),
        ("http://mirror.example/debian-security", "bookworm-security"),
    ]


@pytest.mark.parametrize("line,expected", [
    ("deb http://m.example/debian bookworm main", [("http://m.example/debian", "bookworm")]),
    ("deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian sid main",
     [("http://m.example/debian", "sid")]),
    ("deb-src http://m.example/debian bookworm main", []),
    ("# deb http://m.example/debian bookworm main", []),
])
def test_one_line_sources(line, expected):
    assert apt_sources.parse_one_line(line) == expected


@pytest.mark.parametrize("setting,archive,url", [
    ("http://snap.example/archive/debian/2025", "debian", "http://snap.example/archive/debian/2025"),
    ("http://m.example/debian", "debian-security", "http://m.example/debian-security"),
    ("http://snap.example/archive/debian/20250520T000000Z", "debian-security",
     "http://snap.example/archive/debian-security/20250520T000000Z"),
    ("debian=http://a.example/x debian-security=http://b.example/y", "debian-security", "http://b.example/y"),
])
def test_mirror_setting(setting, archive, url):
    assert apt_sources.resolve(archive, apt_sources.parse_setting(setting)) == url


def test_host_config_is_read(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert apt_sources.mirrors("", str(tmp_path)) == {
        "debian": "http://mirror.example/debian",
        "debian-security": "http://mirror.example/debian-security",
    }


def test_no_mirror_is_a_clear_error(tmp_path):
    with pytest.raises(LookupError, match="ARR_DEBIAN_MIRROR"):
        apt_sources.mirrors("", str(tmp_path))


@pytest.mark.parametrize("a,b,sign", [
    ("1.0", "1.0", 0), ("1.0", "1.1", -1), ("1.10", "1.9", 1), ("1.0~rc1", "1.0", -1),
    ("1:1.0", "2.0", 1), ("2.36-9+deb12u4", "2.36-9+deb12u14", -1), ("1.0a", "1.0+", -1),
    ("3.0.15-1~deb12u1", "3.0.15-1", -1), ("1.0-1", "1.0-1.1", -1),
])
def test_compare_versions(a, b, sign):
    result = deb_lock.compare_versions(a, b)
    assert (result > 0) - (result < 0) == sign


def test_parse_relation():
    assert deb_lock.parse_relation("libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, python3:any") == [
        [("libc6", ">=", "2.34")],
        [("debconf", ">=", "0.5"), ("debconf-2.0", None, None)],
        [("python3", None, None)],
    ]


PACKAGES = """\
Package: app
Version: 1
Architecture: amd64
Depends: libc6 (>= 2), debconf | debconf-2.0, awk
Pre-Depends: libz
Filename: pool/a/app_1_amd64.deb
SHA256: aa
Size: 10

Package: libc6
Version: 2
Architecture: amd64
Filename: pool/l/libc6_2_amd64.deb
SHA256: bb
Size: 20

Package: libc6
Version: 3
Architecture: amd64
Filename: pool/l/libc6_3_amd64.deb
SHA256: cc
Size: 30

Package: zlib
Version: 1
Architecture: amd64
Provides: libz
Filename: pool/z/zlib_1_amd64.deb
SHA256: dd
Size: 5

Package: mawk
Version: 1
Architecture: amd64
Provides: awk
Filename: pool/m/mawk_1_amd64.deb
SHA256: ee
Size: 5
"""


def test_closure_picks_newest_follows_provides_and_skips_excluded():
    index = deb_lock.Index(deb_lock.parse_packages(PACKAGES, "debian", "bookworm"))
    picked = deb_lock.closure(index, ["app"], ["debconf", "awk"])
    assert [(p["package"], p["version"]) for p in picked] == [("app", "1"), ("libc6", "3"), ("zlib", "1")]


def test_unsatisfiable_dependency_is_refused():
    index = deb_lock.Index(deb_lock.parse_packages(PACKAGES.replace("libc6 (>= 2)", "libc6 (>= 9)"),
                                                   "debian", "bookworm"))
    with pytest.raises(LookupError, match="unsatisfiable"):
        deb_lock.closure(index, ["app"], ["debconf", "awk"])


def test_lock_document_has_no_mirror():
    index = deb_lock.Index(deb_lock.parse_packages(PACKAGES, "debian", "bookworm"))
    doc = deb_lock.lock_document(deb_lock.closure(index, ["app"], ["debconf", "awk"]),
                                 ["app"], ["awk"], deb_lock.SOURCES)
    assert doc["packages"][0] == {"name": "app", "version": "1", "architecture": "amd64",
                                  "archive": "debian", "suite": "bookworm",
                                  "filename": "pool/a/app_1_amd64.deb", "sha256": "aa", "size": 10}
    assert "http" not in str(doc)


def test_release_sha256():
    release = "SHA256:\n 0123 99 main/binary-amd64/Packages.xz\n 4567 5 main/other\nSHA512:\n"
    assert deb_lock.release_sha256(release, "main/binary-amd64/Packages.xz") == ("0123", 99)
    with pytest.raises(LookupError):
        deb_lock.release_sha256(release, "missing")


def test_deb_reader(tmp_path):
    deb = make_deb(tmp_path / "t.deb", "t", [
        ("./usr/", "dir", None, 0o755),
        ("./usr/bin/", "dir", None, 0o755),
        ("./usr/bin/t", "file", b"#!t\n", 0o755),
        ("./usr/bin/u", "hardlink", "./usr/bin/t", 0o755),
        ("./usr/bin/v", "symlink", "t", 0o777),
    ])
    entries = {e.path: e for e in debfile.data_entries(deb)}
    assert entries["usr/bin/t"].data == b"#!t\n" and entries["usr/bin/t"].mode == 0o755
    assert entries["usr/bin/u"].kind == "hardlink" and entries["usr/bin/u"].target == "usr/bin/t"
    assert entries["usr/bin/v"].target == "t"
    assert b"Package: t" in debfile.control_files(deb)["control"]


def test_zstd_is_refused_clearly(tmp_path):
    deb = make_deb(tmp_path / "z.deb", "z", [], data_suffix="zst")
    with pytest.raises(debfile.DebError, match="zstd"):
        list(debfile.data_entries(deb))


def test_not_an_ar_archive(tmp_path):
    (tmp_path / "x.deb").write_bytes(b"PK\x03\x04")
    with pytest.raises(debfile.DebError, match="not an ar"):
        list(debfile.data_entries(tmp_path / "x.deb"))
