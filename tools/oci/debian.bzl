"""The locked Debian packages of the image base, as a repository.

Why a repository rule: build actions have no network. The .debs are fetched
with Bazel's downloader (so the repository cache keeps them and a second
output base or an offline rebuild needs no mirror) and verified against the
sha256 in the lock. The mirror is not in the lock: `--repo_env=ARR_DEBIAN_MIRROR=URL`
(or `debian=URL debian-security=URL`, e.g. a snapshot archive) wins, otherwise
the host's apt configuration is read at fetch time (tools/oci/apt_sources.py).

MODULE.bazel:

    debian = use_extension("//tools/oci:debian.bzl", "debian")
    debian.lock(name = "debian_bookworm", lock = "//Stack/base:debian.lock.json")
    use_repo(debian, "debian_bookworm")
"""

_BUILD = """\
filegroup(
    name = "debs",
    srcs = glob(["debs/*.deb"]),
    visibility = ["//visibility:public"],
)

exports_files(["lock.json"])
"""

def _mirrors(rctx, archives):
    """{archive: base URL}, resolved by tools/oci/apt_sources.py (one
    implementation of the setting and apt-config rules)."""
    python = rctx.which("python3.11") or rctx.which("python3")
    if not python:
        fail("a python3 is needed to read the apt configuration; or set --repo_env=ARR_DEBIAN_MIRROR=URL")
    cmd = [python, rctx.path(rctx.attr._apt_sources)]
    setting = rctx.os.environ.get("ARR_DEBIAN_MIRROR", "")
    if setting:
        cmd += ["--setting", setting]
    for archive in archives:
        cmd += ["--archive", archive]
    result = rctx.execute(cmd)
    if result.return_code != 0:
        fail("cannot find a Debian mirror (%s); set --repo_env=ARR_DEBIAN_MIRROR=URL" % result.stderr)
    return json.decode(result.stdout)

def _deb_name(pkg):
    return "%s_%s_%s.deb" % (pkg["name"], pkg["version"].replace(":", "%3a"), pkg["architecture"])

def _debian_packages_impl(rctx):
    lock = json.decode(rctx.read(rctx.attr.lock))
    mirrors = _mirrors(rctx, sorted({p["archive"]: True for p in lock["packages"]}.keys()))
    pending = []
    for pkg in lock["packages"]:
        url = "%s/%s" % (mirrors[pkg["archive"]], pkg["filename"])
        pending.append(rctx.download(
            url = url,
            output = "debs/" + _deb_name(pkg),
            sha256 = pkg["sha256"],
            canonical_id = pkg["filename"],
            block = False,
        ))
    for token in pending:
        token.wait()
    rctx.symlink(rctx.attr.lock, "lock.json")
    rctx.file("BUILD.bazel", _BUILD)

debian_packages = repository_rule(
    implementation = _debian_packages_impl,
    attrs = {
        "lock": attr.label(mandatory = True, allow_single_file = True),
        "_apt_sources": attr.label(default = "//tools/oci:apt_sources.py", allow_single_file = True),
    },
    environ = ["ARR_DEBIAN_MIRROR"],
)

_lock_tag = tag_class(attrs = {
    "name": attr.string(mandatory = True),
    "lock": attr.label(mandatory = True),
})

def _debian_impl(mctx):
    for mod in mctx.modules:
        for tag in mod.tags.lock:
            debian_packages(name = tag.name, lock = tag.lock)

debian = module_extension(
    implementation = _debian_impl,
    tag_classes = {"lock": _lock_tag},
)
