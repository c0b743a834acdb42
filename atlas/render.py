"""Baking atlases to images, sampling them back into frames, and reconstruction quality.

See :mod:`atlas.coordinates` for the pixel-centre convention shared by all functions here.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .coordinates import PixelBox, uv_to_grid
from .layers import Layer

__all__ = ["reconstruction_psnr", "sample_atlas"]


def sample_atlas(
    atlas_image: torch.Tensor,
    uv: torch.Tensor,
    layer: Layer,
    resolution: int | None = None,
    box: PixelBox | None = None,
) -> torch.Tensor:
    """Sample a baked atlas (or a crop of one) bilinearly at per-pixel uvs.

    Coordinates outside the image are clamped to its border (``padding_mode="border"``).
    Differentiable with respect to ``atlas_image`` (and uv).

    Args:
        atlas_image: ``(C, h, w)`` image: the full R x R atlas, or the crop ``box`` of it.
        uv: ``(N, H, W, 2)`` layer uv.
        layer: "foreground" or "background".
        resolution: R of the full atlas; defaults to the image side when no box is given (the
            image must then be square). Required with a box.
        box: atlas-pixel region the image holds (None: the whole atlas).

    Returns:
        ``(N, C, H, W)`` samples.
    """
    if atlas_image.dim() != 3:
        raise ValueError(f"atlas_image must be (C, h, w), got {tuple(atlas_image.shape)}")
    if uv.dim() != 4 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be (N, H, W, 2), got {tuple(uv.shape)}")
    channels, image_height, image_width = atlas_image.shape
    if box is None:
        if resolution is None:
            if image_height != image_width:
                raise ValueError(
                    f"a full atlas image must be square, got {image_height} x {image_width}; pass resolution and box"
                )
            resolution = image_width
        elif (image_height, image_width) != (resolution, resolution):
            raise ValueError(f"atlas image is {image_height} x {image_width}, not the full {resolution} x {resolution}")
    else:
        if resolution is None:
            raise ValueError("resolution (R of the full atlas) is required when sampling a crop")
        if (image_height, image_width) != (box.height, box.width):
            raise ValueError(f"atlas crop is {image_height} x {image_width}, box {box} is {box.height} x {box.width}")
    n, h, w, _ = uv.shape
    grid = uv_to_grid(uv, layer, resolution, box).to(atlas_image.dtype)
    # One grid_sample over all frames stacked vertically: no per-frame copy of the atlas.
    samples = F.grid_sample(
        atlas_image[None], grid.reshape(1, n * h, w, 2), mode="bilinear", padding_mode="border", align_corners=False
    )  # (1, C, N * H, W)
    return samples.view(channels, n, h, w).permute(1, 0, 2, 3).contiguous()


def reconstruction_psnr(frames_pred: torch.Tensor, frames_true: torch.Tensor, max_value: float = 1.0) -> float:
    """PSNR in dB over all pixels of all frames: ``10 log10(max_value^2 / MSE)``.

    Args:
        frames_pred: ``(N, 3, H, W)`` (any shape) prediction, values in [0, max_value].
        frames_true: same shape, reference.
        max_value: peak value (1.0 for [0, 1] images, 255 for bytes).

    Returns:
        PSNR; ``inf`` for identical inputs.
    """
    if frames_pred.shape != frames_true.shape:
        raise ValueError(f"shape mismatch: {tuple(frames_pred.shape)} vs {tuple(frames_true.shape)}")
    mse = torch.mean((frames_pred.double() - frames_true.to(frames_pred.device).double()) ** 2).item()
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(max_value**2 / mse)
