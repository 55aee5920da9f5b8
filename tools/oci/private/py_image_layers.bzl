"""py_image_layers: a py_binary's runfiles, built for the image's platform, as layers.

Two decisions meet here, both given at the call site:
- `platform`: the binary is built with `//tools/python:wheel_platform` set to
  it (a transition), so its third-party files are wheels resolved for the
  image's platform whatever the host (tools/python/wheel_hub.bzl);
- `layer_groups`: which files go to which layer. Files are grouped by how
  often they change: layers are cached and pushed by digest.

Patterns: `pip:NAME` or `pip:PREFIX*` match a wheel by its normalised
distribution name (from its .dist-info folder, whatever hub it came from);
`//PATH` matches first-party files under PATH (`//` matches them all). The
most specific match wins (an exact name over a prefix, a longer prefix over a
shorter), so order in the dict is the layer order, not a priority. Runfiles of
other external repositories (the build's Python toolchain, rules_python
helpers) are never shipped: the image has its own interpreter.

Each group's action gets only its own files, so an edit under ARR_COC/Training
reruns that layer alone, not the multi-GB torch layer.
"""

load(":common.bzl", "LAYER_EXEC", "split_platform", "tool_attr")
load(":providers.bzl", "ImagePythonInfo", "OciLayersInfo")

def _wheel_platform_impl(_settings, attr):
    return {"//tools/python:wheel_platform": attr.platform}

_wheel_platform = transition(
    implementation = _wheel_platform_impl,
    inputs = [],
    outputs = ["//tools/python:wheel_platform"],
)

def _normalise(name):
    return name.lower().replace("-", "_").replace(".", "_")

def _repo_and_rest(short_path):
    """(external repo or None, path inside it) of a runfile's short path."""
    if short_path.startswith("../"):
        repo, _, rest = short_path[3:].partition("/")
        return repo, rest
    return None, short_path

def wheel_names(files):
    """{repo: distribution name} of every wheel repo among `files`, from its .dist-info folder."""
    names = {}
    for f in files:
        repo, rest = _repo_and_rest(f.short_path)
        parts = rest.split("/")
        if repo and len(parts) > 2 and parts[0] == "site-packages" and parts[1].endswith(".dist-info"):
            names[repo] = _normalise(parts[1][:-len(".dist-info")].rsplit("-", 1)[0])
    return names

def _score(pattern, is_wheel, key):
    """How specifically `pattern` matches; -1 when it does not."""
    if pattern.startswith("pip:"):
        if not is_wheel:
            return -1
        glob = _normalise(pattern[4:])
        if glob.endswith("*"):
            return len(glob) if key.startswith(glob[:-1]) else -1
        return 10000 if key == glob else -1
    if pattern.startswith("//"):
        if is_wheel:
            return -1
        prefix = pattern[2:].rstrip("/")
        if not prefix:
            return 0
        return len(prefix) if key == prefix or key.startswith(prefix + "/") else -1
    fail("layer_groups pattern %r: use pip:NAME, pip:PREFIX* or //PATH" % pattern)

def group_of(layer_groups, is_wheel, key):
    """The group of one file (a wheel's name or a first-party path), or None."""
    best, best_score = None, -1
    for group, patterns in layer_groups.items():
        for pattern in patterns:
            score = _score(pattern, is_wheel, key)
            if score > best_score:
                best, best_score = group, score
    return best

def _runfiles_line(file):
    """`runfiles_path<TAB>exec_path` for one runfile (bzlmod main repo = _main)."""
    repo, rest = _repo_and_rest(file.short_path)
    return "%s/%s\t%s" % (repo or "_main", rest, file.path)

def _partition(runfiles, layer_groups, dropped):
    """{group: ([File], [manifest line])}: one flattening of the runfiles, at analysis time."""
    parts = {group: ([], []) for group in layer_groups}
    files = runfiles.files.to_list()
    wheels = wheel_names(files)
    unplaced = []
    for file in files:
        if file.short_path in dropped:
            continue
        repo, rest = _repo_and_rest(file.short_path)
        if repo and repo not in wheels:
            continue  # toolchain, rules_python helpers: not shipped
        key = wheels[repo] if repo else rest
        group = group_of(layer_groups, bool(repo), key)
        if group == None:
            unplaced.append(file.short_path)
            continue
        parts[group][0].append(file)
        parts[group][1].append(_runfiles_line(file))

    # Bazel's generated empty `__init__.py` files: only first-party ones are
    # wanted (in a wheel repo they would make site-packages itself a package).
    for path in runfiles.empty_filenames.to_list():
        if not path.startswith("../"):
            group = group_of(layer_groups, False, path)
            if group == None:
                unplaced.append(path)
            else:
                parts[group][1].append("_main/%s\t" % path)
    if unplaced:
        fail("layer_groups place no layer for %d runfiles, e.g. %s: add a pattern (`//` or `pip:*` catch the rest)" % (
            len(unplaced),
            ", ".join(sorted(unplaced)[:5]),
        ))
    return parts

