"""OCI image rules with rules_oci's public shape, as deterministic Python actions.

Why our own: rules_oci cannot be had here (docs/architecture.md, decision 3). The
public surface mirrors it so a later switch is mechanical:

    oci_image(name, base, tars, entrypoint, cmd, env, workdir, user, labels)
        :name          the OCI image layout directory (the default output, alone)
        :name.digest   one file: "sha256:<hex>\\n", the manifest digest
        :name.tar      (manual) the layout as one uncompressed tar file

    py_image_layers(name, binary)   a py_binary's runfiles as layer groups 2-5
    debian_base_layer(name, lock, debs)   group 1, from the locked .debs
"""

OciImageInfo = provider(
    doc = "An image built by oci_image.",
    fields = {
        "layout": "tree artifact: the OCI image layout",
        "digest": "File holding the manifest digest",
    },
)

OciLayersInfo = provider(
    doc = "Layer blobs in image order, each with a `<blob>.json` sidecar (digest, diff_id, size).",
    fields = {
        "layers": "list of File (.tar.gz blobs)",
        "sidecars": "list of File (the .json next to each blob)",
    },
)

_TOOL = "//tools/oci:oci_tool"

# Layer and image actions read and write GBs of local files: remote execution
# would ship them both ways for nothing; results stay cacheable.
_LAYER_EXEC = {"no-remote-exec": "1"}

