#!/usr/bin/env bash
# Benchmark of //Stack:arr_trainer (issue 4; results in docs/image.md):
#   - cold build: `tools/bazel clean`, then a build with no disk cache; wall time
#     and output base growth (the disk a full build uses);
#   - size of every layer, gzip (as pushed) and uncompressed (as unpacked);
#   - incremental rebuild after appending one line to ARR_COC/__init__.py: wall
#     time, as a ratio of the cold build, and the bytes that changed between the
#     two images as a share of the image; then the edit is reverted (git) and
#     the image rebuilt, which must give the first digest back.
#
#   Stack/benchmark.sh            # in this checkout; it cleans its output base
#
# Best run in a scratch clone (`git clone . /tmp/bench && /tmp/bench/Stack/benchmark.sh`):
# it runs `tools/bazel clean` and edits ARR_COC/__init__.py for a minute
# (refused when that file has uncommitted changes). About 6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

image=//Stack:arr_trainer
edited=ARR_COC/__init__.py
layout="$PWD/bazel-bin/Stack/arr_trainer"
# Host-side files only: summaries are captured from stdout and compared here.
scratch=$(mktemp -d)
cleanup() { rm -rf "$scratch"; }
trap cleanup EXIT

if ! git diff --quiet HEAD -- "$edited"; then
  echo "benchmark: $edited has uncommitted changes; not editing it" >&2
  exit 1
fi

seconds() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
kib() { du -sk "$1" | cut -f1; }
build() { tools/bazel build --disk_cache= "$image" "$image.digest" 2>"$scratch/build.log" || { cat "$scratch/build.log" >&2; exit 1; }; }
summary() { tools/bazel run //tools/oci:layout_diff -- summary "$layout" 2>/dev/null > "$1"; }

output_base=$(tools/bazel info output_base 2>/dev/null)
tools/bazel clean 2>/dev/null
base_before=$(kib "$output_base")
t0=$(seconds); build; t1=$(seconds)
cold=$(elapsed "$t0" "$t1")
base_after=$(kib "$output_base")
first=$(cat bazel-bin/Stack/arr_trainer.digest)
summary "$scratch/before.json"

echo "## //Stack:arr_trainer benchmark ($(nproc) cores, $(date -u +%Y-%m-%d))"
echo
echo "digest: $first"
echo "cold build (tools/bazel clean; build --disk_cache=): ${cold} s"
echo "output base growth of the cold build: $(( (base_after - base_before) / 1024 )) MiB"
echo
echo "| # | layer | gzip bytes | uncompressed bytes | digest |"
echo "|---|-------|-----------:|-------------------:|--------|"
python3 - "$scratch/before.json" "$layout" bazel-bin/Stack/arr_trainer_layers <<'EOF'
import glob, gzip, json, os, sys
summary, layout, groups = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
# Each layer's name is its LAYER_GROUPS group (Stack/BUILD.bazel), found by digest; the rest is the base.
names = {json.load(open(p))["digest"]: os.path.basename(p)[:-len(".tar.gz.json")]
         for p in glob.glob(os.path.join(groups, "*.tar.gz.json"))}
total_gz = total_raw = 0
for i, layer in enumerate(summary["layers"]):
    raw = 0
    with gzip.open(os.path.join(layout, "blobs", *layer["digest"].split(":", 1)), "rb") as f:
        while chunk := f.read(1 << 20):
            raw += len(chunk)
    total_gz += layer["size"]; total_raw += raw
    name = names.get(layer["digest"], "base (Debian, Python 3.11)")
    print(f"| {i} | {name} | {layer['size']:,} | {raw:,} | {layer['digest'][:19]}… |")
print(f"| | total | {total_gz:,} | {total_raw:,} | |")
EOF

restore() { git checkout -q -- "$edited"; }
trap 'restore; cleanup' EXIT
printf '\n# benchmark: a one-line change\n' >> "$edited"
t0=$(seconds); build; t1=$(seconds)
incremental=$(elapsed "$t0" "$t1")
summary "$scratch/after.json"
diff=$(python3 - "$scratch/before.json" "$scratch/after.json" <<'EOF'
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
changed = [i for i, (b, a) in enumerate(zip(before["layers"], after["layers"])) if b["digest"] != a["digest"]]
changed_bytes = sum(after["layers"][i]["size"] for i in changed)
total = sum(layer["size"] for layer in after["layers"])
print(f"layers {changed} changed, {changed_bytes:,} of {total:,} gzip bytes = {changed_bytes / total:.6%} "
      f"(plus the config and manifest, about 2 KB)")
EOF
)
restore
trap cleanup EXIT
t0=$(seconds); build; t1=$(seconds)
revert=$(elapsed "$t0" "$t1")
[ "$(cat bazel-bin/Stack/arr_trainer.digest)" = "$first" ] || { echo "benchmark: reverting did not restore $first" >&2; exit 1; }

echo
echo "incremental rebuild after editing $edited: ${incremental} s = $(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$incremental" "$cold") of the cold build"
echo "layers changed between the two images: $diff"
echo "rebuild after reverting the edit: ${revert} s, digest back to $first"
