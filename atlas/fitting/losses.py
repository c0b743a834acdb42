"""Loss terms of atlas fitting. Each is a pure function of a :class:`~atlas.model.LayeredAtlas`
(queried through its per-pixel API, so NLA's MLPs and our grids share them) and a batch of
pixels; docs/atlas_fitting.md ("Losses") gives the formulas and NLA's weights.

Coordinates are pixel units: ``x`` columns in [0, W - 1], ``y`` rows in [0, H - 1], ``t``
frame indices; tensors are ``(P,)`` unless said otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..layers import Layer
from ..model import LayeredAtlas

__all__ = [
    "AtlasOutputs",
    "alpha_flow_loss",
    "mask_loss",
    "flow_loss",
    "gradient_loss",
    "layer_rgb",
    "query_pixels",
    "rigidity_loss",
    "sparsity_loss",
]


def layer_rgb(atlas: LayeredAtlas, uv: torch.Tensor, foreground: bool) -> torch.Tensor:
    """``(P, 2)`` uv of one layer -> ``(P, 3)`` colour: the model's per-layer lookup when it has
    one (a GridAtlas samples one texture instead of splitting by layer), else ``atlas_rgb``."""
    lookup = getattr(atlas, "layer_rgb", None)
    return lookup(uv, foreground) if lookup is not None else atlas.atlas_rgb(uv)


class AtlasOutputs:
    """Every per-pixel output at a batch of pixels (uv and colour of both layers, alpha, the
    reconstruction ``alpha * fg + (1 - alpha) * bg``), computed once and shared by the losses."""

    def __init__(self, atlas: LayeredAtlas, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                 foreground: bool = True) -> None:
        self.xyt = atlas.normalize_coordinates(x, y, t)
        self.uv_background = atlas.background_uv(self.xyt)
        self.rgb_background = layer_rgb(atlas, self.uv_background, False)
        if foreground:
            self.uv_foreground = atlas.foreground_uv(self.xyt)
            self.rgb_foreground = layer_rgb(atlas, self.uv_foreground, True)
            self.alpha = atlas.alpha_values(self.xyt)
            self.reconstruction = self.alpha * self.rgb_foreground + (1 - self.alpha) * self.rgb_background
        else:  # background only: alpha is ~0 everywhere
            self.alpha = atlas.alpha_values(self.xyt)
            self.reconstruction = self.rgb_background


def query_pixels(atlas: LayeredAtlas, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                 foreground: bool = True) -> AtlasOutputs:
    """:class:`AtlasOutputs` at pixel coordinates (with gradient)."""
    return AtlasOutputs(atlas, x, y, t, foreground)


def gradient_loss(atlas: LayeredAtlas, outputs: AtlasOutputs, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                  colour_right: torch.Tensor, colour_down: torch.Tensor, colour: torch.Tensor,
                  foreground: bool = True) -> torch.Tensor:
    """NLA's gradient loss: the reconstruction's differences to the right and downward
    neighbours match the frame's, ``mean |d_rec - d_frame|^2`` over both directions.

    ``colour_right`` / ``colour_down``: ``(P, 3)`` frame colours at (x + 1, y) and (x, y + 1).
    """
    right = query_pixels(atlas, x + 1, y, t, foreground).reconstruction
    down = query_pixels(atlas, x, y + 1, t, foreground).reconstruction
    rec = outputs.reconstruction
    return 0.5 * (((right - rec) - (colour_right - colour)).pow(2).sum(1).mean()
                  + ((down - rec) - (colour_down - colour)).pow(2).sum(1).mean())


def flow_loss(atlas: LayeredAtlas, outputs: AtlasOutputs, index: torch.Tensor, x_to: torch.Tensor,
              y_to: torch.Tensor, t_to: torch.Tensor, foreground: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """uv consistency along the flow: a point keeps its atlas coordinates in the frame the flow
    takes it to. ``|uv(x', y', t') - uv(x, y, t)|`` in frame pixels (uv distance x
    ``pixels_per_uv``), weighted by alpha (foreground) / 1 - alpha (background), detached.

    Args:
        outputs: outputs at the batch; ``index`` selects the rows that have a reliable flow.
        x_to, y_to, t_to: where those rows' points are in the other frame.

    Returns:
        (flow loss, the alpha at the destination for :func:`alpha_flow_loss`).
    """
    xyt_to = atlas.normalize_coordinates(x_to, y_to, t_to)
    alpha_here = outputs.alpha[index].detach()
    scale_background = atlas.pixels_per_uv("background")
    loss = ((atlas.background_uv(xyt_to) - outputs.uv_background[index]).norm(dim=1, keepdim=True)
            * scale_background * (1 - alpha_here)).mean()
    if foreground:
        scale_foreground = atlas.pixels_per_uv("foreground")
        loss = loss + ((atlas.foreground_uv(xyt_to) - outputs.uv_foreground[index]).norm(dim=1, keepdim=True)
                       * scale_foreground * alpha_here).mean()
    return loss, atlas.alpha_values(xyt_to)


def alpha_flow_loss(outputs: AtlasOutputs, index: torch.Tensor, alpha_to: torch.Tensor) -> torch.Tensor:
    """Alpha consistency along the flow: ``mean |alpha(x', y', t') - alpha(x, y, t)|``."""
    return (alpha_to - outputs.alpha[index]).abs().mean()


def mask_loss(outputs: AtlasOutputs, mask: torch.Tensor) -> torch.Tensor:
    """BCE of alpha against the (rough) foreground masks, ``(P, 1)`` in [0, 1]."""
    alpha = outputs.alpha.clamp(1e-4, 1 - 1e-4)
    return F.binary_cross_entropy(alpha, mask)


def sparsity_loss(outputs: AtlasOutputs) -> torch.Tensor:
    """NLA's sparsity: the foreground atlas is dark where the pixel is background,
    ``mean |(1 - alpha) rgb_fg|^2``, so the foreground atlas does not copy the background."""
    return ((1 - outputs.alpha.detach()) * outputs.rgb_foreground).pow(2).sum(1).mean()


def rigidity_loss(atlas: LayeredAtlas, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, layer: str,
                  derivative_px: float) -> torch.Tensor:
    """NLA's rigidity: with J the 2 x 2 Jacobian of the layer's uv in pixels (finite differences
    over ``derivative_px``, scaled so a pure rotation gives J^T J = I), penalise
    ``|J^T J|_F + |(J^T J + 0.001 I)^-1|_F`` (smallest at a rotation; grows with stretch or squash).
    """
    mapping = atlas.foreground_uv if layer == Layer.foreground else atlas.background_uv
    scale = atlas.pixels_per_uv(layer) / derivative_px
    here = mapping(atlas.normalize_coordinates(x, y, t))
    across = (mapping(atlas.normalize_coordinates(x + derivative_px, y, t)) - here) * scale
    down = (mapping(atlas.normalize_coordinates(x, y + derivative_px, t)) - here) * scale
    jacobian = torch.stack((across, down), dim=2)  # (P, 2, 2): columns d/dx, d/dy
    gram = jacobian.transpose(1, 2) @ jacobian
    identity = torch.eye(2, device=gram.device, dtype=gram.dtype)
    inverse = torch.linalg.inv(gram + 0.001 * identity)
    return (gram.flatten(1).norm(dim=1) + inverse.flatten(1).norm(dim=1)).mean()
