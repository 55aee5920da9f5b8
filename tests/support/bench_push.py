"""Benchmark: our push vs `skopeo copy` of the same layout to a loopback registry.

    PYTHONPATH=. python -m tests.support.bench_push [--mb 300]
    PYTHONPATH=. python -m tests.support.bench_push --layout bazel-bin/Stack/arr_trainer --rounds 3
    tools/bazel run //tests:bench_push -- --layout $PWD/bazel-bin/Stack/arr_trainer
    # our push at several chunk sizes (MiB; "mono": every blob in one streamed PUT):
    ... --chunks 8,16,32,64,128,mono --no-skopeo --caches warm --no-extras

Prints one JSON object. Pushes: each contender (ours, skopeo copy) pushes the
whole image into its own fresh registry, over --rounds rounds whose order
rotates (round 1: ours then skopeo, round 2: skopeo then ours, ...), once per
page-cache state: "cold" (every blob of the layout evicted from the page cache
with posix_fadvise DONTNEED just before the push, checked with mincore) and
"warm" (every blob read just before and checked resident). Each push records
its seconds and the load average; the summary gives medians and the median of
the per-round ratios ours / skopeo. Each registry's storage is deleted right
after its push (a push writes the whole image to --scratch).

Then, unless --no-extras: bytes re-uploaded after a one-file change as a share
of the image, and the time from command to submitted job when nothing
changed (CLI against the fake Vertex server, image already in the registry):
in this process, and as a fresh `python -m tools.launch.cli` process (what
follows Bazel's start).

Without --layout the image is synthetic (--mb of incompressible data in 4
layers). With --layout DIR (a built OCI layout, e.g. //Stack:arr_trainer) the
one-file change is derived from it: layer --change-layer rebuilt with one file
changed, every other blob reused (tests/support/derive_layout.py). Keep
--scratch on the layout's filesystem so the derived layout's big blobs hardlink.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tests.support import derive_layout, fake_google, oci_images, page_cache, registry_server as rs
from tools.launch import cli, registry
from tools.oci import layout as oci_layout


def layers(mb: int, app: bytes) -> list[dict]:
    """Shaped like the real image: big rarely-changing layers, a small app layer."""
    big = mb * 1_000_000
    return [{"base.bin": big // 3}, {"torch.bin": big // 2}, {"deps.bin": big - big // 3 - big // 2},
            {"app/main.py": app}]


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def layout_digest(layout_dir: str) -> str:
    try:
        return oci_layout.read_layout(layout_dir, only=True).digest
    except oci_layout.LayerError as e:
        raise SystemExit(str(e)) from None


def blob_bytes(layout_dir: str) -> int:
    d = os.path.join(layout_dir, "blobs", "sha256")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def user_path(path: str) -> str:
    """Relative paths are the caller's (under `bazel run` the cwd is the runfiles tree)."""
    return os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), os.path.expanduser(path))


def tool_version(args: list[str]) -> str:
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def blob_paths(layout_dir: str) -> list[str]:
    d = os.path.join(layout_dir, "blobs", "sha256")
    return [os.path.join(d, f) for f in sorted(os.listdir(d))]


def set_page_cache(layout_dir: str, state: str) -> dict:
    """Evicts ("cold") or reads in ("warm") every blob; returns how much was resident after."""
    paths = blob_paths(layout_dir)
    for p in paths:
        page_cache.evict(p) if state == "cold" else page_cache.warm(p)
    resident = sum(page_cache.resident_bytes(p) for p in paths)
    return {"resident_bytes": resident, "resident_share": round(resident / blob_bytes(layout_dir), 4)}


ONE_PUT = 1 << 62  # a chunk size no blob reaches: every blob goes in one PUT


