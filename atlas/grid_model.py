"""Our fast layered atlas: explicit camera and object motion, dense textures and grids.

NLA explains a video with four coordinate MLPs that take hours to fit. Most of what those MLPs
learn is simple: the background moves with the camera (a homography per frame when the scene is
far or flat), the foreground object moves, turns and scales (a similarity or affine map per
frame), and each atlas is an image. :class:`GridAtlas` writes that down directly and learns only
the rest:

- **mappings**: per frame, a 3 x 3 homography (background) or a 2 x 3 affine map (foreground)
  from the frame's normalised pixel coordinates to a canonical plane, plus a smooth residual
  offset read from a coarse ``(frames, rows, columns)`` grid (parallax, non-rigid motion); the
  canonical plane is scaled into the layer's uv square ((0, 1)^2 foreground, (-1, 0)^2
  background);
- **atlas colour**: one dense texture per layer, sampled bilinearly (a direct texture, no
  network: one texel per frame pixel at the finest scale the clip shows);
- **alpha**: a dense ``(frames, H / s, W / s)`` grid of logits, sampled trilinearly.

All of these are evaluated with ``grid_sample`` and small matrix products, so one fitting
iteration on tens of thousands of pixels costs milliseconds on a CPU, and the per-frame maps are
initialised from optical flow (:mod:`atlas.fitting.initialise`) so fitting starts close to the
answer. Coordinates and value ranges follow :mod:`atlas.model`, so the editor treats a
GridAtlas exactly like an NLA.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .layers import Layer
from .model import LayeredAtlas

__all__ = ["GridAtlas", "GridAtlasConfig"]

# uv of a layer stays this far inside its unit square, so foreground and background never swap
_UV_MARGIN = 1e-4


@dataclass
class GridAtlasConfig:
    """Sizes of a :class:`GridAtlas` (everything its state dict needs to be rebuilt).

    Attributes:
        width, height, num_frames: the video's W, H and N.
        layers: 2 (foreground + background) or 1 (background only: alpha is 0.001 everywhere).
        foreground_texture, background_texture: side of each square texture, texels.
        residual_cells: residual grid size along the frame's longer side (the other side in
            proportion); 0 disables the residuals.
        residual_frames: residual grid size along time.
        residual_range: the largest residual offset, in uv units (tanh-bounded).
        alpha_downscale: the alpha grid has ceil(H / s) x ceil(W / s) cells per frame.
    """

    width: int
    height: int
    num_frames: int
    layers: int = 2
    foreground_texture: int = 256
    background_texture: int = 512
    residual_cells: int = 16
    residual_frames: int = 8
    residual_range: float = 0.05
    alpha_downscale: int = 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GridAtlasConfig:
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GridAtlasConfig keys: {', '.join(unknown)}")
        return cls(**values)

    def residual_shape(self) -> tuple[int, int, int]:
        """(frames, rows, columns) of the residual grids."""
        longer = max(self.width, self.height)
        rows = max(2, round(self.residual_cells * self.height / longer))
        columns = max(2, round(self.residual_cells * self.width / longer))
        return max(1, min(self.residual_frames, self.num_frames)), rows, columns

    def alpha_shape(self) -> tuple[int, int, int]:
        """(frames, rows, columns) of the alpha grid."""
        scale = max(1, self.alpha_downscale)
        return self.num_frames, -(-self.height // scale), -(-self.width // scale)


def _sample_texture(texture: torch.Tensor, grid_xy: torch.Tensor) -> torch.Tensor:
    """``(1, C, R, R)`` texture at ``(P, 2)`` grid coordinates in [-1, 1] -> ``(P, C)`` (bilinear)."""
    samples = F.grid_sample(texture, grid_xy.view(1, 1, -1, 2), mode="bilinear", padding_mode="border",
                            align_corners=False)
    return samples[0, :, 0].t()


def _sample_volume(volume: torch.Tensor, grid_xyt: torch.Tensor) -> torch.Tensor:
    """``(1, C, T, h, w)`` volume at ``(P, 3)`` grid coordinates (x, y, t) in [-1, 1] -> ``(P, C)`` (trilinear)."""
    samples = F.grid_sample(volume, grid_xyt.view(1, 1, 1, -1, 3), mode="bilinear", padding_mode="border",
                            align_corners=False)
    return samples[0, :, 0, 0].t()


class GridAtlas(LayeredAtlas):
    """Layered atlas with explicit per-frame motion, residual grids, textures and an alpha grid.

    Parameters (all learnt while fitting; see the module docstring for their roles):
        ``background_transform`` ``(N, 3, 3)``, ``foreground_transform`` ``(N, 2, 3)``: per-frame
        maps from normalised frame coordinates to each layer's canonical plane;
        ``background_residual`` / ``foreground_residual`` ``(1, 2, T_r, h_r, w_r)`` (pre-tanh);
        ``background_texture`` / ``foreground_texture`` ``(1, 3, R, R)`` logits;
        ``alpha_logits`` ``(1, 1, N, h_a, w_a)``.
    Buffers: ``background_canvas`` / ``foreground_canvas`` ``(3,)``: (left, top, side) of the
    canonical square that fills the layer's uv square.

    Args:
        config: the sizes.
    """

    def __init__(self, config: GridAtlasConfig) -> None:
        super().__init__()
        self.config = config
        n = config.num_frames
        residual = config.residual_shape()
        self.background_transform = torch.nn.Parameter(torch.eye(3).repeat(n, 1, 1))
        self.foreground_transform = torch.nn.Parameter(torch.eye(3)[:2].repeat(n, 1, 1))
        self.background_residual = torch.nn.Parameter(torch.zeros(1, 2, *residual))
        self.foreground_residual = torch.nn.Parameter(torch.zeros(1, 2, *residual))
        self.background_texture = torch.nn.Parameter(torch.zeros(1, 3, config.background_texture,
                                                                 config.background_texture))
        self.foreground_texture = torch.nn.Parameter(torch.zeros(1, 3, config.foreground_texture,
                                                                 config.foreground_texture))
        self.alpha_logits = torch.nn.Parameter(torch.zeros(1, 1, *config.alpha_shape()))
        self.register_buffer("background_canvas", torch.tensor([-1.0, -1.0, 2.0]))
        self.register_buffer("foreground_canvas", torch.tensor([-1.0, -1.0, 2.0]))
        #: fitting iterations behind these values (0 for a fresh model)
        self.iteration: int = 0

    # ------------------------------------------------------------------ per-frame maps
    def _per_pixel(self, transforms: torch.Tensor, t_normalised: torch.Tensor) -> torch.Tensor:
        """``(N, r, 3)`` per-frame matrices -> ``(P, r, 3)`` each pixel's, blended linearly between
        the two frames around a fractional t = (tn + 1) N / 2. A ``(P, N)`` weight matrix times the
        flattened transforms: a dense product whose backward is one more product (gathering per
        pixel and scattering the gradients back costs ~10x more on a CPU)."""
        t = ((t_normalised.detach() + 1.0) * (self.num_frames / 2.0)).clamp(0, self.num_frames - 1)
        lower = t.floor().long().clamp(max=self.num_frames - 1)
        upper = (lower + 1).clamp(max=self.num_frames - 1)
        weight = (t - lower.to(t.dtype)).unsqueeze(1)
        blend = torch.zeros(t.shape[0], self.num_frames, device=t.device, dtype=transforms.dtype)
        blend.scatter_add_(1, lower.unsqueeze(1), (1 - weight).to(blend.dtype))
        blend.scatter_add_(1, upper.unsqueeze(1), weight.to(blend.dtype))
        return (blend @ transforms.reshape(self.num_frames, -1)).view(t.shape[0], *transforms.shape[1:])

    def _volume_grid(self, xyt: torch.Tensor) -> torch.Tensor:
        """Normalised (x, y, t) -> grid_sample coordinates over the frame rectangle and the clip."""
        half_side = max(self.width, self.height) / 2.0
        x = (xyt[:, 0] + 1.0) * half_side
        y = (xyt[:, 1] + 1.0) * half_side
        t = (xyt[:, 2] + 1.0) * (self.num_frames / 2.0)
        return torch.stack(((x + 0.5) / self.width * 2 - 1, (y + 0.5) / self.height * 2 - 1,
                            (t + 0.5) / self.num_frames * 2 - 1), dim=1)

    # ------------------------------------------------------------------ mappings
    def background_canonical(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 2)`` canonical background coordinates
        (the per-frame homography; at a fractional t the two frames' matrices are blended)."""
        matrix = self._per_pixel(self.background_transform, xyt[:, 2])
        mapped = matrix[:, :, 0] * xyt[:, :1] + matrix[:, :, 1] * xyt[:, 1:2] + matrix[:, :, 2]
        # keep the projective divisor away from 0 (a homography that folds the frame is wrong anyway)
        return mapped[:, :2] / mapped[:, 2:].clamp_min(1e-3)

    def foreground_canonical(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 2)`` canonical foreground coordinates (per-frame affine)."""
        matrix = self._per_pixel(self.foreground_transform, xyt[:, 2])
        return matrix[:, :, 0] * xyt[:, :1] + matrix[:, :, 1] * xyt[:, 1:2] + matrix[:, :, 2]

    def _to_uv(self, canonical: torch.Tensor, canvas: torch.Tensor, residual: torch.Tensor,
               xyt: torch.Tensor, offset: float) -> torch.Tensor:
        uv = (canonical - canvas[:2]) / canvas[2]
        if self.config.residual_cells > 0:
            uv = uv + self.config.residual_range * torch.tanh(_sample_volume(residual, self._volume_grid(xyt)))
        return uv.clamp(_UV_MARGIN, 1 - _UV_MARGIN) + offset

    def foreground_uv(self, xyt: torch.Tensor) -> torch.Tensor:
        return self._to_uv(self.foreground_canonical(xyt), self.foreground_canvas, self.foreground_residual, xyt, 0.0)

    def background_uv(self, xyt: torch.Tensor) -> torch.Tensor:
        return self._to_uv(self.background_canonical(xyt), self.background_canvas, self.background_residual, xyt,
                           -1.0)

    def pixels_per_uv(self, layer: str) -> float:
        """The canvas side in canonical units (the reference frame's normalised coordinates) x L / 2."""
        canvas = self.foreground_canvas if layer == Layer.foreground else self.background_canvas
        return float(canvas[2]) * max(self.width, self.height) / 2.0

    def smoothness(self) -> torch.Tensor:
        """Total variation of the residual grids and of the alpha logits (mean absolute difference
        of neighbouring cells along every axis): the motion residuals and the matte stay smooth."""

        def total_variation(volume: torch.Tensor) -> torch.Tensor:
            terms = [(volume.diff(dim=axis)).abs().mean() for axis in (2, 3, 4) if volume.shape[axis] > 1]
            return sum(terms) if terms else volume.sum() * 0

        value = total_variation(self.background_residual) + total_variation(self.foreground_residual)
        if self.config.layers == 2:
            value = value + 0.1 * total_variation(self.alpha_logits)
        return value

    # ------------------------------------------------------------------ alpha and colour
    def alpha_values(self, xyt: torch.Tensor) -> torch.Tensor:
        if self.config.layers == 1:
            return torch.full_like(xyt[:, :1], 0.001)
        logits = _sample_volume(self.alpha_logits, self._volume_grid(xyt))
        return 0.99 * torch.sigmoid(logits) + 0.001

    def layer_rgb(self, uv: torch.Tensor, foreground: bool) -> torch.Tensor:
        """``(P, 2)`` uv of one layer -> ``(P, 3)`` its texture's colour in [0, 1]."""
        texture = self.foreground_texture if foreground else self.background_texture
        offset = 0.0 if foreground else 1.0
        return torch.sigmoid(_sample_texture(texture, 2.0 * (uv + offset) - 1.0))

    def atlas_rgb(self, uv: torch.Tensor) -> torch.Tensor:
        foreground = uv[:, 0] >= 0
        rgb = torch.empty(uv.shape[0], 3, device=uv.device, dtype=uv.dtype)
        if bool(foreground.any()):
            rgb[foreground] = self.layer_rgb(uv[foreground], True)
        if bool((~foreground).any()):
            rgb[~foreground] = self.layer_rgb(uv[~foreground], False)
        return rgb
