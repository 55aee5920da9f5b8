"""Which layers two builds of an image share: the proof that the digest is a good change key.

    layout_diff.py summary LAYOUT            -> JSON: manifest, config and layer digests, sizes
    layout_diff.py diff BEFORE.json AFTER.json [--expect-changed N ...] [--expect-changed-layer BLOB ...]

`summary` is saved before a rebuild (Bazel overwrites the layout in place);
`diff` prints which layers changed and what share of the image's bytes a
registry would receive again, and fails when the changed layers are not the
expected ones (e.g. editing one ARR_COC file must change only its layer).
"""

import argparse
import json
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.oci.layout import describe_blob, read_layout


def summarize(layout_dir):
    """Digests and sizes of the one image in an OCI layout."""
    image = read_layout(layout_dir)
    return {
        "manifest": image.digest,
        "config_diff_ids": image.config["rootfs"]["diff_ids"],
        "layers": [{"digest": d["digest"], "size": d["size"]} for d in image.manifest["layers"]],
    }


def _from_caller(path):
    """Paths as the caller typed them: `bazel run` starts tools in their runfiles folder."""
    return os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), path)


def compare(before, after):
    """{changed: [layer indexes], changed_bytes, total_bytes, same_manifest}."""
    if len(before["layers"]) != len(after["layers"]):
        raise ValueError("the images have different numbers of layers")
    changed = [i for i, (b, a) in enumerate(zip(before["layers"], after["layers"])) if b["digest"] != a["digest"]]
    return {
        "same_manifest": before["manifest"] == after["manifest"],
        "changed": changed,
        "changed_bytes": sum(after["layers"][i]["size"] for i in changed),
        "total_bytes": sum(layer["size"] for layer in after["layers"]),
    }


def indexes_of(after, blobs):
    """Layer indexes in AFTER of layer files a build wrote (digests from their sidecars):
    a check names the layer it means, not its place in the image."""
    digests = [layer["digest"] for layer in after["layers"]]
    indexes = []
    for blob in blobs:
        digest = describe_blob(_from_caller(blob)).digest
        if digest not in digests:
            raise ValueError(f"{blob} ({digest}) is not a layer of the image")
        indexes.append(digests.index(digest))
    return indexes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary")
    summary.add_argument("layout")
    diff = sub.add_parser("diff")
    diff.add_argument("before")
    diff.add_argument("after")
    diff.add_argument("--expect-changed", type=int, action="append",
                      help="a layer index that must change (repeat); all others must not")
    diff.add_argument("--expect-changed-layer", action="append", default=[], metavar="BLOB",
                      help="a layer file (with its .json sidecar) that must be the changed one (repeat)")
    args = parser.parse_args(argv)
    if args.command == "summary":
        json.dump(summarize(_from_caller(args.layout)), sys.stdout, indent=1)
        print()
        return 0
    with open(_from_caller(args.before)) as b, open(_from_caller(args.after)) as a:
        before, after = json.load(b), json.load(a)
    result = compare(before, after)
    share = result["changed_bytes"] / result["total_bytes"] if result["total_bytes"] else 0.0
    print(json.dumps(dict(result, changed_share=round(share, 6))))
    checked = args.expect_changed is not None or args.expect_changed_layer
    expected = sorted((args.expect_changed or []) + indexes_of(after, args.expect_changed_layer))
    if checked and expected != result["changed"]:
        print(f"layout_diff: expected only layers {expected} to change, "
              f"but {result['changed']} changed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