# The image action hardlinks layer blobs into the layout, which only works on
# the machine that has them.
_IMAGE_EXEC = {"no-remote": "1"}

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
    digest = ctx.outputs.digest
    config = ctx.actions.declare_file(ctx.label.name + ".config.json")
    ctx.actions.write(config, json.encode({
        "architecture": ctx.attr.architecture,
        "cmd": ctx.attr.cmd,
        "entrypoint": ctx.attr.entrypoint,
        "env": ctx.attr.env,
        "labels": ctx.attr.labels,
        "os": ctx.attr.os,
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
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = inputs,
        outputs = [layout, digest],
        mnemonic = "OciImage",
        progress_message = "Assembling OCI image %{label}",
        execution_requirements = _IMAGE_EXEC,
    )
    return [
        DefaultInfo(files = depset([layout])),
        OciImageInfo(layout = layout, digest = digest),
        OutputGroupInfo(digest = depset([digest])),
    ]

_oci_image = rule(
    implementation = _oci_image_impl,
    doc = "Private: use the oci_image macro.",
    attrs = {
        "base": attr.label(providers = [OciImageInfo]),
        "tars": attr.label_list(allow_files = [".tar", ".tar.gz", ".tgz"]),
        "entrypoint": attr.string_list(),
        "cmd": attr.string_list(),
        "env": attr.string_dict(),
        "workdir": attr.string(),
        "user": attr.string(),
        "labels": attr.string_dict(),
        "architecture": attr.string(default = "amd64"),
        "os": attr.string(default = "linux"),
        "tag": attr.string(default = "latest", doc = "index.json ref.name (not part of the digest)"),
        "_tool": attr.label(default = _TOOL, executable = True, cfg = "exec"),
    },
    outputs = {"digest": "%{name}.digest"},
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
        execution_requirements = _LAYER_EXEC,
    )
    return [DefaultInfo(files = depset([out]))]

_oci_tarball = rule(
    implementation = _oci_tarball_impl,
    attrs = {
        "image": attr.label(providers = [OciImageInfo], mandatory = True),
        "_tool": attr.label(default = _TOOL, executable = True, cfg = "exec"),
    },
)

def oci_image(name, base = None, tars = [], entrypoint = [], cmd = [], env = {}, workdir = "", user = "", labels = {}, **kwargs):
    """An OCI image layout, its `<name>.digest` file and a manual `<name>.tar`.

    Args:
      name: target name; the layout directory has the same name.
      base: an oci_image whose layers and settings this image extends.
      tars: layers in order: py_image_layers / debian_base_layer targets or
        plain .tar / .tar.gz files.
      entrypoint, cmd, env, workdir, user, labels: the OCI config; unset ones
        are inherited from `base`, env and labels are merged over it.
      **kwargs: architecture, os, tag, visibility, tags, testonly.
    """
    _oci_image(
        name = name,
        base = base,
        tars = tars,
        entrypoint = entrypoint,
        cmd = cmd,
        env = env,
        workdir = workdir,
        user = user,
        labels = labels,
        **kwargs
    )
    tar_tags = kwargs.get("tags", [])
    _oci_tarball(
        name = name + ".tar",
        image = name,
        tags = tar_tags + ([] if "manual" in tar_tags else ["manual"]),
        visibility = kwargs.get("visibility"),
        testonly = kwargs.get("testonly", False),
    )

_GROUPS = {2: "torch", 3: "third_party", 4: "app", 5: "training"}

def _runfiles_line(file):
    """`runfiles_path<TAB>exec_path` for one runfile (bzlmod main repo = _main)."""
    short = file.short_path
    rpath = short[3:] if short.startswith("../") else "_main/" + short
    return "%s\t%s" % (rpath, file.path)

# Mirrors tools/oci/py_layers.py (APP_GROUPS, HEAVY_WHEELS, wheel_name). Each
# group's action gets only its own candidates, so editing ARR_COC reruns the
# ARR_COC layer alone, not the multi-GB torch layer. The action runs with
# --exclusive: a file this partition puts in the wrong group is an error there.
_APP_GROUPS = (("ARR_COC/Training/", 5), ("", 4))
_HEAVY_PREFIXES = ("nvidia_", "cuda_")
_HEAVY_NAMES = ("torch", "triton")

def _app_group(path):
    for prefix, group in _APP_GROUPS:
        if path.startswith(prefix):
            return group
    fail("unreachable")

def _candidate_group(file, hub):
    """The layer group a runfile can only belong to (py_layers.place decides
    whether it is shipped at all)."""
    short = file.short_path
    if not short.startswith("../"):
        return _app_group(short)
    repo = short[3:].split("/")[0]
    name = repo.replace("+", "~").split("~")[-1]
    if name.startswith(hub + "_"):
        name = name[len(hub) + 1:]
    if name in _HEAVY_NAMES or name.startswith(_HEAVY_PREFIXES):
        return 2
    return 3

def _py_image_layers_impl(ctx):
    runfiles = ctx.attr.binary[DefaultInfo].default_runfiles
    # The py_binary's launcher stub names the build host's interpreter: the
    # image runs its sources with its own Python instead.
    launcher = ctx.attr.binary[DefaultInfo].files_to_run.executable

    # Partition the runfiles by group (one flattening of the binary's runfiles,
    # at analysis time): a group's action depends only on its own files.
    files = {group: [] for group in ctx.attr.groups}
    lines = {group: [] for group in ctx.attr.groups}
    for file in runfiles.files.to_list():
        group = _candidate_group(file, ctx.attr.hub)
        if group in files:
            files[group].append(file)
            lines[group].append(_runfiles_line(file))
    # Bazel's generated empty `__init__.py` files: only first-party ones are
    # wanted (in a wheel repo they would make site-packages itself a package).
    for path in runfiles.empty_filenames.to_list():
        if not path.startswith("../"):
            group = _app_group(path)
            if group in lines:
                lines[group].append("_main/%s\t" % path)

    blobs, sidecars, listings = [], [], []
    for group in ctx.attr.groups:
        stem = "%s/%d_%s" % (ctx.label.name, group, _GROUPS[group])
        manifest = ctx.actions.declare_file(stem + ".manifest")
        ctx.actions.write(manifest, "".join([line + "\n" for line in sorted(lines[group])]))
        blob = ctx.actions.declare_file(stem + ".tar.gz")
        sidecar = ctx.actions.declare_file(stem + ".tar.gz.json")
        listing = ctx.actions.declare_file(stem + ".txt")
        args = ctx.actions.args()
        args.add("py_layers")
        args.add("--manifest", manifest)
        args.add("--group", str(group))
        args.add("--hub", ctx.attr.hub)
        args.add("--out", blob)
        args.add("--listing", listing)
        args.add("--drop", "_main/" + launcher.short_path)
        args.add("--exclusive")
        args.add("--architecture", ctx.attr.architecture)
        if ctx.attr.pyc:
            args.add("--pyc")
        ctx.actions.run(
            executable = ctx.executable._tool,
            arguments = [args],
            inputs = [manifest] + files[group],
            outputs = [blob, sidecar, listing],
            mnemonic = "OciPyLayer",
            progress_message = "Writing layer %d (%s) of %%{label}" % (group, _GROUPS[group]),
            execution_requirements = _LAYER_EXEC,
        )
        blobs.append(blob)
        sidecars.append(sidecar)
        listings.append(listing)
    return [
        DefaultInfo(files = depset(blobs + sidecars)),
        OciLayersInfo(layers = blobs, sidecars = sidecars),
        OutputGroupInfo(listings = depset(listings)),
    ]

py_image_layers = rule(
    implementation = _py_image_layers_impl,
    doc = "A py_binary's transitive Python as layer groups 2-5 (see tools/oci/py_layers.py).",
    attrs = {
        "binary": attr.label(mandatory = True, doc = "the py_binary"),
        "groups": attr.int_list(default = [2, 3, 4, 5]),
        "hub": attr.string(default = "pypi", doc = "pip.parse hub name, the prefix of wheel repos"),
        "pyc": attr.bool(default = True, doc = "ship deterministic unchecked-hash .pyc"),
        "architecture": attr.string(
            default = "amd64",
            doc = "the image's OCI architecture: a binary for any other machine fails the build",
        ),
        "_tool": attr.label(default = _TOOL, executable = True, cfg = "exec"),
    },
)

def _oci_layer_impl(ctx):
    blob = ctx.actions.declare_file(ctx.label.name + ".tar.gz")
    sidecar = ctx.actions.declare_file(ctx.label.name + ".tar.gz.json")
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
        execution_requirements = _LAYER_EXEC,
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
        "_tool": attr.label(default = _TOOL, executable = True, cfg = "exec"),
    },
)

