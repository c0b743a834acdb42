"""Regions worth editing: per-frame boxes and the atlas region they touch (docs/atlas.md, "Atlas crops").

Background: every frame's box is the whole frame and the atlas region is the box of all its
pixels' atlas coordinates. Foreground: a frame's box is the bounding box of its pixels with NLA
alpha > 0.95, grown by 30 px per side and padded to at least the editor's minimum size per side
(clipped to the frame); a frame without any such pixel has no box (None) and contributes
nothing. The atlas region is the box, in atlas pixels, of the uvs of all pixels inside the frame
boxes (floor of the min, ceil of the max; see :func:`atlas.coordinates.uv_bounding_box`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .chunking import lower_median
from .coordinates import PixelBox, uv_bounding_box
from .layers import Layer, layer_uv_offset
from .model import AtlasMaps

__all__ = [
    "LayerCropRegions",
    "NoForegroundError",
    "atlas_region",
    "foreground_frame_boxes",
    "frame_uv_extents",
    "layer_crop_regions",
    "region_pixels",
    "resolution_within",
    "suggested_resolution",
]


class NoForegroundError(ValueError):
    """No frame has a foreground pixel above the alpha threshold."""


def foreground_frame_boxes(
    alpha: torch.Tensor,
    threshold: float = 0.95,
    border: int = 30,
    min_size: int = 1,
) -> list[PixelBox | None]:
    """Per-frame boxes around the confident foreground.

    Args:
        alpha: ``(N, 1, H, W)`` NLA alpha (not modified).
        threshold: a pixel is foreground when alpha > threshold.
        border: pixels added on every side of the tight box (clipped to the frame).
        min_size: minimum box side after padding (capped at the frame side); the generator
            with ``num_scales`` downsamplings needs ``2^num_scales + 1``.

    Returns:
        One :class:`PixelBox` (frame pixels) per frame, None for a frame without foreground.
    """
    if alpha.dim() != 4 or alpha.shape[1] != 1:
        raise ValueError(f"alpha must be (N, 1, H, W), got {tuple(alpha.shape)}")
    _, _, height, width = alpha.shape
    foreground = alpha[:, 0] > threshold  # (N, H, W), a new tensor
    rows_with = foreground.any(dim=2).cpu()  # (N, H)
    columns_with = foreground.any(dim=1).cpu()  # (N, W)
    boxes: list[PixelBox | None] = []
    for frame_rows, frame_columns in zip(rows_with, columns_with):
        rows = torch.nonzero(frame_rows)[:, 0]
        columns = torch.nonzero(frame_columns)[:, 0]
        if rows.numel() == 0:
            boxes.append(None)
            continue
        tight = PixelBox(int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)
        boxes.append(tight.expanded(border, width, height).padded_to(min_size, width, height))
    return boxes


def atlas_region(
    maps: AtlasMaps,
    layer: Layer,
    resolution: int,
    frame_boxes: list[PixelBox | None] | None = None,
) -> PixelBox | None:
    """Atlas pixels touched by the frames (all pixels, or those inside per-frame boxes).

    Args:
        maps: per-frame uv maps.
        layer: "foreground" or "background".
        resolution: R of the atlas.
        frame_boxes: one box (frame pixels) or None per frame; None for the argument means every
            pixel of every frame.

    Returns:
        The atlas-pixel box, or None when no frame has a box.
    """
    layer_uv_offset(layer)
    uv = maps.uv(layer)
    if frame_boxes is None:
        return uv_bounding_box(uv, layer, resolution)
    if len(frame_boxes) != maps.num_frames:
        raise ValueError(f"{len(frame_boxes)} frame boxes for {maps.num_frames} frames")
    mask = torch.zeros(uv.shape[:3], dtype=torch.bool, device=uv.device)
    for index, box in enumerate(frame_boxes):
        if box is not None:
            mask[index, box.top : box.bottom, box.left : box.right] = True
    return uv_bounding_box(uv, layer, resolution, mask)


@dataclass(frozen=True)
class LayerCropRegions:
    """What to crop when editing one layer.

    Attributes:
        layer: "foreground" or "background".
        resolution: R of the atlas the boxes refer to.
        frame_boxes: per frame, the region (frame pixels) to take training crops from, or None
            for a foreground frame without confident foreground (skip it).
        atlas_box: atlas-pixel region touched by all frame boxes (the part worth editing).
    """

    layer: Layer
    resolution: int
    frame_boxes: list[PixelBox | None]
    atlas_box: PixelBox

    @property
    def frames_with_box(self) -> list[int]:
        """Indices of frames that have a box."""
        return [index for index, box in enumerate(self.frame_boxes) if box is not None]


def layer_crop_regions(
    maps: AtlasMaps,
    layer: Layer,
    resolution: int = 2000,
    min_size: int = 1,
    alpha_threshold: float = 0.95,
    border: int = 30,
) -> LayerCropRegions:
    """Frame boxes and atlas region for editing ``layer`` (module docstring has the rules).

    Args:
        maps: per-frame uv maps and alpha.
        layer: "foreground" or "background".
        resolution: R of the atlas.
        min_size: foreground boxes are at least this many pixels per side (what the editor's
            generator needs).
        alpha_threshold: foreground confidence threshold.
        border: foreground box growth in pixels.

    Returns:
        :class:`LayerCropRegions`.

    Raises:
        NoForegroundError: editing the foreground of a video in which no frame has alpha above
            the threshold.
    """
    layer_uv_offset(layer)
    if layer == Layer.background:
        whole = PixelBox(0, 0, maps.width, maps.height)
        frame_boxes: list[PixelBox | None] = [whole] * maps.num_frames
        box = atlas_region(maps, layer, resolution)
    else:
        frame_boxes = foreground_frame_boxes(maps.alpha, alpha_threshold, border, min_size)
        box = atlas_region(maps, layer, resolution, frame_boxes)
        if box is None:
            raise NoForegroundError(
                f"no frame has a foreground pixel with NLA alpha > {alpha_threshold}; "
                "the foreground layer of this atlas cannot be edited"
            )
    assert box is not None
    return LayerCropRegions(layer=layer, resolution=resolution, frame_boxes=frame_boxes, atlas_box=box)


def suggested_resolution(maps: AtlasMaps, layer: Layer, atlas_pixels_per_frame_pixel: float = 2.0,
                         limit: int = 4096) -> int:
    """Atlas side R that gives the layer ``atlas_pixels_per_frame_pixel`` atlas pixels per frame
    pixel along each axis (median over the frames' pixels), so the atlas follows the clip's size.

    Text2LIVE bakes NLA atlases of 768 x 432 clips at R = 2000: NLA maps a frame pixel to
    0.8 / 768 of the uv square, i.e. 2000 x 0.8 / 768 ~ 2.1 atlas pixels per frame pixel. The
    same density for a 64 x 48 clip is R ~ 170, not 2000 (a step's cost grows with R^2).

    Args:
        maps: the video's uv maps (:meth:`NeuralAtlas.precompute_maps`).
        layer: which layer's uv to measure.
        atlas_pixels_per_frame_pixel: the density wanted.
        limit: largest R returned.

    Returns:
        R, at least 16.
    """
    uv = maps.uv(layer)
    n = uv.shape[0]
    alpha = maps.alpha[:, 0]
    # only where the foreground is seen (everywhere when it is seen nowhere)
    only_seen = layer == Layer.foreground and bool((alpha[:, :, 1:] > 0.5).any() or (alpha[:, 1:] > 0.5).any())

    def steps():
        """The uv steps between horizontal and vertical neighbours, a few frames at a time."""
        for start in range(0, n, 8):
            part = uv[start:start + 8]
            found = [(part[:, :, 1:] - part[:, :, :-1]).norm(dim=-1), (part[:, 1:] - part[:, :-1]).norm(dim=-1)]
            if only_seen:
                seen = alpha[start:start + 8]
                found = [found[0][seen[:, :, 1:] > 0.5], found[1][seen[:, 1:] > 0.5]]
            for values in found:
                yield values.flatten().float().cpu().numpy()

    step = lower_median(steps)
    if step is None or step <= 0:
        return 16
    return int(min(max(round(atlas_pixels_per_frame_pixel / step), 16), limit))


# ----------------------------------------------------------------- generator input bound
def frame_uv_extents(maps: AtlasMaps, layer: Layer, frame_boxes: list[PixelBox | None]) -> torch.Tensor:
    """Per frame, the extent of the layer's uvs inside its box, in atlas units ``uv - s`` (atlas
    pixel coordinates divided by R, for every R: see :func:`atlas.coordinates.uv_to_atlas_pixels`).

    Returns:
        ``(N, 4)`` float64 rows (low u, low v, high u, high v); NaN for a frame without a box.
    """
    uv = maps.uv(layer)
    offset = layer_uv_offset(layer)
    extents = torch.full((maps.num_frames, 4), float("nan"), dtype=torch.float64)
    for index, box in enumerate(frame_boxes):
        if box is None:
            continue
        inside = uv[index, box.top:box.bottom, box.left:box.right].reshape(-1, 2).double() - offset
        extents[index, :2] = inside.min(dim=0).values.cpu()
        extents[index, 2:] = inside.max(dim=0).values.cpu()
    return extents


def _box_pixels(low: torch.Tensor, high: torch.Tensor, resolution: int) -> int:
    """Pixels of the atlas box :func:`uv_bounding_box` gives for uvs spanning low..high (atlas units)."""
    sides = []
    for axis in range(2):
        start = min(max(math.floor(float(low[axis]) * resolution), 0), resolution - 1)
        end = max(min(math.ceil(float(high[axis]) * resolution) + 1, resolution), start + 1)
        sides.append(end - start)
    return sides[0] * sides[1]


def region_pixels(extents: torch.Tensor, resolution: int) -> int:
    """Pixels of the atlas region (:func:`atlas_region`) at atlas side ``resolution``: the box of the
    uvs of every frame box, from the per-frame ``extents`` of :func:`frame_uv_extents` (0 when no
    frame has a box). Every training crop of the edit lies inside it, and the final render runs the
    generator on all of it, so it bounds every generator pass of an edit."""
    seen = extents[~torch.isnan(extents[:, 0])]
    if not seen.shape[0]:
        return 0
    return _box_pixels(seen[:, :2].min(dim=0).values, seen[:, 2:].max(dim=0).values, resolution)


def resolution_within(extents: torch.Tensor, resolution: int, max_pixels: int, min_resolution: int) -> int:
    """The largest atlas side at most ``resolution`` (and at least ``min_resolution``) whose
    :func:`region_pixels` is at most ``max_pixels`` (0: no limit): ``resolution`` when it already
    is. Pixels grow with R^2, so the search starts from R sqrt(max / pixels)."""
    pixels = region_pixels(extents, resolution)
    if max_pixels <= 0 or pixels <= max_pixels:
        return resolution
    candidate = max(min_resolution, min(resolution, math.floor(resolution * math.sqrt(max_pixels / pixels))))
    while candidate > min_resolution and region_pixels(extents, candidate) > max_pixels:
        candidate = max(min_resolution, candidate - max(1, candidate // 100))
    return candidate
