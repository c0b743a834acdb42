"""A GridAtlas that starts close to the answer, from optical flow and foreground masks.

- Background: the dominant camera motion between consecutive frames is a homography fitted
  robustly (RANSAC) to the forward flow of background pixels that pass the forward-backward
  check; chained to the middle frame, it maps every frame onto one canonical plane (a panorama).
- Foreground: the object's motion between consecutive frames is a similarity (rotation, scale,
  translation) fitted robustly to the flow inside the mask, chained to the frame where the
  object is largest.
- Textures: every frame's pixels are splatted (bilinear weights) into their layer's texture
  through those maps and averaged; texels no frame sees are filled from coarser levels
  (pull-push), so the first reconstruction is already a sharp mosaic.
- Alpha: the masks, downsampled to the alpha grid, as moderate logits.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from text2live_geo.common.video_io import frames_as_float

from ..grid_model import GridAtlas, GridAtlasConfig

__all__ = ["initial_grid_atlas", "chain_to_reference", "pairwise_motion", "splat_texture"]

# a pair's motion needs at least this many reliable flow vectors; fewer: keep the previous motion
_MIN_POINTS = 12


def _normaliser(width: int, height: int) -> np.ndarray:
    """3 x 3 map from pixel (x, y) to normalised (x / (L/2) - 1, y / (L/2) - 1)."""
    half_side = max(width, height) / 2.0
    return np.array([[1 / half_side, 0, -1], [0, 1 / half_side, -1], [0, 0, 1]], dtype=np.float64)


def pairwise_motion(forward: np.ndarray, usable: np.ndarray, kind: str, step: int = 2) -> np.ndarray | None:
    """Fit the motion from frame t to t + 1 to a flow field, robustly.

    Args:
        forward: ``(H, W, 2)`` flow t -> t + 1 in pixels.
        usable: ``(H, W)`` bool, the pixels whose flow may be used.
        kind: "homography" or "similarity".
        step: use every step-th pixel along each axis (the fit needs hundreds, not all).

    Returns:
        3 x 3 matrix acting on pixel (x, y, 1), or None when too few usable vectors.
    """
    ys, xs = np.nonzero(usable[::step, ::step])
    if len(xs) < _MIN_POINTS:
        return None
    xs, ys = xs * step, ys * step
    source = np.stack((xs, ys), axis=1).astype(np.float32)
    target = source + forward[ys, xs].astype(np.float32)
    if kind == "homography":
        matrix, _ = cv2.findHomography(source, target, cv2.RANSAC, 1.0)
        return None if matrix is None else matrix.astype(np.float64)
    matrix, _ = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=1.0)
    return None if matrix is None else np.vstack((matrix, [0, 0, 1])).astype(np.float64)


def chain_to_reference(steps: list[np.ndarray | None], reference: int) -> list[np.ndarray]:
    """Per-frame maps onto the reference frame from the maps between consecutive frames.

    Args:
        steps: ``N - 1`` matrices, ``steps[t]`` maps frame t to frame t + 1 (None: unknown,
            taken as the neighbouring known step, or the identity).
        reference: the frame whose coordinates are the canonical ones.

    Returns:
        N matrices, map t takes frame t's coordinates to the reference frame's.
    """
    known = [step for step in steps if step is not None]
    filled: list[np.ndarray] = []
    for index, step in enumerate(steps):
        if step is None:
            # a gap in the flow: repeat the motion of the nearest known pair (smooth camera)
            nearest = min(range(len(steps)), key=lambda j: (steps[j] is None, abs(j - index)))
            step = steps[nearest] if known else np.eye(3)
        filled.append(step)
    maps = [np.eye(3) for _ in range(len(steps) + 1)]
    for t in range(reference - 1, -1, -1):
        maps[t] = maps[t + 1] @ filled[t]
    for t in range(reference + 1, len(steps) + 1):
        maps[t] = maps[t - 1] @ np.linalg.inv(filled[t - 1])
    return maps


def _canvas(points: np.ndarray, margin: float) -> tuple[float, float, float]:
    """(left, top, side) of the square that holds ``(P, 2)`` points with a relative margin."""
    low, high = points.min(axis=0), points.max(axis=0)
    side = float((high - low).max()) * (1 + 2 * margin) + 1e-6
    centre = (low + high) / 2
    return float(centre[0] - side / 2), float(centre[1] - side / 2), side


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    mapped = np.c_[points, np.ones(len(points))] @ matrix.T
    return mapped[:, :2] / mapped[:, 2:]


def _texture_side(maps: list[np.ndarray], side: float, width: int, height: int, density: float,
                  limits: tuple[int, int]) -> int:
    """Texels so that the finest frame gets ``density`` texels per pixel along each axis."""
    half_side = max(width, height) / 2.0
    centre = np.array([[width / 2 / half_side - 1, height / 2 / half_side - 1]])
    finest = 0.0
    for matrix in maps:  # canonical units per frame pixel, from the map's local Jacobian
        step = 1.0 / half_side
        here = _apply(matrix, centre)
        across = _apply(matrix, centre + [[step, 0]]) - here
        down = _apply(matrix, centre + [[0, step]]) - here
        area = abs(across[0, 0] * down[0, 1] - across[0, 1] * down[0, 0])
        finest = max(finest, 1.0 / max(math.sqrt(area), 1e-9))
    texels = side * finest * density
    return int(min(max(math.ceil(texels), limits[0]), limits[1]))


def splat_texture(uv: torch.Tensor, colours: torch.Tensor, side: int) -> torch.Tensor:
    """Average colours into a ``side`` x ``side`` texture at uv in [0, 1]^2 (bilinear splats),
    filling texels that nothing reached from coarser levels (pull-push).

    Args:
        uv: ``(P, 2)`` texture coordinates (u along columns, v along rows), [0, 1].
        colours: ``(P, 3)`` colours.
        side: texture side R.

    Returns:
        ``(3, R, R)`` texture.
    """
    total = torch.zeros(side * side, 3, dtype=colours.dtype)
    weight = torch.zeros(side * side, dtype=colours.dtype)
    _accumulate_splat(uv, colours, side, total, weight)
    return _splatted_texture(total, weight, side)


def _accumulate_splat(uv: torch.Tensor, colours: torch.Tensor, side: int, total: torch.Tensor,
                      weight: torch.Tensor) -> None:
    """Add the bilinear splats of ``colours`` at ``uv`` to ``total`` ``(R * R, 3)`` and ``weight``
    ``(R * R,)``, in order (so splatting in consecutive parts adds up as splatting at once)."""
    position = uv * side - 0.5  # texel centres at (i + 0.5) / R
    base = position.floor()
    fraction = position - base
    for dx in (0, 1):
        for dy in (0, 1):
            wx = fraction[:, 0] if dx else 1 - fraction[:, 0]
            wy = fraction[:, 1] if dy else 1 - fraction[:, 1]
            column = (base[:, 0] + dx).long()
            row = (base[:, 1] + dy).long()
            inside = (column >= 0) & (column < side) & (row >= 0) & (row < side)
            index = (row * side + column)[inside]
            w = (wx * wy)[inside]
            total.index_add_(0, index, colours[inside] * w[:, None])
            weight.index_add_(0, index, w)


def _splatted_texture(total: torch.Tensor, weight: torch.Tensor, side: int) -> torch.Tensor:
    texture = total.t().reshape(3, side, side)
    coverage = weight.reshape(1, side, side)
    return _pull_push(texture, coverage)


#: entries of the grid model's (pixels x frames) blend matrix per uv evaluation of the initial splat
_SPLAT_BLEND_ENTRIES = 1 << 24


def _splat_frames(atlas: GridAtlas, to_uv, frames: torch.Tensor, selected: torch.Tensor, side: int) -> torch.Tensor:
    """:func:`splat_texture` of the ``selected`` ``(N, H, W)`` pixels of every frame at ``to_uv`` of
    their coordinates, a frame (and a bounded number of pixels) at a time: the grid model maps a
    pixel through an ``(pixels, N)`` blend matrix, so mapping every pixel of the clip at once would
    take memory growing with N^2 H W (~30 GB for 150 frames of 768 x 432). The same sums, in the same
    order."""
    n = frames.shape[0]
    dtype = torch.float32 if frames.dtype == torch.uint8 else frames.dtype
    total = torch.zeros(side * side, 3, dtype=dtype)
    weight = torch.zeros(side * side, dtype=dtype)
    step = max(1024, _SPLAT_BLEND_ENTRIES // n)
    for t in range(n):
        keep = selected[t].reshape(-1)
        if not bool(keep.any()):
            continue
        pixels = atlas.frame_pixels([t])[keep]
        frame = frames_as_float(frames[t]) if frames.dtype == torch.uint8 else frames[t]
        colours = frame.permute(1, 2, 0).reshape(-1, 3)[keep]
        for start in range(0, pixels.shape[0], step):
            _accumulate_splat(to_uv(pixels[start:start + step]), colours[start:start + step], side, total, weight)
    return _splatted_texture(total, weight, side)


def _pull_push(total: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Fill ``total / coverage`` where coverage is ~0 with the same image at coarser levels."""
    side = total.shape[-1]
    if side <= 1 or float(coverage.min()) > 1e-3:
        return total / coverage.clamp_min(1e-8)
    coarse_total = F.avg_pool2d(total[None], 2, ceil_mode=True)[0]
    coarse_coverage = F.avg_pool2d(coverage[None], 2, ceil_mode=True)[0]
    coarse = _pull_push(coarse_total, coarse_coverage)
    upsampled = F.interpolate(coarse[None], size=total.shape[-2:], mode="bilinear", align_corners=False)[0]
    blend = coverage.clamp(0, 1)  # well-covered texels keep their own mean
    return blend * (total / coverage.clamp_min(1e-8)) + (1 - blend) * upsampled


