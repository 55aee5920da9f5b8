"""OCI image rules with rules_oci's public shape, as deterministic Python actions.

Why our own: rules_oci cannot be had here (docs/architecture.md, decision 3).
This file is the public surface, thin macros over `private/` (one file per rule
family), so a later switch is mechanical:

    oci_image(name, platform, base, tars, entrypoint, cmd, env, workdir, user, labels)
        :name          the OCI image layout directory (the default output)
        :name.digest   one file: "sha256:<hex>\\n", the manifest digest
        :name.tar      (manual) the layout as one uncompressed tar file

    py_image_layers(name, binary, platform, layer_groups, gzip_levels, pyc, python_layer)
        a py_binary built for the image's platform, one layer per group, each
        compressed at the level the call site gives it (default 6)
    oci_layer(name, files)                        plain files at chosen paths
    debian_base_layer(name, lock, debs, platform) a root filesystem from locked .debs
"""

load("//tools/oci/private:image.bzl", "oci_digest", "oci_image_rule", "oci_tarball")
load("//tools/oci/private:layer.bzl", _debian_base_layer = "debian_base_layer", _oci_layer = "oci_layer")
load("//tools/oci/private:providers.bzl", _OciImageInfo = "OciImageInfo", _OciLayersInfo = "OciLayersInfo")
load("//tools/oci/private:py_image_layers.bzl", _py_image_layers = "py_image_layers")

OciImageInfo = _OciImageInfo
OciLayersInfo = _OciLayersInfo
debian_base_layer = _debian_base_layer
oci_layer = _oci_layer
py_image_layers = _py_image_layers

def oci_image(name, platform, base = None, tars = [], **kwargs):
    """An OCI image layout, its `<name>.digest` file and a manual `<name>.tar`.

    Args:
      name: target name; the layout directory has the same name.
      platform: OS/ARCHITECTURE of the image config, e.g. "linux/amd64" (the
        same value its layers were built for).
      base: an oci_image whose layers and settings this image extends.
      tars: layers in order: py_image_layers / debian_base_layer / oci_layer
        targets or plain .tar / .tar.gz files.
      **kwargs: entrypoint, cmd, env, workdir, user, labels (the OCI config;
        unset ones are inherited from `base`, env and labels are merged over
        it), tag, and the common visibility, tags, testonly.
    """
    oci_image_rule(name = name, platform = platform, base = base, tars = tars, **kwargs)
    common = {key: kwargs[key] for key in ("visibility", "testonly") if key in kwargs}
    tags = kwargs.get("tags", [])
    oci_digest(name = name + ".digest", image = name, tags = tags, **common)
    oci_tarball(
        name = name + ".tar",
        image = name,
        tags = tags + ([] if "manual" in tags else ["manual"]),
        **common
    )
