"""One executable for every OCI action, so Bazel builds one py_binary tool.

    oci_tool image ...          tools/oci/assemble.py
    oci_tool layer ...          a layer of plain files (oci_layer)
    oci_tool py_layers ...      tools/oci/py_layers.py
    oci_tool debian_rootfs ...  tools/oci/debian_rootfs.py
"""

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.oci import assemble, debian_rootfs, layout, py_layers


def layer_main(argv) -> int:
    """`layer --file SRC=DEST ... --out X.tar.gz`: a layer of plain files."""
    import argparse

    parser = argparse.ArgumentParser(prog="oci_tool layer")
    parser.add_argument("--file", action="append", default=[], help="SRC=DEST")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    entries = []
    for pair in args.file:
        src, _, dest = pair.partition("=")
        entries.append(layout.Entry.file(dest, source=src))
    info = layout.write_layer(entries, args.out)
    with open(args.out + ".json", "w") as f:
        f.write(info.to_json())
    return 0

COMMANDS = {
    "image": assemble.main,
    "layer": layer_main,
    "py_layers": py_layers.main,
    "debian_rootfs": debian_rootfs.main,
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: oci_tool {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
