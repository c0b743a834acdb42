"""Whole-video and whole-atlas passes evaluate the networks a chunk of pixels at a time."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["DEFAULT_CHUNK_SIZE", "chunk_ranges", "progress_bar"]

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
