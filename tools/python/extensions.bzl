"""A Python 3.11 toolchain found on PATH at fetch time.

Why not rules_python's hermetic interpreters: they download from GitHub, which
is unreachable here. tools/bazel puts a venv over the host's python3.11 first on
PATH (a venv, so the host interpreter's site-packages never leak into tests);
bazelisk users provide their own python3.11 on PATH, ideally a venv too.
"""

load(":wheel_hub.bzl", "wheel_hub")

_BUILD = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
    visibility = ["//visibility:public"],
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

def _python311_impl(rctx):
    python = rctx.which("python3.11")
    if not python:
        fail("No python3.11 on PATH. tools/bazel provides one; with bazelisk, put a Python 3.11 (a venv) first on PATH.")
    result = rctx.execute([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    if result.return_code != 0 or result.stdout.strip() != "3.11":
        fail("{} is not a working Python 3.11: {}{}".format(python, result.stdout, result.stderr))
    rctx.file("BUILD.bazel", _BUILD.format(python = python))

python311 = repository_rule(
    implementation = _python311_impl,
    environ = ["PATH"],
    local = True,
)

def _host_python_impl(_module_ctx):
    python311(name = "python311")

host_python = module_extension(implementation = _host_python_impl)

def _wheel_hubs_impl(module_ctx):
    for mod in module_ctx.modules:
        for hub in mod.tags.hub:
            wheel_hub(name = hub.name, lock = hub.lock, platforms = hub.platforms, host = hub.host)

wheel_hubs = module_extension(
    implementation = _wheel_hubs_impl,
    doc = "A hub whose aliases pick the pip.parse hub of the platform being built for (wheel_hub.bzl).",
    tag_classes = {"hub": tag_class(attrs = {
        "name": attr.string(mandatory = True),
        "lock": attr.label(mandatory = True),
        "platforms": attr.string_dict(),
        "host": attr.string(mandatory = True),
    })},
)
