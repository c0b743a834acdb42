"""Compositing the RGBA edit layer over the untouched input."""
from __future__ import annotations

from dataclasses import dataclass

import torch

GREEN_SCREEN = (0.0, 177 / 255, 64 / 255)


@dataclass
class EditLayers:
    """All `(B, C, H, W)` in [0, 1]: edit colour (C=3), alpha (C=1), composite and green screen (C=3)."""

    edit: torch.Tensor
    alpha: torch.Tensor
    composite: torch.Tensor
    greenscreen: torch.Tensor


def green_screen_like(image: torch.Tensor) -> torch.Tensor:
    return torch.tensor(GREEN_SCREEN, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)


def composite_layers(rgba: torch.Tensor, background: torch.Tensor) -> EditLayers:
    """rgba `(B, 4, H, W)` and background `(B, 3, H, W)` -> EditLayers.

    composite = (1 - a) * background + a * edit; greenscreen = a * edit + (1 - a) * green.
    """
    edit, alpha = rgba[:, :3], rgba[:, 3:4]
    composite = (1 - alpha) * background + alpha * edit
    greenscreen = alpha * edit + (1 - alpha) * green_screen_like(edit)
    return EditLayers(edit=edit, alpha=alpha, composite=composite, greenscreen=greenscreen)
