"""The Neural Layered Atlas model: per-pixel queries, whole-video maps and baked atlases.

Coordinates (docs/atlas.md, "Coordinates"): a pixel at column x, row y of frame t is normalised to
``(x / (L/2) - 1, y / (L/2) - 1, t / (N/2) - 1)`` with ``L = max(W, H)`` and N the atlas's frame
count. A mapping network gives ``o`` in (-1, 1); the foreground uv is ``0.5 o + 0.5`` in (0, 1)^2
and the background uv ``0.5 o - 0.5`` in (-1, 0)^2, so both layers share one atlas network that
gives ``rgb = (tanh + 1) / 2`` (the network itself ends in tanh). Alpha is
``0.99 (o + 1) / 2 + 0.001`` in [0.001, 0.991]. A pixel is reconstructed as
``alpha * rgb_foreground + (1 - alpha) * rgb_background``.

The uv components are (u, v) = (horizontal, vertical): u goes with the column x, v with the row y.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .chunking import DEFAULT_CHUNK_SIZE, chunk_ranges, progress_bar
from .config import ATLAS_SKIP_LAYERS, AtlasConfig
from .coordinates import PixelBox
from .layers import Layer, layer_uv_offset
from .networks import IMLP

# the checkpoint format lives in atlas.nla_format; its names stay importable from here
from .nla_format import (
    CHECKPOINT_FILENAME,
    CONFIG_FILENAME,
    NLA_STATE_DICT_KEYS,
    AtlasCheckpointError,
    read_nla_checkpoint,
    save_nla_checkpoint,
)

__all__ = [
    "AtlasCheckpointError",
    "AtlasMaps",
    "AtlasQuery",
    "CompactAtlasMaps",
    "LayeredAtlas",
    "CHECKPOINT_FILENAME",
    "CONFIG_FILENAME",
    "Layer",
    "NLA_STATE_DICT_KEYS",
    "NeuralAtlas",
    "layer_uv_offset",
    "save_nla_checkpoint",
]

@dataclass
class AtlasQuery:
    """Per-pixel outputs of a :class:`NeuralAtlas`.

    Attributes:
        uv_foreground: ``(P, 2)`` foreground atlas coordinates in (0, 1).
        uv_background: ``(P, 2)`` background atlas coordinates in (-1, 0).
        alpha: ``(P, 1)`` foreground opacity in [0.001, 0.991].
        rgb_foreground: ``(P, 3)`` foreground atlas colour in [0, 1].
        rgb_background: ``(P, 3)`` background atlas colour in [0, 1].
    """

    uv_foreground: torch.Tensor
    uv_background: torch.Tensor
    alpha: torch.Tensor
    rgb_foreground: torch.Tensor
    rgb_background: torch.Tensor

    @property
    def reconstruction(self) -> torch.Tensor:
        """``(P, 3)`` pixel colour ``alpha * rgb_foreground + (1 - alpha) * rgb_background``."""
        return self.alpha * self.rgb_foreground + (1.0 - self.alpha) * self.rgb_background


class _FrameMaps:
    """What both forms of per-frame maps share: the geometry, read from ``self.alpha`` ``(N, 1, H, W)``,
    and the frame selections :meth:`frames` accepts."""

    alpha: torch.Tensor

    @property
    def num_frames(self) -> int:
        """N."""
        return self.alpha.shape[0]

    @property
    def height(self) -> int:
        """H."""
        return self.alpha.shape[2]

    @property
    def width(self) -> int:
        """W."""
        return self.alpha.shape[3]

    @staticmethod
    def _frame_index(indices: list[int] | range | slice | torch.Tensor) -> list[int] | slice | torch.Tensor:
        """A range as a list (tensors index with lists, slices and tensors, not ranges)."""
        return list(indices) if isinstance(indices, range) else indices


@dataclass
class AtlasMaps(_FrameMaps):
    """Per-frame uv maps and alpha of a whole video.

    Attributes:
        uv_foreground: ``(N, H, W, 2)`` foreground uv in (0, 1), last axis (u, v); None when only
            the background's were computed (``precompute_maps(layers=...)``).
        uv_background: ``(N, H, W, 2)`` background uv in (-1, 0); None when only the foreground's
            were computed.
        alpha: ``(N, 1, H, W)`` NLA alpha in [0.001, 0.991].
    """

    uv_foreground: torch.Tensor | None
    uv_background: torch.Tensor | None
    alpha: torch.Tensor

    def uv(self, layer: Layer) -> torch.Tensor:
        """``(N, H, W, 2)`` uv map of ``layer``."""
        layer_uv_offset(layer)
        uv = self.uv_foreground if layer == Layer.foreground else self.uv_background
        if uv is None:
            raise ValueError(f"these maps hold no {layer} uv (precompute_maps was asked for the other layer only)")
        return uv

    def to(self, device: torch.device | str) -> AtlasMaps:
        """Copy on ``device``."""
        return AtlasMaps(*(None if part is None else part.to(device)
                           for part in (self.uv_foreground, self.uv_background, self.alpha)))

    def frames(self, indices: list[int] | range | slice | torch.Tensor) -> AtlasMaps:
        """Maps of a subset of frames, in the order given (or a slice)."""
        indices = self._frame_index(indices)
        return AtlasMaps(*(None if part is None else part[indices]
                           for part in (self.uv_foreground, self.uv_background, self.alpha)))


#: uv codes: 16 bits over each layer's unit square (0.5 / 65535 of the atlas side at most off:
#: 0.015 atlas pixels at R = 2000)
_UV_CODE_LEVELS = 65535
_UV_CODE_ZERO = 32768


class CompactAtlasMaps(_FrameMaps):
    """:class:`AtlasMaps` held in 6 bytes a pixel instead of 12 (one layer): each uv coordinate as a
    16-bit code over its layer's unit square ((0, 1) foreground, (-1, 0) background: every atlas
    keeps its uv there), the alpha in float16 (under 2.5e-4 off, a sixteenth of an 8-bit level).
    An edit holds the maps of every frame for its whole run (1.1 GiB in float32 for 300 frames of
    768 x 432, 0.56 GiB compact) but only ever reads a few frames at a time: :meth:`frames`
    decodes those to float32 :class:`AtlasMaps`.
    """

    def __init__(self, uv_codes: dict[Layer, torch.Tensor], alpha: torch.Tensor):
        self.uv_codes = uv_codes  # layer -> (N, H, W, 2) int16
        self.alpha = alpha  # (N, 1, H, W) float16

    @classmethod
    def from_maps(cls, maps: AtlasMaps, chunk_frames: int = 16) -> CompactAtlasMaps:
        """Encode float maps, a few frames at a time (no second float copy of the whole clip)."""
        uv_codes = {}
        for layer in Layer:
            uv = maps.uv_foreground if layer == Layer.foreground else maps.uv_background
            if uv is None:
                continue
            codes = torch.empty(uv.shape, dtype=torch.int16, device=uv.device)
            offset = layer_uv_offset(layer)
            for start in range(0, uv.shape[0], chunk_frames):
                unit = (uv[start:start + chunk_frames] - offset).clamp(0, 1)
                code = (unit * _UV_CODE_LEVELS).round_().sub_(_UV_CODE_ZERO)
                codes[start:start + chunk_frames] = code.to(torch.int16)
            uv_codes[layer] = codes
        return cls(uv_codes, maps.alpha.to(torch.float16))

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(codes.nbytes for codes in self.uv_codes.values()) + self.alpha.nbytes

    def frames(self, indices: list[int] | range | slice | torch.Tensor) -> AtlasMaps:
        """Float32 :class:`AtlasMaps` of those frames (indices in the order given, or a slice)."""
        indices = self._frame_index(indices)

        def decode(layer: Layer) -> torch.Tensor | None:
            codes = self.uv_codes.get(layer)
            if codes is None:
                return None
            return (codes[indices].float() + _UV_CODE_ZERO) / _UV_CODE_LEVELS + layer_uv_offset(layer)

        return AtlasMaps(decode(Layer.foreground), decode(Layer.background), self.alpha[indices].float())

    def to(self, device: torch.device | str) -> CompactAtlasMaps:
        """Copy on ``device``."""
        return CompactAtlasMaps({layer: codes.to(device) for layer, codes in self.uv_codes.items()},
                                self.alpha.to(device))


class LayeredAtlas(nn.Module, ABC):
    """What every layered atlas offers, whatever represents it (NLA's MLPs in :class:`NeuralAtlas`,
    our grids and textures in :class:`atlas.grid_model.GridAtlas`): per-pixel queries of the
    foreground / background uv, the alpha and the shared atlas colour, and whole-video passes
    (uv maps, reconstructions, baked atlas images) built on them.

    A subclass sets ``self.config`` (anything with ``width``, ``height`` and ``num_frames``: the
    frame geometry) and provides the per-pixel functions ``foreground_uv``, ``background_uv``,
    ``alpha_values`` and ``atlas_rgb`` with the conventions of the module docstring.
    """

    # ------------------------------------------------------------------ geometry
    @property
    def num_frames(self) -> int:
        """N, the frame count used for the time normalisation."""
        return self.config.num_frames

    @property
    def width(self) -> int:
        """W, frame width in pixels."""
        return self.config.width

    @property
    def height(self) -> int:
        """H, frame height in pixels."""
        return self.config.height

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""
        return next(self.parameters()).dtype

    def normalize_coordinates(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates -> network input.

        Args:
            x: ``(P,)`` column in [0, W - 1] (fractional values allowed).
            y: ``(P,)`` row in [0, H - 1].
            t: ``(P,)`` frame index in [0, N - 1].

        Returns:
            ``(P, 3)`` ``(x / (L/2) - 1, y / (L/2) - 1, t / (N/2) - 1)`` on the parameters' device
            and dtype, L = max(W, H).
        """
        half_side = max(self.width, self.height) / 2.0
        half_frames = self.num_frames / 2.0
        device, dtype = self.device, self.dtype
        x = torch.as_tensor(x).to(device=device, dtype=dtype)
        y = torch.as_tensor(y).to(device=device, dtype=dtype)
        t = torch.as_tensor(t).to(device=device, dtype=dtype)
        if not (x.shape == y.shape == t.shape) or x.dim() != 1:
            raise ValueError(
                f"x, y, t must be (P,) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}, {tuple(t.shape)}"
            )
        return torch.stack((x / half_side - 1.0, y / half_side - 1.0, t / half_frames - 1.0), dim=1)

    # ------------------------------------------------------------------ per-pixel functions
    @abstractmethod
    def foreground_uv(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 2)`` foreground uv in (0, 1)."""

    @abstractmethod
    def background_uv(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 2)`` background uv in (-1, 0)."""

    @abstractmethod
    def alpha_values(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 1)`` alpha in [0.001, 0.991]."""

    @abstractmethod
    def atlas_rgb(self, uv: torch.Tensor) -> torch.Tensor:
        """``(P, 2)`` atlas uv (foreground in (0, 1), background in (-1, 0)) -> ``(P, 3)`` rgb in [0, 1]."""

    @abstractmethod
    def pixels_per_uv(self, layer: Layer) -> float:
        """Roughly how many frame pixels one uv unit of ``layer`` spans (to measure uv errors in pixels)."""

    def query(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> AtlasQuery:
        """Query every network at pixel coordinates (differentiable; wrap in no_grad if needed).

        Args:
            x: ``(P,)`` column, y: ``(P,)`` row, t: ``(P,)`` frame index (floats; pixel units).

        Returns:
            :class:`AtlasQuery` with ``(P, 2)`` uvs, ``(P, 1)`` alpha and ``(P, 3)`` colours.
        """
        xyt = self.normalize_coordinates(x, y, t)
        uv_foreground = self.foreground_uv(xyt)
        uv_background = self.background_uv(xyt)
        return AtlasQuery(
            uv_foreground=uv_foreground,
            uv_background=uv_background,
            alpha=self.alpha_values(xyt),
            rgb_foreground=self.atlas_rgb(uv_foreground),
            rgb_background=self.atlas_rgb(uv_background),
        )

    # ------------------------------------------------------------------ whole-video passes
    def _pixel_chunks(
        self, device: torch.device, chunk_size: int, progress: bool, description: str
    ) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield (start, end, xyt (end - start, 3)) over all N * H * W pixels, frame-major."""
        height, width = self.height, self.width
        total = self.num_frames * height * width
        bar = progress_bar(total, progress, description)
        try:
            for start, end in chunk_ranges(total, chunk_size):
                index = torch.arange(start, end, device=device)
                t = torch.div(index, height * width, rounding_mode="floor")
                within = index - t * (height * width)
                y = torch.div(within, width, rounding_mode="floor")
                x = within - y * width
                yield start, end, self.normalize_coordinates(x, y, t)
                if bar is not None:
                    bar.update(end - start)
        finally:
            if bar is not None:
                bar.close()

    def _resolve_device(self, device: torch.device | str | None) -> torch.device:
        if device is None:
            return self.device
        device = torch.device(device)
        if device.type != self.device.type or (
            device.index is not None and self.device.index is not None and device.index != self.device.index
        ):
            raise ValueError(f"the atlas's parameters are on {self.device}, not on {device}; move it with .to()")
        return device

    def precompute_maps(
        self,
        device: torch.device | str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: bool = False,
        layers: Sequence[Layer] = tuple(Layer),
    ) -> AtlasMaps:
        """Foreground / background uv and alpha of every pixel of every frame (no gradient).

        Args:
            device: where coordinates and results are created; must be the parameters' device
                (None: the parameters' device).
            chunk_size: pixels per network evaluation.
            progress: show a tqdm progress bar.
            layers: whose uv maps to compute (default both). An edit of one layer needs only its
                own: 8 bytes a pixel less, 0.8 GB for 300 frames at 768 x 432.

        Returns:
            :class:`AtlasMaps` with ``(N, H, W, 2)`` uv maps (None for a layer not asked for) and
            ``(N, 1, H, W)`` alpha.
        """
        device = self._resolve_device(device)
        n, h, w = self.num_frames, self.height, self.width
        dtype = self.dtype
        wanted = {Layer(layer) for layer in layers}
        uv = {layer: torch.empty(n * h * w, 2, device=device, dtype=dtype) for layer in Layer if layer in wanted}
        alpha = torch.empty(n * h * w, device=device, dtype=dtype)
        with torch.no_grad():
            for start, end, xyt in self._pixel_chunks(device, chunk_size, progress, "atlas uv maps"):
                if Layer.foreground in uv:
                    uv[Layer.foreground][start:end] = self.foreground_uv(xyt)
                if Layer.background in uv:
                    uv[Layer.background][start:end] = self.background_uv(xyt)
                alpha[start:end] = self.alpha_values(xyt)[:, 0]
        return AtlasMaps(
            uv_foreground=uv[Layer.foreground].view(n, h, w, 2) if Layer.foreground in uv else None,
            uv_background=uv[Layer.background].view(n, h, w, 2) if Layer.background in uv else None,
            alpha=alpha.view(n, 1, h, w),
        )

    def reconstruct_frames(
        self,
        device: torch.device | str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: bool = False,
    ) -> torch.Tensor:
        """Direct per-pixel reconstruction of the whole video (no gradient).

        Args:
            device: as in :meth:`precompute_maps`.
            chunk_size: pixels per network evaluation.
            progress: show a tqdm progress bar.

        Returns:
            ``(N, 3, H, W)`` frames in [0, 1].
        """
        device = self._resolve_device(device)
        n, h, w = self.num_frames, self.height, self.width
        frames = torch.empty(n * h * w, 3, device=device, dtype=self.dtype)
        with torch.no_grad():
            for start, end, xyt in self._pixel_chunks(device, chunk_size, progress, "atlas reconstruction"):
                frames[start:end] = self._reconstruction(xyt)
        return frames.view(n, h, w, 3).permute(0, 3, 1, 2).contiguous()

    def bake(
        self,
        layer: Layer,
        resolution: int = 2000,
        device: torch.device | str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        box: PixelBox | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Render one layer's atlas to an image (no gradient).

        Pixel (row r, column c) holds ``self.atlas_rgb((c / R + s, r / R + s))``, s = 0 for the
        foreground and -1 for the background; sample it back with :func:`atlas.render.sample_atlas` /
        :func:`atlas.coordinates.uv_to_grid` (``align_corners=False``, half-pixel shift included).

        Args:
            layer: "foreground" or "background".
            resolution: R, side of the full atlas image.
            device: where pixels are evaluated; the parameters' device (None: that device).
            chunk_size: pixels per network evaluation.
            box: bake only this region of the R x R atlas (atlas pixels).
            progress: show a tqdm progress bar.

        Returns:
            ``(3, R, R)`` image in [0, 1], or ``(3, box.height, box.width)`` with a box.
        """
        offset = layer_uv_offset(layer)
        device = self._resolve_device(device)
        if box is None:
            box = PixelBox(0, 0, resolution, resolution)
        elif box.left < 0 or box.top < 0 or box.right > resolution or box.bottom > resolution:
            raise ValueError(f"box {box} is not inside the {resolution} x {resolution} atlas")
        total = box.width * box.height
        image = torch.empty(total, 3, device=device, dtype=self.dtype)
        bar = progress_bar(total, progress, f"baking {layer} atlas")
        try:
            with torch.no_grad():
                for start, end in chunk_ranges(total, chunk_size):
                    index = torch.arange(start, end, device=device)
                    row = torch.div(index, box.width, rounding_mode="floor")
                    column = index - row * box.width
                    uv = torch.stack((column + box.left, row + box.top), dim=1).to(self.dtype) / resolution + offset
                    image[start:end] = self.atlas_rgb(uv)
                    if bar is not None:
                        bar.update(end - start)
        finally:
            if bar is not None:
                bar.close()
        return image.view(box.height, box.width, 3).permute(2, 0, 1).contiguous()

    def frame_pixels(self, frame_indices: Sequence[int]) -> torch.Tensor:
        """``(len(frame_indices) * H * W, 3)`` normalised (x, y, t) of every pixel of those frames, frame-major."""
        height, width = self.height, self.width
        device = self.device
        t = torch.as_tensor(list(frame_indices), device=device).view(-1, 1, 1).expand(-1, height, width)
        y = torch.arange(height, device=device).view(1, -1, 1).expand_as(t)
        x = torch.arange(width, device=device).view(1, 1, -1).expand_as(t)
        return self.normalize_coordinates(x.reshape(-1), y.reshape(-1), t.reshape(-1))

    def _reconstruction(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 3)`` ``alpha * rgb_fg + (1 - alpha) * rgb_bg``."""
        alpha = self.alpha_values(xyt)
        return (alpha * self.atlas_rgb(self.foreground_uv(xyt))
                + (1.0 - alpha) * self.atlas_rgb(self.background_uv(xyt)))

    def reconstruct(self, frame_indices: Sequence[int], chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
        """``(len(frame_indices), 3, H, W)`` reconstruction of those frames in [0, 1] (no gradient)."""
        xyt = self.frame_pixels(frame_indices)
        out = torch.empty(xyt.shape[0], 3, device=xyt.device, dtype=xyt.dtype)
        with torch.no_grad():
            for start, end in chunk_ranges(xyt.shape[0], chunk_size):
                out[start:end] = self._reconstruction(xyt[start:end])
        return out.view(-1, self.height, self.width, 3).permute(0, 3, 1, 2).contiguous()

    def frame_maps(self, frame_indices: Sequence[int], chunk_size: int = DEFAULT_CHUNK_SIZE) -> AtlasMaps:
        """:class:`AtlasMaps` (both layers' uv and alpha) of those frames only, in the order given (no
        gradient): what ``precompute_maps().frames(frame_indices)`` holds, without the whole clip's."""
        xyt = self.frame_pixels(frame_indices)
        count = xyt.shape[0]
        uv_foreground = torch.empty(count, 2, device=xyt.device, dtype=xyt.dtype)
        uv_background = torch.empty(count, 2, device=xyt.device, dtype=xyt.dtype)
        alpha = torch.empty(count, device=xyt.device, dtype=xyt.dtype)
        with torch.no_grad():
            for start, end in chunk_ranges(count, chunk_size):
                uv_foreground[start:end] = self.foreground_uv(xyt[start:end])
                uv_background[start:end] = self.background_uv(xyt[start:end])
                alpha[start:end] = self.alpha_values(xyt[start:end])[:, 0]
        n, h, w = len(frame_indices), self.height, self.width
        return AtlasMaps(uv_foreground.view(n, h, w, 2), uv_background.view(n, h, w, 2), alpha.view(n, 1, h, w))

    def reconstruct_from_maps(self, maps: AtlasMaps, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
        """``(B, 3, H, W)`` reconstruction of the frames whose uv maps and alpha ``maps`` holds (both
        layers' uv), in [0, 1] (no gradient): what :meth:`reconstruct` gives for those frames, with
        the atlas colour looked up at the given uv instead of evaluating the mappings again (on a
        CPU the mappings of a 768 x 432 frame take seconds)."""
        uv_foreground = maps.uv(Layer.foreground).reshape(-1, 2)
        uv_background = maps.uv(Layer.background).reshape(-1, 2)
        alpha = maps.alpha.permute(0, 2, 3, 1).reshape(-1, 1)
        out = torch.empty(alpha.shape[0], 3, device=alpha.device, dtype=alpha.dtype)
        with torch.no_grad():
            for start, end in chunk_ranges(alpha.shape[0], chunk_size):
                weight = alpha[start:end]
                out[start:end] = (weight * self.atlas_rgb(uv_foreground[start:end])
                                  + (1.0 - weight) * self.atlas_rgb(uv_background[start:end]))
        return out.view(-1, maps.height, maps.width, 3).permute(0, 3, 1, 2).contiguous()

    def alpha(self, frame_indices: Sequence[int], chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
        """``(len(frame_indices), 1, H, W)`` foreground alpha of those frames (no gradient)."""
        xyt = self.frame_pixels(frame_indices)
        out = torch.empty(xyt.shape[0], 1, device=xyt.device, dtype=xyt.dtype)
        with torch.no_grad():
            for start, end in chunk_ranges(xyt.shape[0], chunk_size):
                out[start:end] = self.alpha_values(xyt[start:end])
        return out.view(-1, 1, self.height, self.width)


class NeuralAtlas(LayeredAtlas):
    """A fitted NLA: two mapping networks, the shared atlas network and the alpha network.

    Sub-modules (each an :class:`~atlas.networks.IMLP`): ``foreground_mapping`` (x, y, t) -> o,
    ``background_mapping`` (x, y, t) -> o, ``atlas_network`` uv -> rgb (shared by both layers,
    positional encoding, skips at layers 4 and 7), ``alpha_network`` (x, y, t) -> alpha.
    The module follows the device of its parameters; move it with ``.to(device)``.

    Args:
        config: sizes of the networks and of the video (W, H, N).
    """

    def __init__(self, config: AtlasConfig) -> None:
        super().__init__()
        self.config = config
        self.foreground_mapping = IMLP(
            3,
            2,
            hidden_dim=config.foreground_mapping_width,
            num_layers=config.foreground_mapping_layers,
            num_frequencies=config.foreground_mapping_frequencies if config.foreground_mapping_use_encoding else 0,
        )
        self.background_mapping = IMLP(
            3,
            2,
            hidden_dim=config.background_mapping_width,
            num_layers=config.background_mapping_layers,
            num_frequencies=config.background_mapping_frequencies if config.background_mapping_use_encoding else 0,
        )
        self.atlas_network = IMLP(
            2,
            3,
            hidden_dim=config.atlas_width,
            num_layers=config.atlas_layers,
            num_frequencies=config.atlas_frequencies,
            skip_layers=ATLAS_SKIP_LAYERS,
        )
        self.alpha_network = IMLP(
            3,
            1,
            hidden_dim=config.alpha_width,
            num_layers=config.alpha_layers,
            num_frequencies=config.alpha_frequencies,
        )
        #: training iteration stored in the checkpoint (0 for a fresh model).
        self.iteration: int = 0

    # ------------------------------------------------------------------ networks
    def foreground_uv(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 2)`` foreground uv ``0.5 o + 0.5`` in (0, 1)."""
        return 0.5 * self.foreground_mapping(xyt) + 0.5

    def background_uv(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 2)`` background uv ``0.5 o - 0.5`` in (-1, 0)."""
        return 0.5 * self.background_mapping(xyt) - 0.5

    def alpha_values(self, xyt: torch.Tensor) -> torch.Tensor:
        """``(P, 3)`` normalised (x, y, t) -> ``(P, 1)`` alpha ``0.99 (o + 1) / 2 + 0.001``."""
        return 0.99 * (0.5 * (self.alpha_network(xyt) + 1.0)) + 0.001

    def pixels_per_uv(self, layer: Layer) -> float:
        """NLA's mappings start as uv = 0.5 * scale * (x / (L/2) - 1): L / scale pixels per uv unit."""
        return self.config.larger_side / self.config.uv_mapping_scale

    def atlas_rgb(self, uv: torch.Tensor) -> torch.Tensor:
        """Shared atlas colour.

        Args:
            uv: ``(P, 2)`` atlas coordinates (foreground in (0, 1), background in (-1, 0)).

        Returns:
            ``(P, 3)`` rgb ``(atlas(uv) + 1) / 2`` in [0, 1].
        """
        return 0.5 * (self.atlas_network(uv) + 1.0)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_nla_checkpoint(
        cls,
        folder: str | Path,
        device: torch.device | str = "cpu",
        num_frames: int | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> NeuralAtlas:
        """Load a public NLA checkpoint folder.

        The folder holds ``checkpoint`` (a ``torch.save`` dict with ``model_F_mapping1_state_dict``,
        ``model_F_mapping2_state_dict``, ``F_atlas_state_dict``, ``model_F_alpha_state_dict``,
        and usually ``iteration`` and ``optimizer_all_state_dict``) and ``config.json`` (sizes).
        Loading uses ``torch.load(weights_only=True)``.

        Args:
            folder: the checkpoint folder.
            device: where the parameters go.
            num_frames: frame count N overriding ``maximum_number_of_frames`` (NLA uses
                min(maximum_number_of_frames, frames in the video) when it fits).
            width, height: W, H overriding ``resx`` / ``resy``.

        Returns:
            The atlas, on ``device``, in eval mode.

        Raises:
            AtlasCheckpointError: a missing folder, file or key, an unreadable file, or a layer
                whose shape differs from the config; the message names it.
        """
        checkpoint = read_nla_checkpoint(folder, device, num_frames=num_frames, width=width, height=height)
        atlas = cls(checkpoint.config)
        checkpoint.load_into(atlas)
        return atlas.to(device).eval()