def parse_chunks(text: str) -> list[int]:
    """'8,32,mono' -> [8 MiB, 32 MiB, ONE_PUT]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if part == "mono":
            out.append(ONE_PUT)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part) << 20)
        else:
            raise SystemExit(f"--chunks: {part!r} is neither a size in MiB nor 'mono'")
    return out


class Contender:
    """One way to push the image: ours (default settings unless given), or skopeo."""

    def __init__(self, name: str, chunk_size: int | None = None, jobs: int | None = None):
        self.name, self.chunk_size, self.jobs = name, chunk_size, jobs

    def push(self, reg: rs.Registry, layout: str, digest: str) -> None:
        if self.name == "skopeo":
            subprocess.run([rs.require_tool("skopeo"), "copy", "--preserve-digests",
                            "--dest-tls-verify=false", f"oci:{layout}",
                            f"docker://{reg.host}/arr-trainer:x"], check=True, capture_output=True)
            return
        settings = {"chunk_size": self.chunk_size, "jobs": self.jobs}
        registry.push_layout(reg.url, "arr-trainer", layout, digest, progress=False,
                             **{k: v for k, v in settings.items() if v is not None})


def contenders(a) -> list[Contender]:
    suffix = f"_jobs{a.jobs}" if a.jobs else ""
    if a.chunks:
        ours = [Contender(("ours_mono" if c == ONE_PUT else f"ours_chunk{c >> 20}") + suffix, c, a.jobs)
                for c in parse_chunks(a.chunks)]
    else:
        ours = [Contender("ours" + suffix, None, a.jobs)]
    return ours + ([] if a.no_skopeo else [Contender("skopeo")])


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu_s(who: Contender) -> float:
    """CPU seconds of the pushing client so far: this process for ours, reaped children for skopeo
    (the registry is a child too, but it is reaped only after the push)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN if who.name == "skopeo" else resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def one_push(who: Contender, layout: str, digest: str, scratch: str | None, cache: str) -> dict:
    """WHO pushes LAYOUT into a fresh registry after setting the page cache; storage deleted after."""
    work = tempfile.mkdtemp(prefix=f"bench_push.{who.name}.", dir=scratch)
    try:
        with rs.running_registry(work) as reg:
            row = {"who": who.name, "cache": cache, **set_page_cache(layout, cache),
                   "loadavg": round(os.getloadavg()[0], 2)}
            cpu0, reg0 = client_cpu_s(who), process_cpu_s(reg.process.pid)
            row["seconds"] = round(timed(lambda: who.push(reg, layout, digest))[0], 3)
            row["client_cpu_s"] = round(client_cpu_s(who) - cpu0, 2)
            row["registry_cpu_s"] = round(process_cpu_s(reg.process.pid) - reg0, 2)
            raw = rs.skopeo_inspect_raw(f"{reg.host}/arr-trainer@{digest}")
            assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest, (who.name, reg.host)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


def rotation(items: list, round_index: int) -> list:
    """Round 0: as given; then each round shifts by one and every other round runs reversed,
    so with two contenders the order alternates and each goes first equally often."""
    k = round_index % len(items)
    order = items[k:] + items[:k]
    return order[::-1] if round_index % 2 and len(items) > 2 else order


def summarize(rows: list[dict], names: list[str], caches: list[str]) -> dict:
    """Medians per contender and cache state; ours / skopeo per round, and its median."""
    out = {}
    for cache in caches:
        by = {n: [r["seconds"] for r in rows if r["who"] == n and r["cache"] == cache] for n in names}
        summary = {f"{n}_median_s": round(statistics.median(v), 3) for n, v in by.items() if v}
        for n in names:
            for k in ("client_cpu_s", "registry_cpu_s"):
                v = [r[k] for r in rows if r["who"] == n and r["cache"] == cache]
                if v:
                    summary[f"{n}_median_{k}"] = round(statistics.median(v), 2)
        summary.update({f"{n}_s": v for n, v in by.items()})
        if "skopeo" in by:
            for n in names:
                if n != "skopeo":
                    ratios = [round(x / y, 3) for x, y in zip(by[n], by["skopeo"])]
                    summary[f"{n}_over_skopeo_per_round"] = ratios
                    summary[f"{n}_over_skopeo_median"] = round(statistics.median(ratios), 3)
        out[cache] = summary
    return out


def push_rounds(a, layout: str, digest: str, scratch: str | None) -> tuple[list[dict], dict]:
    who = contenders(a)
    caches = a.caches.split(",")
    rows = []
    for r in range(a.rounds):
        for cache in caches:
            for c in rotation(who, r):
                row = one_push(c, layout, digest, scratch, cache)
                row["round"] = r + 1
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows, summarize(rows, [c.name for c in who], caches)


