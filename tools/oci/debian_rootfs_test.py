"""Base assembly invariants on synthetic .debs: merged /usr, generated files,
owners, refusals (duplicates, dangling links, paths below links)."""

import tarfile

import pytest

from tools.oci import debian_rootfs, layout
from tools.oci.layout import LayerError
from tools.oci.deb_fixtures import make_deb

CERT_A = b"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----"
CERT_B = b"-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"


def _debs(tmp_path, extra=()):
    libc = make_deb(tmp_path / "libc6.deb", "libc6", [
        ("./lib/", "dir", None, 0o755),
        ("./lib/x86_64-linux-gnu/", "dir", None, 0o755),
        ("./lib/x86_64-linux-gnu/libc.so.6", "file", b"ELF", 0o755),
        ("./lib64/", "dir", None, 0o755),
        ("./lib64/ld-linux-x86-64.so.2", "symlink", "/lib/x86_64-linux-gnu/libc.so.6", 0o777),
    ], multi_arch="same")
    python = make_deb(tmp_path / "python3.11-minimal.deb", "python3.11-minimal", [
        ("./usr/", "dir", None, 0o755),
        ("./usr/bin/", "dir", None, 0o755),
        ("./usr/bin/python3.11", "file", b"ELF", 0o755),
        ("./usr/lib/", "dir", None, 0o755),
        ("./usr/lib/python3.11/", "dir", None, 0o755),
        ("./usr/lib/python3.11/os.py", "file", b"x = 1\n", 0o644),
        ("./usr/share/man/man1/python3.11.1.gz", "file", b"man", 0o644),
        ("./usr/share/doc/python3.11-minimal/copyright", "file", b"PSF", 0o644),
        ("./usr/share/doc/python3.11-minimal/README", "file", b"doc", 0o644),
    ])
    certs = make_deb(tmp_path / "ca-certificates.deb", "ca-certificates", [
        ("./usr/share/ca-certificates/mozilla/", "dir", None, 0o755),
        ("./usr/share/ca-certificates/mozilla/B.crt", "file", CERT_B, 0o644),
        ("./usr/share/ca-certificates/mozilla/A.crt", "file", CERT_A, 0o644),
        ("./etc/ssl/certs/", "dir", None, 0o755),
    ])
    tz = make_deb(tmp_path / "tzdata.deb", "tzdata", [
        ("./usr/share/zoneinfo/Etc/UTC", "file", b"TZif", 0o644),
    ])
    libcbin = make_deb(tmp_path / "libc-bin.deb", "libc-bin", [
        ("./sbin/ldconfig", "file", b"ELF", 0o755),
        ("./usr/bin/locale", "file", b"ELF", 0o755),
        ("./usr/lib/locale/C.utf8/LC_CTYPE", "file", b"ctype", 0o644),
    ])
    names = ["libc6", "python3.11-minimal", "ca-certificates", "tzdata", "libc-bin"]
    paths = [libc, python, certs, tz, libcbin]
    pairs = list(zip(names, map(str, paths))) + list(extra)
    return pairs


@pytest.fixture
def fs(tmp_path):
    return debian_rootfs.build_rootfs(_debs(tmp_path))


