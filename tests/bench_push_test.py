"""The push benchmark's own logic: run order, chunk list, summary, page-cache control."""

import os

import pytest

from tests.support import bench_push as B
from tests.support import page_cache


@pytest.mark.parametrize(
    "items, round_index, order",
    [
        ("ab", 0, "ab"), ("ab", 1, "ba"), ("ab", 2, "ab"), ("ab", 3, "ba"),  # two: alternate
        ("abc", 0, "abc"), ("abc", 1, "acb"), ("abc", 2, "cab"),  # more: rotate, reverse every other
    ],
)
def test_rotation(items, round_index, order):
    assert "".join(B.rotation(list(items), round_index)) == order


def test_each_contender_goes_first_as_often_as_the_other():
    firsts = [B.rotation(["ours", "skopeo"], r)[0] for r in range(4)]
    assert firsts.count("ours") == firsts.count("skopeo") == 2


@pytest.mark.parametrize(
    "text, sizes",
    [("8", [8 << 20]), ("16, 128,mono", [16 << 20, 128 << 20, B.ONE_PUT])],
)
def test_parse_chunks(text, sizes):
    assert B.parse_chunks(text) == sizes


@pytest.mark.parametrize("text", ["0", "8M", "-8", "mono,", "one"])
def test_parse_chunks_refuses(text):
    with pytest.raises(SystemExit, match="neither a size in MiB nor 'mono'"):
        B.parse_chunks(text)


def row(who, cache, seconds, rnd):
    return {"who": who, "cache": cache, "seconds": seconds, "round": rnd,
            "client_cpu_s": seconds / 10, "registry_cpu_s": seconds / 2}


def test_summary_gives_medians_and_per_round_ratios():
    rows = [row("ours", "cold", 6, 1), row("skopeo", "cold", 10, 1),
            row("skopeo", "cold", 8, 2), row("ours", "cold", 8, 2),
            row("ours", "cold", 9, 3), row("skopeo", "cold", 9, 3)]
    cold = B.summarize(rows, ["ours", "skopeo"], ["cold"])["cold"]
    assert (cold["ours_median_s"], cold["skopeo_median_s"]) == (8, 9)
    assert cold["ours_over_skopeo_per_round"] == [0.6, 1.0, 1.0]
    assert cold["ours_over_skopeo_median"] == 1.0  # the median of the ratios, not of the times
    assert cold["ours_median_registry_cpu_s"] == 4.0


def test_evict_and_warm_change_what_is_resident(tmp_path):
    """posix_fadvise really drops the pages and mincore sees it (the cold-cache premise)."""
    path = tmp_path / "blob"
    with open(path, "wb") as f:
        f.write(os.urandom(4 << 20))
        f.flush()
        os.fsync(f.fileno())  # dirty pages would stay
    page_cache.evict(str(path))
    assert page_cache.resident_bytes(str(path)) == 0, "is the test's temp dir on tmpfs?"
    page_cache.warm(str(path))
    assert page_cache.resident_bytes(str(path)) == 4 << 20
