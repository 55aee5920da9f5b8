"""Stub of buildozer's module extension: creates the empty repo bazel_tools asks for."""

def _empty_repo_impl(rctx):
    rctx.file("BUILD.bazel", "# Empty stub: buildozer is not available in this Bazel root.\n")

_empty_repo = repository_rule(implementation = _empty_repo_impl)

def _buildozer_binary_impl(_module_ctx):
    _empty_repo(name = "buildozer_binary")

buildozer_binary = module_extension(implementation = _buildozer_binary_impl)
