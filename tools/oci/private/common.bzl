"""What every OCI rule shares: the tool, execution requirements, platform parsing."""

TOOL = "//tools/oci:oci_tool"

# Layer actions read and write GBs of local files: remote execution would ship
# them both ways for nothing; results stay cacheable.
LAYER_EXEC = {"no-remote-exec": "1"}

# The image action links layer blobs into the layout by absolute symlinks to
# this output base's files: meaningful only here, so never cached or remote
# (it is cheap: sidecars, config, manifest, links).
IMAGE_EXEC = {"no-cache": "1", "no-remote": "1"}

def split_platform(platform):
    """"linux/amd64" -> ("linux", "amd64"); anything else fails naming the form."""
    parts = platform.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        fail("platform %r: expected OS/ARCHITECTURE as OCI spells it, e.g. \"linux/amd64\"" % platform)
    return parts[0], parts[1]

def tool_attr():
    return attr.label(default = TOOL, executable = True, cfg = "exec")
