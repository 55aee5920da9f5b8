"""oci_layer: plain files at chosen paths; debian_base_layer: a root filesystem from locked .debs."""

load(":common.bzl", "LAYER_EXEC", "split_platform", "tool_attr")
load(":providers.bzl", "ImagePythonInfo", "OciLayersInfo")

def _layer_outputs(ctx):
    blob = ctx.actions.declare_file(ctx.label.name + ".tar.gz")
    return blob, ctx.actions.declare_file(ctx.label.name + ".tar.gz.json")

def _oci_layer_impl(ctx):
    blob, sidecar = _layer_outputs(ctx)
    args = ctx.actions.args()
    args.add("layer")
    for target, dest in ctx.attr.files.items():
        for f in target.files.to_list():
            args.add("--file", "%s=%s" % (f.path, dest))
    args.add("--out", blob)
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = ctx.files.files,
        outputs = [blob, sidecar],
        mnemonic = "OciLayer",
        progress_message = "Writing layer %{label}",
        execution_requirements = LAYER_EXEC,
    )
    return [
        DefaultInfo(files = depset([blob, sidecar])),
        OciLayersInfo(layers = [blob], sidecars = [sidecar]),
    ]

oci_layer = rule(
    implementation = _oci_layer_impl,
    doc = "A layer of plain files: {label: path in the image}; modes normalised, owner root.",
    attrs = {
        "files": attr.label_keyed_string_dict(allow_files = True, mandatory = True),
        "_tool": tool_attr(),
    },
)

def _debian_base_layer_impl(ctx):
    blob, sidecar = _layer_outputs(ctx)
    python = ctx.actions.declare_directory(ctx.label.name + ".python")
    _os, architecture = split_platform(ctx.attr.platform)
    args = ctx.actions.args()
    args.add("debian_rootfs")
    args.add("--python-out", python.path)
    args.add("--lock", ctx.file.lock)
    args.add_all(ctx.files.debs, before_each = "--deb")
    args.add("--architecture", architecture)
    args.add("--out", blob)
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = [ctx.file.lock] + ctx.files.debs,
        outputs = [blob, sidecar, python],
        mnemonic = "OciDebianBase",
        progress_message = "Assembling the Debian base layer %{label}",
        execution_requirements = LAYER_EXEC,
    )
    return [
        DefaultInfo(files = depset([blob, sidecar])),
        OciLayersInfo(layers = [blob], sidecars = [sidecar]),
        ImagePythonInfo(root = python),
        OutputGroupInfo(python = depset([python])),
    ]

debian_base_layer = rule(
    implementation = _debian_base_layer_impl,
    doc = "A root filesystem layer from the locked .debs (tools/oci/debian_rootfs.py).",
    attrs = {
        "lock": attr.label(allow_single_file = [".json"], mandatory = True),
        "debs": attr.label_list(allow_files = [".deb"], mandatory = True),
        "platform": attr.string(
            mandatory = True,
            doc = "the image's OS/ARCHITECTURE: a binary for any other machine fails the build",
        ),
        "_tool": tool_attr(),
    },
)