def _debian_base_layer_impl(ctx):
    blob = ctx.actions.declare_file(ctx.label.name + ".tar.gz")
    sidecar = ctx.actions.declare_file(ctx.label.name + ".tar.gz.json")
    args = ctx.actions.args()
    args.add("debian_rootfs")
    args.add("--lock", ctx.file.lock)
    args.add_all(ctx.files.debs, before_each = "--deb")
    args.add("--architecture", ctx.attr.architecture)
    args.add("--out", blob)
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [args],
        inputs = [ctx.file.lock] + ctx.files.debs,
        outputs = [blob, sidecar],
        mnemonic = "OciDebianBase",
        progress_message = "Assembling the Debian base layer %{label}",
        execution_requirements = _LAYER_EXEC,
    )
    return [
        DefaultInfo(files = depset([blob, sidecar])),
        OciLayersInfo(layers = [blob], sidecars = [sidecar]),
    ]

debian_base_layer = rule(
    implementation = _debian_base_layer_impl,
    doc = "Group 1: the root filesystem layer from the locked .debs (tools/oci/debian_rootfs.py).",
    attrs = {
        "lock": attr.label(allow_single_file = [".json"], mandatory = True),
        "debs": attr.label_list(allow_files = [".deb"], mandatory = True),
        "architecture": attr.string(
            default = "amd64",
            doc = "the image's OCI architecture: a binary for any other machine fails the build",
        ),
        "_tool": attr.label(default = _TOOL, executable = True, cfg = "exec"),
    },
)
