"""oci_image: an OCI image layout and its digest; oci_tarball: the layout as one tar."""

load(":common.bzl", "IMAGE_EXEC", "LAYER_EXEC", "split_platform", "tool_attr")
load(":providers.bzl", "OciImageInfo", "OciLayersInfo")

def _layers_of(targets):
    """(blobs, sidecars) of `tars` in order: OciLayersInfo first, else every
    file of the target (plain .tar or .tar.gz, hashed by the action)."""
    blobs, sidecars = [], []
    for target in targets:
        if OciLayersInfo in target:
            blobs.extend(target[OciLayersInfo].layers)
            sidecars.extend(target[OciLayersInfo].sidecars)
        else:
            blobs.extend(sorted(target[DefaultInfo].files.to_list(), key = lambda f: f.path))
    return blobs, sidecars

def _oci_image_impl(ctx):
    layout = ctx.actions.declare_directory(ctx.label.name)
    digest = ctx.actions.declare_file(ctx.label.name + ".manifest_digest")
    config = ctx.actions.declare_file(ctx.label.name + ".config.json")
    os, architecture = split_platform(ctx.attr.platform)
    ctx.actions.write(config, json.encode({
        "architecture": architecture,
        "cmd": ctx.attr.cmd,
        "entrypoint": ctx.attr.entrypoint,
        "env": ctx.attr.env,
        "labels": ctx.attr.labels,
        "os": os,
        "tag": ctx.attr.tag,
        "user": ctx.attr.user,
        "workdir": ctx.attr.workdir,
    }))
    blobs, sidecars = _layers_of(ctx.attr.tars)
    args = ctx.actions.args()
    args.add("image")
    args.add("--config", config)
    args.add_all(blobs, before_each = "--layer")
    inputs = [config] + blobs + sidecars
    if ctx.attr.base:
        base = ctx.attr.base[OciImageInfo].layout
        args.add("--base", base.path)
        inputs.append(base)
    args.add("--out", layout.path)
    args.add("--digest-out", digest)
    # Layer blobs enter the layout as symlinks to the layer outputs: a hard
    # link would change each blob's inode (its ctime), and Bazel would then
    # re-hash the whole 3 GB tree after every one-line edit.
    args.add("--blob-mode", "symlink")
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = inputs,
        outputs = [layout, digest],
        mnemonic = "OciImage",
        progress_message = "Assembling OCI image %{label}",
        execution_requirements = IMAGE_EXEC,
    )
    return [
        DefaultInfo(files = depset([layout])),
        OciImageInfo(layout = layout, digest = digest),
        OutputGroupInfo(digest = depset([digest])),
    ]

oci_image_rule = rule(
    implementation = _oci_image_impl,
    doc = "Private: use the oci_image macro of //tools/oci:defs.bzl.",
    attrs = {
        "base": attr.label(providers = [OciImageInfo]),
        "tars": attr.label_list(allow_files = [".tar", ".tar.gz", ".tgz"]),
        "entrypoint": attr.string_list(),
        "cmd": attr.string_list(),
        "env": attr.string_dict(),
        "workdir": attr.string(),
        "user": attr.string(),
        "labels": attr.string_dict(),
        "platform": attr.string(mandatory = True, doc = "OS/ARCHITECTURE of the config, e.g. linux/amd64"),
        "tag": attr.string(default = "latest", doc = "index.json ref.name (not part of the digest)"),
        "_tool": tool_attr(),
    },
)

def _oci_tarball_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name)
    layout = ctx.attr.image[OciImageInfo].layout
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = ["image", "--tar", layout.path, "--out", out.path],
        inputs = [layout],
        outputs = [out],
        mnemonic = "OciTarball",
        progress_message = "Archiving OCI layout %{label}",
        execution_requirements = LAYER_EXEC,
    )
    return [DefaultInfo(files = depset([out]))]

oci_tarball = rule(
    implementation = _oci_tarball_impl,
    doc = "The image's OCI layout as one uncompressed tar file.",
    attrs = {
        "image": attr.label(providers = [OciImageInfo], mandatory = True),
        "_tool": tool_attr(),
    },
)

def _oci_digest_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.symlink(output = out, target_file = ctx.attr.image[OciImageInfo].digest)
    return [DefaultInfo(files = depset([out]))]

oci_digest = rule(
    implementation = _oci_digest_impl,
    doc = "`<image>.digest`: one file, \"sha256:<hex>\\n\", the image's manifest digest.",
    attrs = {"image": attr.label(providers = [OciImageInfo], mandatory = True)},
)
