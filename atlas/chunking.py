"""Whole-video and whole-atlas passes evaluate the networks a chunk of pixels at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

__all__ = ["DEFAULT_CHUNK_SIZE", "chunk_ranges", "lower_median", "median", "order_statistics", "progress_bar"]

#: pixels per network evaluation, unless the caller says otherwise.
DEFAULT_CHUNK_SIZE = 65536


def progress_bar(total: int, enabled: bool, description: str):
    """A tqdm bar over ``total`` pixels, or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm.auto import tqdm  # optional dependency, imported only when asked for

    return tqdm(total=total, desc=description, unit="px", unit_scale=True)


def chunk_ranges(total: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of consecutive chunks of at most ``chunk_size`` covering ``range(total)``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, total, chunk_size):
        yield start, min(start + chunk_size, total)


def order_statistics(chunks: Callable[[], Iterable[np.ndarray]], ranks: Callable[[int], list[int]]
                     ) -> list[float] | None:
    """The values at 0-based ``ranks(count)`` in sorted order of the non-negative float32 values that
    ``chunks()`` yields as numpy arrays, found without holding them all; None when there are none.

    ``chunks`` is called twice. The bit patterns of non-negative float32 values sort as the values
    do, so the first pass counts the values per leading 16 bits (65536 bins) and finds the bin and
    the rank within it of each wanted rank; the second keeps only those bins' values and selects
    from them. Memory: the bins and a few bins' values instead of every value (a long clip's
    per-pixel values are gigabytes). Exact: the same values as sorting everything.
    """
    counts = np.zeros(1 << 16, np.int64)
    for values in chunks():
        bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
        counts += np.bincount((bits >> 16).ravel(), minlength=1 << 16)
    total = int(counts.sum())
    if total == 0:
        return None
    cumulative = np.cumsum(counts)
    wanted = [(int(np.searchsorted(cumulative, rank, side="right")), rank) for rank in ranks(total)]
    bins = sorted({bin_index for bin_index, _ in wanted})
    members: dict[int, list[np.ndarray]] = {bin_index: [] for bin_index in bins}
    for values in chunks():
        values = np.ascontiguousarray(values, np.float32).ravel()
        leading = values.view(np.uint32) >> 16
        for bin_index in bins:
            members[bin_index].append(values[leading == bin_index])
    found = []
    for bin_index, rank in wanted:
        inside = np.concatenate(members[bin_index])
        within = rank - (int(cumulative[bin_index - 1]) if bin_index else 0)
        inside.partition(within)
        found.append(inside[within])
    return [float(value) for value in found]


def lower_median(chunks: Callable[[], Iterable[np.ndarray]]) -> float | None:
    """The lower median (``torch.median``'s) of :func:`order_statistics`' values; None when none."""
    found = order_statistics(chunks, lambda count: [(count - 1) // 2])
    return None if found is None else found[0]


def median(chunks: Callable[[], Iterable[np.ndarray]]) -> float | None:
    """``np.median`` of the float32 values (the mean of the two middle ones, in float32, for an even
    count), without holding them all; None when there are none."""
    found = order_statistics(chunks, lambda count: [(count - 1) // 2, count // 2])
    return None if found is None else float(np.mean(np.asarray(found, np.float32)))