@pytest.mark.parametrize("name,target", [
    ("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
    ("usr/bin/python3", "python3.11"), ("usr/bin/python", "python3.11"),
    ("usr/lib/ssl/certs", "/etc/ssl/certs"), ("usr/lib/ssl/cert.pem", "/etc/ssl/certs/ca-certificates.crt"),
    ("etc/localtime", "/usr/share/zoneinfo/Etc/UTC"),
])
def test_links(fs, name, target):
    assert fs.entries[name].kind == layout.SYMLINK and fs.entries[name].target == target


def test_merged_usr_moves_package_paths(fs):
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in fs.entries
    assert fs.resolve("lib64/ld-linux-x86-64.so.2") == "usr/lib/x86_64-linux-gnu/libc.so.6"
    assert not any(p.startswith(("lib/", "bin/", "sbin/", "lib64/")) for p in fs.entries)


@pytest.mark.parametrize("path,mode,uid", [
    ("tmp", 0o1777, 0), ("var/tmp", 0o1777, 0), ("root", 0o700, 0),
    ("home/nonroot", 0o700, 65532),
])
def test_generated_dirs(fs, path, mode, uid):
    entry = fs.entries[path]
    assert (entry.mode, entry.uid, entry.gid) == (mode, uid, uid)


def test_users_and_groups(fs):
    assert b"nonroot:x:65532:65532:" in fs.entries["etc/passwd"].data
    assert fs.entries["etc/group"].data.splitlines()[0] == b"root:x:0:"


def test_ca_bundle_is_sorted_concatenation(fs):
    assert fs.entries["etc/ssl/certs/ca-certificates.crt"].data == CERT_A + b"\n" + CERT_B


def test_libc_bin_keeps_only_the_listed_files(fs):
    assert "usr/sbin/ldconfig" in fs.entries and "usr/lib/locale/C.utf8/LC_CTYPE" in fs.entries
    assert "usr/bin/locale" not in fs.entries


def test_docs_keep_only_copyright(fs):
    assert "usr/share/doc/python3.11-minimal/copyright" in fs.entries
    assert "usr/share/doc/python3.11-minimal/README" not in fs.entries
    assert not any(p.startswith("usr/share/man/") for p in fs.entries)


def test_dpkg_database(fs):
    status = fs.entries["var/lib/dpkg/status"].data.decode()
    assert "Package: libc6\nStatus: install ok installed\n" in status
    assert "var/lib/dpkg/info/libc6:amd64.list" in fs.entries  # Multi-Arch: same
    listing = fs.entries["var/lib/dpkg/info/libc-bin.list"].data.decode()
    assert "/sbin/ldconfig\n" in listing and "/usr/bin/locale" not in listing


def test_stdlib_pyc_is_unchecked_hash(fs):
    data = fs.entries["usr/lib/python3.11/__pycache__/os.cpython-311.pyc"].data
    assert layout.is_deterministic_pyc(data[:16])


def test_layer_is_deterministic_and_owned_per_entry(tmp_path, fs):
    one = layout.write_layer(fs.entries.values(), tmp_path / "1.tar.gz", refuse_top=())
    again = debian_rootfs.build_rootfs(_debs(tmp_path))
    two = layout.write_layer(again.entries.values(), tmp_path / "2.tar.gz", refuse_top=())
    assert one.digest == two.digest
    with tarfile.open(tmp_path / "1.tar.gz") as tar:
        owners = {m.name: m.uid for m in tar.getmembers()}
    assert owners["home/nonroot"] == 65532 and owners["etc/passwd"] == 0


def test_duplicate_file_is_refused(tmp_path):
    dup = make_deb(tmp_path / "dup.deb", "dup", [("./bin/ldconfig", "file", b"other", 0o755),
                                                  ("./sbin/ldconfig", "file", b"other", 0o755)])
    with pytest.raises(LayerError, match="shipped twice"):
        debian_rootfs.build_rootfs(_debs(tmp_path, [("dup", str(dup))]))


def test_dangling_link_is_refused(tmp_path):
    bad = make_deb(tmp_path / "bad.deb", "bad", [("./usr/bin/gone", "symlink", "/usr/bin/nothing", 0o777)])
    with pytest.raises(LayerError, match="dangling"):
        debian_rootfs.build_rootfs(_debs(tmp_path, [("bad", str(bad))]))


def test_path_below_a_link_is_refused(tmp_path):
    bad = make_deb(tmp_path / "bad.deb", "bad", [("./etc/localtime/x", "file", b"", 0o644)])
    with pytest.raises(LayerError, match="entries below it"):
        debian_rootfs.build_rootfs(_debs(tmp_path, [("bad", str(bad))]), compile_pyc=False)


def test_match_debs_by_sha256(tmp_path):
    pairs = _debs(tmp_path)
    import hashlib
    lock = {"packages": [{"name": n, "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest()}
                         for n, p in pairs]}
    assert sorted(debian_rootfs.match_debs(lock, [p for _, p in pairs])) == sorted(pairs)
    lock["packages"].append({"name": "ghost", "sha256": "0" * 64})
    with pytest.raises(LayerError, match="ghost"):
        debian_rootfs.match_debs(lock, [p for _, p in pairs])
