"""Layer gzip benchmark: block size, threads and level against time and compressed size.

    tools/bazel run //tools/oci:bench_gzip -- DIR [MB]

Tars up to MB megabytes of DIR (e.g. torch's lib/ folder in the output base) in
memory, then compresses it with the single-stream writer and with the threaded
writer at several block sizes and thread counts, then at several levels. Last, the
tar stream alone (what a layer action does before gzip) with tarfile's default
16 KiB copies and with the layer writer's CHUNK. CPU seconds are this process's
user+sys, which hold on a loaded machine; wall seconds only on an idle one.
"""

from __future__ import annotations

import io
import os
import resource
import sys
import time

from zlib_ng import gzip_ng, gzip_ng_threaded

from tools.oci import layout


def tar_of(entries: list[layout.Entry]) -> bytes:
    """The layer tar of ENTRIES, in memory."""
    buf = io.BytesIO()
    layout.write_tar_stream(entries, buf)
    return buf.getvalue()


def files_of(src: str, limit: int) -> list[layout.Entry]:
    """SRC's files in walk order as layer entries, until about LIMIT bytes (read when written)."""
    entries, total = [], 0
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if total > limit:
                return entries
            entries.append(layout.Entry.file(os.path.relpath(path, src), source=path))
            total += os.path.getsize(path)
    return entries


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(data: bytes, block: int | None, threads: int,
            level: int = layout.GZIP_LEVEL) -> tuple[float, float, int]:
    out = io.BytesIO()
    wall, cpu = time.perf_counter(), cpu_s()
    if block is None:
        gz = gzip_ng.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=level)
    else:
        gz = gzip_ng_threaded.open(out, "wb", compresslevel=level, threads=threads, block_size=block)
    for i in range(0, len(data), layout.CHUNK):
        gz.write(data[i:i + layout.CHUNK])
    gz.close()
    return time.perf_counter() - wall, cpu_s() - cpu, len(out.getvalue())


def main(argv: list[str]) -> int:
    src, mb = argv[0], int(argv[1]) if len(argv) > 1 else 300
    entries = files_of(src, mb << 20)
    data = tar_of(entries)
    print(f"tar {len(data) / 1e6:.0f} MB of {src}; load average {os.getloadavg()[0]:.1f}; "
          f"{len(os.sched_getaffinity(0))} cores")
    print("| writer | block | threads | wall s | CPU s | gzip MB |\n|---|---|---|---|---|---|")
    runs = [(None, 1)] + [(b << 10, t) for b in (128, 512, 1024, 4096) for t in (1, 2, 4)]
    for block, threads in runs:
        wall, cpu, size = measure(data, block, threads)
        name = "single stream" if block is None else "threaded"
        print(f"| {name} | {'-' if block is None else f'{block >> 10} KiB'} | {threads} | {wall:.2f} | "
              f"{cpu:.2f} | {size / 1e6:.2f} |")
    cores = len(os.sched_getaffinity(0))
    print(f"\n| level | block | threads | wall s | CPU s | gzip MB |\n|---|---|---|---|---|---|")
    for level in (1, 2, 3, 6, 9):
        wall, cpu, size = measure(data, layout.GZIP_BLOCK, cores, level)
        print(f"| {level} | {layout.GZIP_BLOCK >> 10} KiB | {cores} | {wall:.2f} | {cpu:.2f} | {size / 1e6:.2f} |")
    print("\n| tar stream copies | wall s | CPU s | tar MB |\n|---|---|---|---|")
    for name, copy_size in (("16 KiB (tarfile's default)", 16 << 10), (f"{layout.CHUNK >> 10} KiB", layout.CHUNK)):
        sink = layout._HashingWriter(None)
        wall, cpu = time.perf_counter(), cpu_s()
        layout.write_tar_stream(entries, sink, copy_size=copy_size)
        print(f"| {name} | {time.perf_counter() - wall:.2f} | {cpu_s() - cpu:.2f} | {sink.size / 1e6:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
