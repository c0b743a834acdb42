"""Atlas pixel coordinates, pixel boxes and ``grid_sample`` grids.

Convention (used by baking, sampling and crops alike): a layer's atlas is an R x R image whose
pixel (row r, column c) holds the atlas network at ``(u, v) = (c / R + s, r / R + s)`` with
s = 0 for the foreground and -1 for the background. Hence the atlas pixel coordinate of a uv is
``p = (uv - s) * R`` (last axis (column, row)), and an integer p is exactly a pixel centre.
Sampling with ``grid_sample(align_corners=False)`` maps the normalised grid value g of an image of
``size`` pixels to the continuous pixel coordinate ``((g + 1) * size - 1) / 2``; the matching grid
is therefore ``g = (2 p + 1) / size - 1`` (the half-pixel shift), so sampling a baked atlas at the
uv a pixel was baked at returns that pixel exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .layers import Layer, layer_uv_offset

__all__ = [
    "PixelBox",
    "atlas_pixels_to_grid",
    "uv_bounding_box",
    "uv_to_atlas_pixels",
    "uv_to_grid",
]


@dataclass(frozen=True)
class PixelBox:
    """An axis-aligned box of whole pixels, half-open: columns [left, right), rows [top, bottom).

    Used for frame boxes (frame pixels) and atlas regions (atlas pixels).
    """

    left: int
    top: int
    right: int
    bottom: int

    def __post_init__(self) -> None:
        if self.right <= self.left or self.bottom <= self.top:
            raise ValueError(f"empty PixelBox {self}")

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.bottom - self.top

    @property
    def origin(self) -> tuple[int, int]:
        """(left, top): pixel coordinate of the box's first pixel."""
        return (self.left, self.top)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """``image[..., top:bottom, left:right]`` for an image ``(..., rows, columns)``."""
        return image[..., self.top : self.bottom, self.left : self.right]

    def union(self, other: PixelBox) -> PixelBox:
        """Smallest box holding both."""
        return PixelBox(
            min(self.left, other.left), min(self.top, other.top),
            max(self.right, other.right), max(self.bottom, other.bottom),
        )

    def expanded(self, border: int, width_limit: int, height_limit: int) -> PixelBox:
        """Grow by ``border`` pixels on every side, clipped to [0, width_limit) x [0, height_limit)."""
        return PixelBox(
            max(0, self.left - border), max(0, self.top - border),
            min(width_limit, self.right + border), min(height_limit, self.bottom + border),
        )

    def padded_to(self, min_size: int, width_limit: int, height_limit: int) -> PixelBox:
        """Grow each side shorter than ``min_size`` to ``min_size`` (about its centre), shifted to stay
        inside [0, width_limit) x [0, height_limit); a side cannot exceed its limit."""

        def grow(start: int, end: int, limit: int) -> tuple[int, int]:
            size = min(max(end - start, min_size), limit)
            if size == end - start:
                return start, end
            new_start = start - (size - (end - start)) // 2
            new_start = min(max(new_start, 0), limit - size)
            return new_start, new_start + size

        left, right = grow(self.left, self.right, width_limit)
        top, bottom = grow(self.top, self.bottom, height_limit)
        return PixelBox(left, top, right, bottom)


def uv_to_atlas_pixels(uv: torch.Tensor, layer: Layer, resolution: int) -> torch.Tensor:
    """Atlas pixel coordinates ``(uv - s) * R``.

    Args:
        uv: ``(..., 2)`` layer uv, (u, v) = (horizontal, vertical).
        layer: "foreground" (s = 0) or "background" (s = -1).
        resolution: R, the full atlas side in pixels.

    Returns:
        ``(..., 2)`` (column, row) coordinates in [0, R); integers are pixel centres.
    """
    return (uv - layer_uv_offset(layer)) * resolution


def atlas_pixels_to_grid(
    pixels: torch.Tensor,
    image_width: int,
    image_height: int,
    origin: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """``grid_sample(align_corners=False)`` grid for atlas pixel coordinates.

    Args:
        pixels: ``(..., 2)`` (column, row) atlas pixel coordinates (pixel centres at integers).
        image_width, image_height: size of the image being sampled (a full atlas or a crop).
        origin: (left, top) atlas pixel of the image's first pixel (a crop's box origin).

    Returns:
        ``(..., 2)`` grid in [-1, 1] for pixels inside the image.
    """
    left, top = origin
    column = (2.0 * (pixels[..., 0] - left) + 1.0) / image_width - 1.0
    row = (2.0 * (pixels[..., 1] - top) + 1.0) / image_height - 1.0
    return torch.stack((column, row), dim=-1)


def uv_to_grid(
    uv: torch.Tensor,
    layer: Layer,
    resolution: int,
    box: PixelBox | None = None,
) -> torch.Tensor:
    """``grid_sample(align_corners=False)`` grid to sample a baked atlas (or a crop of it) at uv.

    Args:
        uv: ``(..., 2)`` layer uv.
        layer: "foreground" or "background".
        resolution: R of the full baked atlas.
        box: the crop of the atlas the sampled image holds (None: the whole R x R atlas).

    Returns:
        ``(..., 2)`` grid.
    """
    pixels = uv_to_atlas_pixels(uv, layer, resolution)
    if box is None:
        return atlas_pixels_to_grid(pixels, resolution, resolution)
    return atlas_pixels_to_grid(pixels, box.width, box.height, box.origin)


#: uvs per step of :func:`uv_bounding_box`
_BOX_CHUNK = 1 << 20


def uv_bounding_box(
    uv: torch.Tensor,
    layer: Layer,
    resolution: int,
    mask: torch.Tensor | None = None,
) -> PixelBox | None:
    """Atlas pixels needed to sample the given uvs bilinearly.

    The box spans columns/rows ``floor(min p)`` .. ``ceil(max p)`` inclusive, p the atlas pixel
    coordinates, clipped to the atlas [0, R).

    Args:
        uv: ``(..., 2)`` layer uv.
        layer: "foreground" or "background".
        resolution: R.
        mask: optional boolean ``uv.shape[:-1]``; only uvs where it is True count.

    Returns:
        The box, or None when no uv counts.
    """
    flat = uv.reshape(-1, 2)
    keep = None if mask is None else mask.reshape(-1)
    lows, highs = [], []
    for start in range(0, flat.shape[0], _BOX_CHUNK):  # a chunk at a time: a long clip's uv maps are gigabytes
        pixels = uv_to_atlas_pixels(flat[start:start + _BOX_CHUNK], layer, resolution)
        if keep is not None:
            pixels = pixels[keep[start:start + _BOX_CHUNK]]
        if pixels.shape[0]:
            lows.append(pixels.min(dim=0).values)
            highs.append(pixels.max(dim=0).values)
    if not lows:
        return None
    low = torch.stack(lows).min(dim=0).values.tolist()
    high = torch.stack(highs).max(dim=0).values.tolist()
    left = min(max(math.floor(low[0]), 0), resolution - 1)
    top = min(max(math.floor(low[1]), 0), resolution - 1)
    right = max(min(math.ceil(high[0]) + 1, resolution), left + 1)
    bottom = max(min(math.ceil(high[1]) + 1, resolution), top + 1)
    return PixelBox(left, top, right, bottom)