def _logit(values: torch.Tensor, low: float = 0.002) -> torch.Tensor:
    values = values.clamp(low, 1 - low)
    return torch.log(values / (1 - values))


def initial_grid_atlas(frames: torch.Tensor, masks: torch.Tensor | None, forward: torch.Tensor,
                       forward_valid: torch.Tensor, config: GridAtlasConfig, texel_density: float = 1.0,
                       texture_limits: tuple[int, int] = (32, 2048), canvas_margin: float = 0.05) -> GridAtlas:
    """A :class:`GridAtlas` initialised from the clip (see the module docstring).

    Args:
        frames: ``(N, 3, H, W)``, uint8 or float in [0, 1].
        masks: ``(N, 1, H, W)`` foreground masks in [0, 1], or None (background only).
        forward: ``(N - 1, H, W, 2)`` forward flow in pixels.
        forward_valid: ``(N - 1, H, W)`` bool, forward-backward consistent vectors.
        config: sizes; its texture sides are replaced by ones that follow the clip.
        texel_density: texels per frame pixel at the finest scale the clip shows.
        texture_limits: (smallest, largest) texture side.
        canvas_margin: room left around what the frames show, relative.

    Returns:
        The atlas (CPU, float32).
    """
    n, _, height, width = frames.shape
    layers = config.layers if masks is not None else 1
    normaliser = _normaliser(width, height)
    inverse_normaliser = np.linalg.inv(normaliser)
    flow = forward.numpy()
    valid = forward_valid.numpy()
    if masks is not None:
        mask_np = masks[:, 0].numpy() > 0.5
        kernel = np.ones((7, 7), np.uint8)
        near_object = np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in mask_np])
        inside_object = np.stack([cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 for m in mask_np])
    else:
        mask_np = np.zeros((n, height, width), bool)
        near_object = inside_object = mask_np

    def to_normalised(matrix: np.ndarray) -> np.ndarray:
        return normaliser @ matrix @ inverse_normaliser

    background_steps = [pairwise_motion(flow[t], valid[t] & ~near_object[t], "homography") for t in range(n - 1)]
    background_maps = [to_normalised(m) for m in chain_to_reference(background_steps, n // 2)]
    areas = mask_np.reshape(n, -1).sum(axis=1)
    foreground_reference = int(areas.argmax())
    foreground_steps = [pairwise_motion(flow[t], valid[t] & inside_object[t], "similarity") if layers == 2 else None
                        for t in range(n - 1)]
    foreground_maps = [to_normalised(m) for m in chain_to_reference(foreground_steps, foreground_reference)]

    # canvases: what the frames show of each layer, in canonical coordinates
    half_side = max(width, height) / 2.0
    border = np.concatenate([np.stack(np.meshgrid(np.linspace(0, width - 1, 9), [0, height - 1]), -1).reshape(-1, 2),
                             np.stack(np.meshgrid([0, width - 1], np.linspace(0, height - 1, 9)), -1).reshape(-1, 2)])
    border = border / half_side - 1
    background_points = np.concatenate([_apply(m, border) for m in background_maps])
    background_canvas = _canvas(background_points, canvas_margin)
    foreground_points = []
    for t in range(n):
        ys, xs = np.nonzero(mask_np[t])
        if len(xs):
            foreground_points.append(_apply(foreground_maps[t], np.stack((xs, ys), 1) / half_side - 1))
    foreground_canvas = (_canvas(np.concatenate(foreground_points), canvas_margin) if foreground_points
                         else (-1.0, -1.0, 2.0))

    config = GridAtlasConfig(**{**config.to_dict(), "layers": layers})
    config.background_texture = _texture_side(background_maps, background_canvas[2], width, height, texel_density,
                                               texture_limits)
    config.foreground_texture = (_texture_side(foreground_maps, foreground_canvas[2], width, height, texel_density,
                                               texture_limits) if layers == 2 else texture_limits[0])
    atlas = GridAtlas(config)
    with torch.no_grad():
        atlas.background_transform.copy_(torch.from_numpy(np.stack(background_maps)).float())
        atlas.foreground_transform.copy_(torch.from_numpy(np.stack(foreground_maps)[:, :2]).float())
        atlas.background_canvas.copy_(torch.tensor(background_canvas))
        atlas.foreground_canvas.copy_(torch.tensor(foreground_canvas))
        texture = _splat_frames(atlas, lambda xyt: atlas.background_uv(xyt) + 1.0, frames,
                                ~torch.from_numpy(near_object), config.background_texture)
        atlas.background_texture.copy_(_logit(texture)[None])
        if layers == 2:
            texture = _splat_frames(atlas, atlas.foreground_uv, frames, torch.from_numpy(inside_object),
                                    config.foreground_texture)
            atlas.foreground_texture.copy_(_logit(texture)[None])
            target = F.interpolate(masks.float(), size=config.alpha_shape()[1:], mode="area")[:, 0]
            atlas.alpha_logits.copy_(_logit(target, 0.05)[None, None])
    return atlas
