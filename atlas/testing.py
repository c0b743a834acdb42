"""Tiny, fully known atlases for tests and examples (CPU-cheap, no downloads).

:func:`make_tiny_atlas` builds a small :class:`~atlas.model.NeuralAtlas` with hand-set mapping and
alpha networks and a random (seeded) atlas texture, writes it in the public NLA format and writes
the video it explains, rendered from the atlas itself (so the reconstruction is exact up to 8-bit
rounding).

What the tiny video shows (normalised coordinates, see :mod:`atlas.model`):

- background: ``o = tanh(0.8 x - 0.15 t, 0.8 y)`` (a slow pan);
- foreground: ``o = tanh(0.6 x + 0.25 t, 0.6 y + 0.1 t)``;
- alpha: a round blob centred in the frame, ``o = tanh(6 z)`` with
  ``z = cos(pi (x - x_c)) + cos(pi (y - y_c)) - 1.5 + w cos(pi t)``. With ``foreground_fades``
  (w = 0.5) the blob is absent (alpha < 0.95 everywhere) in the first frames and the last ones and
  present in the middle ones; otherwise (w = 0) it is present, smaller, in every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .config import AtlasConfig
from .model import NeuralAtlas
from .networks import IMLP
from .nla_format import save_nla_checkpoint

__all__ = ["TinyAtlas", "make_tiny_atlas", "write_frames"]


@dataclass
class TinyAtlas:
    """What :func:`make_tiny_atlas` wrote.

    Attributes:
        atlas: the model (CPU, eval mode).
        folder: checkpoint folder (``checkpoint`` + ``config.json``).
        frames_folder: ``folder / "frames"`` holding ``00000.png`` ... (N files).
        frames: ``(N, 3, H, W)`` float frames in [0, 1], exactly the written 8-bit values / 255.
    """

    atlas: NeuralAtlas
    folder: Path
    frames_folder: Path
    frames: torch.Tensor


def _set_relay(network: IMLP, first_weight: torch.Tensor, first_bias: torch.Tensor,
               last_weight: torch.Tensor, last_bias: torch.Tensor) -> None:
    """Make ``network`` compute ``last_weight @ relu(first_weight @ input + first_bias) + last_bias``
    (before its final tanh), relaying the first layer's k units unchanged through the middle
    layers. Needs ``num_layers >= 2`` and ``hidden_dim >= k``; unused weights are zero."""
    units = first_weight.shape[0]
    if network.num_layers < 2 or network.hidden_dim < units:
        raise ValueError(f"tiny networks need >= 2 layers and width >= {units}")
    if network.skip_layers:
        raise ValueError("relay networks have no skip layers")
    with torch.no_grad():
        for layer in network.hidden:
            layer.weight.zero_()
            layer.bias.zero_()
        network.hidden[0].weight[:units] = first_weight
        network.hidden[0].bias[:units] = first_bias
        for layer in network.hidden[1:-1]:
            layer.weight[:units, :units] = torch.eye(units)
        network.hidden[-1].weight[:, :units] = last_weight
        network.hidden[-1].bias[:] = last_bias


def _set_mapping(network: IMLP, x_gain: float, u_time: float, v_time: float) -> None:
    """o = tanh(x_gain x + u_time t, x_gain y + v_time t) for an unencoded (x, y, t) mapping."""
    if network.uses_positional_encoding:
        raise ValueError("tiny mapping networks take raw (x, y, t)")
    first = torch.zeros(6, 3)
    for axis in range(3):  # units 2a, 2a + 1 carry +coordinate, -coordinate
        first[2 * axis, axis] = 1.0
        first[2 * axis + 1, axis] = -1.0
    last = torch.zeros(2, 6)
    last[0, 0], last[0, 1] = x_gain, -x_gain
    last[1, 2], last[1, 3] = x_gain, -x_gain
    last[0, 4], last[0, 5] = u_time, -u_time
    last[1, 4], last[1, 5] = v_time, -v_time
    _set_relay(network, first, torch.zeros(6), last, torch.zeros(2))


def _set_alpha_blob(network: IMLP, x_centre: float, y_centre: float, time_weight: float, sharpness: float) -> None:
    """o = tanh(sharpness * z), z = cos(pi(x - xc)) + cos(pi(y - yc)) - 1.5 + time_weight cos(pi t)."""
    if network.num_frequencies < 1:
        raise ValueError("the tiny alpha network needs positional encoding (>= 1 frequency)")
    # Encoding columns of the k = 0 block for (x, y, t): sin x, sin y, sin t, cos x, cos y, cos t.
    row = torch.zeros(network.encoded_dim)
    row[0] = math.sin(math.pi * x_centre)
    row[3] = math.cos(math.pi * x_centre)
    row[1] = math.sin(math.pi * y_centre)
    row[4] = math.cos(math.pi * y_centre)
    row[5] = time_weight
    first = torch.stack((row, -row))
    first_bias = torch.tensor([-1.5, 1.5])
    last = torch.tensor([[sharpness, -sharpness]])
    _set_relay(network, first, first_bias, last, torch.zeros(1))


def write_frames(frames: torch.Tensor, folder: str | Path) -> list[Path]:
    """Write ``(N, 3, H, W)`` frames in [0, 1] as 8-bit PNGs ``00000.png`` ... into ``folder``.

    Returns:
        The written paths, in frame order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = (frames.detach().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{index:05d}.png"
        Image.fromarray(np.ascontiguousarray(image)).save(path)
        paths.append(path)
    return paths


def make_tiny_atlas(
    folder: str | Path,
    width: int = 24,
    height: int = 16,
    frames: int = 6,
    seed: int = 0,
    hidden_width: int = 16,
    atlas_frequencies: int = 4,
    alpha_frequencies: int = 2,
    foreground_fades: bool = True,
    texture_contrast: float = 3.0,
) -> TinyAtlas:
    """Build, save and render a tiny NLA (see the module docstring for its content).

    The layer counts are NLA's (6, 4, 8, 8, atlas skips at 4 and 7); only widths and encoding
    frequencies are small, so the checkpoint has the public layout.

    Args:
        folder: output folder; gets ``checkpoint``, ``config.json`` and ``frames/``.
        width, height: frame size W x H in pixels.
        frames: frame count N.
        seed: seeds the atlas texture (the global RNG is left untouched).
        hidden_width: width of all four networks (>= 6).
        atlas_frequencies: atlas positional-encoding frequencies (few keep the texture smooth,
            so that a baked atlas of modest resolution reproduces it).
        alpha_frequencies: alpha positional-encoding frequencies (>= 1).
        foreground_fades: blob absent in the first / last frames (True) or present in all.
        texture_contrast: gain on the atlas network's last layer (more colourful texture).

    Returns:
        :class:`TinyAtlas`.
    """
    folder = Path(folder)
    config = AtlasConfig(
        width=width,
        height=height,
        num_frames=frames,
        foreground_mapping_width=hidden_width,
        background_mapping_width=hidden_width,
        atlas_width=hidden_width,
        atlas_frequencies=atlas_frequencies,
        alpha_width=hidden_width,
        alpha_frequencies=alpha_frequencies,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        atlas = NeuralAtlas(config)
    half_side = config.larger_side / 2.0
    _set_mapping(atlas.background_mapping, 0.8, -0.15, 0.0)
    _set_mapping(atlas.foreground_mapping, 0.6, 0.25, 0.1)
    _set_alpha_blob(
        atlas.alpha_network,
        x_centre=(width - 1) / 2.0 / half_side - 1.0,
        y_centre=(height - 1) / 2.0 / half_side - 1.0,
        time_weight=0.5 if foreground_fades else 0.0,
        sharpness=6.0,
    )
    with torch.no_grad():
        last: nn.Linear = atlas.atlas_network.hidden[-1]
        last.weight.mul_(texture_contrast)
        last.bias.mul_(texture_contrast)
    atlas.eval()
    save_nla_checkpoint(atlas, folder)
    frames_folder = folder / "frames"
    rendered = atlas.reconstruct_frames()
    write_frames(rendered, frames_folder)
    written = (rendered.clamp(0, 1) * 255.0).round() / 255.0
    return TinyAtlas(atlas=atlas, folder=folder, frames_folder=frames_folder, frames=written)
