"""What every OCI rule shares: the tool, execution requirements, platform parsing."""

TOOL = "//tools/oci:oci_tool"

# Layer actions read and write GBs of local files: remote execution would ship
# them both ways for nothing; results stay cacheable.
LAYER_EXEC = {"no-remote-exec": "1"}

# The image action hardlinks layer blobs into the layout, which only works on
# the machine that has them.
IMAGE_EXEC = {"no-remote": "1"}

def split_platform(platform):
    """"linux/amd64" -> ("linux", "amd64"); anything else fails naming the form."""
    parts = platform.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        fail("platform %r: expected OS/ARCHITECTURE as OCI spells it, e.g. \"linux/amd64\"" % platform)
    return parts[0], parts[1]

def tool_attr():
    return attr.label(default = TOOL, executable = True, cfg = "exec")