def extras(layout: str, digest: str, a, tmp: str, size: int) -> dict:
    """Re-push unchanged, re-push after a one-file change, command to submitted job."""
    result = {}
    os.makedirs(os.path.join(tmp, "r1"))
    with rs.running_registry(os.path.join(tmp, "r1")) as r1:
        registry.push_layout(r1.url, "arr-trainer", layout, digest, progress=False)
        t_again, again = timed(lambda: registry.push_layout(r1.url, "arr-trainer", layout, digest,
                                                            progress=False))
        result.update(repush_unchanged_s=round(t_again, 3), repush_unchanged_bytes=again.bytes_uploaded)
        layout2 = os.path.join(tmp, "img2")
        if a.layout:
            digest2, changed_path = derive_layout.one_file_change(layout, layout2, a.change_layer)
            result["one_file_change"] = f"layer {a.change_layer}: {changed_path}"
        else:
            digest2 = oci_images.make_image(layout2, layers(a.mb, b"print(2)\n"))
            result["one_file_change"] = "layer 3: app/main.py"
        t_changed, changed = timed(lambda: registry.push_layout(r1.url, "arr-trainer", layout2, digest2,
                                                                progress=False))
        # bytes_uploaded counts blobs; the manifest goes up twice besides (by digest, by tag).
        manifest_puts = 2 * os.path.getsize(os.path.join(layout2, "blobs", *digest2.split(":")))
        sent = changed.bytes_uploaded + manifest_puts
        result.update(repush_one_file_s=round(t_changed, 3),
                      repush_one_file_blobs=changed.blobs_uploaded,
                      repush_one_file_blob_bytes=changed.bytes_uploaded,
                      repush_one_file_manifest_put_bytes=manifest_puts,
                      repush_one_file_share=f"{sent / size:.7%}")
        fake = fake_google.FakeGoogle()
        with fake_google.running(fake) as url:
            def argv(name):
                return ["--project", "p", "--registry", r1.url, "--vertex-endpoint", url,
                        "--quota-endpoint", url, "--image-layout", layout2,
                        "--image-digest", layout2 + ".digest", "--skip-preflight", "--run-name", name,
                        "--state-file", os.path.join(tmp, f"state-{name}.json")]
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                t_submit, code = timed(lambda: cli.main(argv("bench")))
            assert code == 0 and len(fake.creates) == 1
            result["command_to_submitted_unchanged_in_process_s"] = round(t_submit, 3)
            # A fresh interpreter: imports and SDK start-up count, as after `bazel run`'s own start.
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            proc = [sys.executable, "-m", "tools.launch.cli", *argv("bench-process")]
            t_proc, out = timed(lambda: subprocess.run(proc, env=env, capture_output=True, text=True))
            assert out.returncode == 0 and len(fake.creates) == 2, out.stderr[-2000:]
            result["command_to_submitted_unchanged_fresh_process_s"] = round(t_proc, 3)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300, help="synthetic image size (without --layout)")
    ap.add_argument("--layout", help="push this OCI layout instead of a synthetic image")
    ap.add_argument("--change-layer", type=int, default=-2,
                    help="with --layout: index of the layer that gets the one-file change, negative from the "
                         "top (-2: ARR_COC in //Stack:arr_trainer, whose last layers are ARR_COC, ARR_COC/Training)")
    ap.add_argument("--scratch", help="parent of the temp dirs (registry storage, derived layouts)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of pushes, the order rotating each round")
    ap.add_argument("--caches", default="cold,warm", help="page-cache states to push from: cold, warm or both")
    ap.add_argument("--chunks", help="our push at these chunk sizes (MiB, comma-separated; 'mono': one PUT)")
    ap.add_argument("--jobs", type=int, help="our push's blob threads (default: registry.DEFAULT_JOBS)")
    ap.add_argument("--no-skopeo", action="store_true", help="only our push (chunk-size sweeps)")
    ap.add_argument("--no-extras", action="store_true", help="skip the re-push and command-to-submitted figures")
    a = ap.parse_args()
    if a.rounds < 1 or not set(a.caches.split(",")) <= {"cold", "warm"}:
        raise SystemExit("--rounds must be >= 1 and --caches a comma list of cold, warm")
    scratch = user_path(a.scratch) if a.scratch else None
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
              "loadavg_start": os.getloadavg(),
              "skopeo": tool_version([rs.require_tool("skopeo"), "--version"]),
              "docker_registry": tool_version([rs.require_tool("docker-registry"), "--version"]),
              "defaults": {"chunk_size": registry.DEFAULT_CHUNK, "jobs": registry.DEFAULT_JOBS},
              "cold_method": "posix_fadvise(POSIX_FADV_DONTNEED) on every blob, checked with mincore "
                             "(/proc/sys/vm/drop_caches needs host root)"}
    with tempfile.TemporaryDirectory(prefix="bench_push.", dir=scratch) as tmp:
        if a.layout:
            layout = os.path.abspath(user_path(a.layout))
            digest = layout_digest(layout)
            result.update(layout=layout, digest=digest)
        else:
            layout = os.path.join(tmp, "img")
            digest = oci_images.make_image(layout, layers(a.mb, b"print(1)\n"))
            result.update(layout=f"synthetic, {a.mb} MB", digest=digest)
        size = blob_bytes(layout)
        result["image_bytes"] = size
        rows, result["summary"] = push_rounds(a, layout, digest, scratch)
        result["pushes"] = rows
        if not a.no_extras:
            result.update(extras(layout, digest, a, tmp, size))
    result["loadavg_end"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