def _gzip_levels(levels, parts):
    """Validated group -> gzip level (1-9); groups not named keep the layer tool's default."""
    for group, level in levels.items():
        if group not in parts:
            fail("gzip_levels names %r, which is not one of layer_groups %s" % (group, sorted(parts.keys())))
        if level not in [str(n) for n in range(1, 10)]:
            fail("gzip_levels[%r] = %r: a gzip level is 1 (fastest) to 9 (smallest)" % (group, level))
    return levels

def _py_image_layers_impl(ctx):
    binary = ctx.attr.binary[0]
    _os, architecture = split_platform(ctx.attr.platform)

    # The py_binary's launcher stub names the build host's interpreter: the
    # image runs its sources with its own Python instead.
    launcher = binary[DefaultInfo].files_to_run.executable
    parts = _partition(binary[DefaultInfo].default_runfiles, ctx.attr.layer_groups, [launcher.short_path])

    levels = _gzip_levels(ctx.attr.gzip_levels, parts)
    blobs, sidecars, listings = [], [], []
    for group, (files, lines) in parts.items():
        stem = "%s/%s" % (ctx.label.name, group)
        manifest = ctx.actions.declare_file(stem + ".manifest")
        ctx.actions.write(manifest, "".join([line + "\n" for line in sorted(lines)]))
        blob = ctx.actions.declare_file(stem + ".tar.gz")
        sidecar = ctx.actions.declare_file(stem + ".tar.gz.json")
        listing = ctx.actions.declare_file(stem + ".txt")
        args = ctx.actions.args()
        args.add("py_layers")
        args.add("--manifest", manifest)
        args.add("--name", group)
        args.add("--out", blob)
        args.add("--listing", listing)
        args.add("--architecture", architecture)
        if group in levels:
            args.add("--level", levels[group])
        inputs = [manifest] + files
        if ctx.attr.pyc:
            args.add("--pyc")
        if ctx.attr.pyc and ctx.attr.python_layer:
            python = ctx.attr.python_layer[ImagePythonInfo].root
            args.add("--pyc-root", python.path)
            inputs.append(python)
        ctx.actions.run(
            executable = ctx.executable._tool,
            arguments = [args],
            inputs = inputs,
            outputs = [blob, sidecar, listing],
            mnemonic = "OciPyLayer",
            progress_message = "Writing layer %s of %%{label} (%d files)" % (group, len(lines)),
            execution_requirements = LAYER_EXEC,
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
    doc = "A py_binary's transitive Python, built for `platform`, as one layer per group of `layer_groups`.",
    attrs = {
        "binary": attr.label(mandatory = True, cfg = _wheel_platform, doc = "the py_binary"),
        "layer_groups": attr.string_list_dict(
            mandatory = True,
            doc = "layer name -> patterns (pip:NAME, pip:PREFIX*, //PATH), in layer order",
        ),
        "platform": attr.string(
            mandatory = True,
            doc = "the image's OS/ARCHITECTURE: the binary's wheels are resolved for it, and a binary " +
                  "for any other machine fails the build",
        ),
        "gzip_levels": attr.string_dict(
            doc = "layer name -> gzip level \"1\"..\"9\" (default 6): the call site weighs " +
                  "build CPU against pushed bytes per layer",
        ),
        "pyc": attr.bool(default = True, doc = "ship deterministic unchecked-hash .pyc"),
        "python_layer": attr.label(
            providers = [ImagePythonInfo],
            doc = "the layer holding the image's usr/bin/python3.11: it compiles the .pyc where the host " +
                  "can run it (.pyc bytes differ between 3.11 patch releases); else the build's Python does",
        ),
        "_tool": tool_attr(),
    },
)
