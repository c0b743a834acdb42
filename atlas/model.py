"""The Neural Layered Atlas model, its public checkpoint format and per-pixel queries.

Coordinates (ATLAS.md section 2): a pixel at column x, row y of frame t is normalised to
``(x / (L/2) - 1, y / (L/2) - 1, t / (N/2) - 1)`` with ``L = max(W, H)`` and N the atlas's frame
count. A mapping network gives ``o`` in (-1, 1); the foreground uv is ``0.5 o + 0.5`` in (0, 1)^2
and the background uv ``0.5 o - 0.5`` in (-1, 0)^2, so both layers share one atlas network that
gives ``rgb = (tanh + 1) / 2`` (the network itself ends in tanh). Alpha is
``0.99 (o + 1) / 2 + 0.001`` in [0.001, 0.991]. A pixel is reconstructed as
``alpha * rgb_foreground + (1 - alpha) * rgb_background``.

The uv components are (u, v) = (horizontal, vertical): u goes with the column x, v with the row y.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from text2live_geo.errors import UserError

from .config import ATLAS_SKIP_LAYERS, AtlasConfig
from .networks import IMLP

if TYPE_CHECKING:
    from .coordinates import PixelBox

__all__ = [
    "AtlasCheckpointError",
    "AtlasMaps",
    "AtlasQuery",
    "CHECKPOINT_FILENAME",
    "CONFIG_FILENAME",
    "Layer",
    "NLA_STATE_DICT_KEYS",
    "NeuralAtlas",
    "layer_uv_offset",
    "save_nla_checkpoint",
]

Layer = Literal["foreground", "background"]

CHECKPOINT_FILENAME = "checkpoint"
CONFIG_FILENAME = "config.json"

#: NeuralAtlas sub-module -> key of its state dict in the public checkpoint.
NLA_STATE_DICT_KEYS: dict[str, str] = {
    "foreground_mapping": "model_F_mapping1_state_dict",
    "background_mapping": "model_F_mapping2_state_dict",
    "atlas_network": "F_atlas_state_dict",
    "alpha_network": "model_F_alpha_state_dict",
}

_NETWORK_DESCRIPTIONS = {
    "foreground_mapping": "foreground mapping network",
    "background_mapping": "background mapping network",
    "atlas_network": "atlas network",
    "alpha_network": "alpha network",
}

#: NLA's optimiser parameter-group order: mapping1, mapping2, alpha, atlas.
_OPTIMIZER_GROUP_ORDER = ("foreground_mapping", "background_mapping", "alpha_network", "atlas_network")

DEFAULT_CHUNK_SIZE = 65536


class AtlasCheckpointError(UserError, ValueError):
    """An NLA checkpoint folder is missing a file or key, or does not match its config."""


def layer_uv_offset(layer: Layer) -> float:
    """Offset s of a layer's uv square: 0 for the foreground ((0, 1)^2), -1 for the background.

    Args:
        layer: "foreground" or "background".

    Returns:
        s, so that a layer's uv lies in (s, s + 1)^2 and its atlas pixel coordinates are
        ``(uv - s) * R``.
    """
    if layer == "foreground":
        return 0.0
    if layer == "background":
        return -1.0
    raise ValueError(f"layer must be 'foreground' or 'background', got {layer!r}")


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


@dataclass
class AtlasMaps:
    """Per-frame uv maps and alpha of a whole video.

    Attributes:
        uv_foreground: ``(N, H, W, 2)`` foreground uv in (0, 1), last axis (u, v).
        uv_background: ``(N, H, W, 2)`` background uv in (-1, 0).
        alpha: ``(N, 1, H, W)`` NLA alpha in [0.001, 0.991].
    """

    uv_foreground: torch.Tensor
    uv_background: torch.Tensor
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

    def uv(self, layer: Layer) -> torch.Tensor:
        """``(N, H, W, 2)`` uv map of ``layer``."""
        layer_uv_offset(layer)
        return self.uv_foreground if layer == "foreground" else self.uv_background

    def to(self, device: torch.device | str) -> "AtlasMaps":
        """Copy on ``device``."""
        return AtlasMaps(
            self.uv_foreground.to(device), self.uv_background.to(device), self.alpha.to(device)
        )

    def frames(self, indices: list[int] | torch.Tensor) -> "AtlasMaps":
        """Maps of a subset of frames, in the order given."""
        return AtlasMaps(self.uv_foreground[indices], self.uv_background[indices], self.alpha[indices])


def _progress_bar(total: int, enabled: bool, description: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm  # optional dependency, imported only when asked for

    return tqdm(total=total, desc=description, unit="px", unit_scale=True)


def _chunk_ranges(total: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, total, chunk_size):
        yield start, min(start + chunk_size, total)


class NeuralAtlas(nn.Module):
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
        half_side = self.config.larger_side / 2.0
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

    def atlas_rgb(self, uv: torch.Tensor) -> torch.Tensor:
        """Shared atlas colour.

        Args:
            uv: ``(P, 2)`` atlas coordinates (foreground in (0, 1), background in (-1, 0)).

        Returns:
            ``(P, 3)`` rgb ``(atlas(uv) + 1) / 2`` in [0, 1].
        """
        return 0.5 * (self.atlas_network(uv) + 1.0)

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
        bar = _progress_bar(total, progress, description)
        try:
            for start, end in _chunk_ranges(total, chunk_size):
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
    ) -> AtlasMaps:
        """Foreground / background uv and alpha of every pixel of every frame (no gradient).

        Args:
            device: where coordinates and results are created; must be the parameters' device
                (None: the parameters' device).
            chunk_size: pixels per network evaluation.
            progress: show a tqdm progress bar.

        Returns:
            :class:`AtlasMaps` with ``(N, H, W, 2)`` uv maps and ``(N, 1, H, W)`` alpha.
        """
        device = self._resolve_device(device)
        n, h, w = self.num_frames, self.height, self.width
        dtype = self.dtype
        uv_foreground = torch.empty(n * h * w, 2, device=device, dtype=dtype)
        uv_background = torch.empty(n * h * w, 2, device=device, dtype=dtype)
        alpha = torch.empty(n * h * w, device=device, dtype=dtype)
        with torch.no_grad():
            for start, end, xyt in self._pixel_chunks(device, chunk_size, progress, "atlas uv maps"):
                uv_foreground[start:end] = self.foreground_uv(xyt)
                uv_background[start:end] = self.background_uv(xyt)
                alpha[start:end] = self.alpha_values(xyt)[:, 0]
        return AtlasMaps(
            uv_foreground=uv_foreground.view(n, h, w, 2),
            uv_background=uv_background.view(n, h, w, 2),
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
                alpha = self.alpha_values(xyt)
                rgb_foreground = self.atlas_rgb(self.foreground_uv(xyt))
                rgb_background = self.atlas_rgb(self.background_uv(xyt))
                frames[start:end] = alpha * rgb_foreground + (1.0 - alpha) * rgb_background
        return frames.view(n, h, w, 3).permute(0, 3, 1, 2).contiguous()

    def bake(
        self,
        layer: Layer,
        resolution: int = 2000,
        device: torch.device | str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        box: "PixelBox | None" = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Render a layer's atlas to an image (no gradient); see :func:`atlas.render.bake_atlas`."""
        from .render import bake_atlas

        return bake_atlas(self, layer, resolution, device=device, chunk_size=chunk_size, box=box, progress=progress)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_nla_checkpoint(
        cls,
        folder: str | Path,
        device: torch.device | str = "cpu",
        num_frames: int | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> "NeuralAtlas":
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
        folder = Path(folder)
        if not folder.is_dir():
            raise AtlasCheckpointError(
                f"NLA checkpoint folder not found: {folder} (expected a folder holding "
                f"'{CHECKPOINT_FILENAME}' and '{CONFIG_FILENAME}')"
            )
        config_path = folder / CONFIG_FILENAME
        checkpoint_path = folder / CHECKPOINT_FILENAME
        if not config_path.is_file():
            raise AtlasCheckpointError(f"NLA config file missing: {config_path} (the sizes are read from it)")
        if not checkpoint_path.is_file():
            raise AtlasCheckpointError(f"NLA checkpoint file missing: {checkpoint_path}")
        try:
            with open(config_path, encoding="utf-8") as handle:
                config_values = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise AtlasCheckpointError(f"cannot read NLA config {config_path}: {error}") from error
        if not isinstance(config_values, dict):
            raise AtlasCheckpointError(f"NLA config {config_path} must hold a JSON object")
        try:
            config = AtlasConfig.from_json_dict(
                config_values, num_frames=num_frames, width=width, height=height
            )
        except KeyError as error:
            raise AtlasCheckpointError(
                f"NLA config {config_path} has no key '{error.args[0]}' (and no override was given)"
            ) from error
        except (TypeError, ValueError) as error:
            raise AtlasCheckpointError(f"invalid NLA config {config_path}: {error}") from error

        try:
            checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
        except Exception as error:  # unpickling failures have many types
            raise AtlasCheckpointError(f"cannot read NLA checkpoint {checkpoint_path}: {error}") from error
        if not isinstance(checkpoint, dict):
            raise AtlasCheckpointError(
                f"NLA checkpoint {checkpoint_path} must hold a dict, got {type(checkpoint).__name__}"
            )

        atlas = cls(config)
        for module_name, key in NLA_STATE_DICT_KEYS.items():
            description = _NETWORK_DESCRIPTIONS[module_name]
            if key not in checkpoint:
                raise AtlasCheckpointError(
                    f"NLA checkpoint {checkpoint_path} has no key '{key}' ({description}); "
                    f"found keys: {sorted(map(str, checkpoint))}"
                )
            state_dict = checkpoint[key]
            if not isinstance(state_dict, dict):
                raise AtlasCheckpointError(f"'{key}' in {checkpoint_path} is not a state dict")
            network: nn.Module = getattr(atlas, module_name)
            _check_state_dict(network, state_dict, key, description, checkpoint_path)
            network.load_state_dict(state_dict)
        iteration = checkpoint.get("iteration", 0)
        atlas.iteration = int(iteration.item() if torch.is_tensor(iteration) else iteration)
        return atlas.to(device).eval()


def _check_state_dict(
    network: nn.Module, state_dict: dict, key: str, description: str, checkpoint_path: Path
) -> None:
    """Raise AtlasCheckpointError unless ``state_dict`` matches ``network`` key for key and shape."""
    expected = network.state_dict()
    missing = [name for name in expected if name not in state_dict]
    if missing:
        raise AtlasCheckpointError(
            f"'{key}' ({description}) in {checkpoint_path} is missing {missing[0]}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + " (config.json layer count larger than the checkpoint's?)"
        )
    unexpected = [name for name in state_dict if name not in expected]
    if unexpected:
        raise AtlasCheckpointError(
            f"'{key}' ({description}) in {checkpoint_path} has unexpected entry {unexpected[0]}"
            + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else "")
            + " (config.json layer count smaller than the checkpoint's?)"
        )
    for name, parameter in expected.items():
        value = state_dict[name]
        if not torch.is_tensor(value):
            raise AtlasCheckpointError(f"{description} layer {name} in {checkpoint_path} is not a tensor")
        if tuple(value.shape) != tuple(parameter.shape):
            raise AtlasCheckpointError(
                f"{description} layer {name} ('{key}'): checkpoint shape {tuple(value.shape)} "
                f"does not match shape {tuple(parameter.shape)} from config.json"
            )


def _fresh_adam_state(atlas: NeuralAtlas) -> dict[str, Any]:
    """State dict of a fresh ``torch.optim.Adam(lr=1e-4)`` over NLA's four parameter groups.

    Written by hand (same structure as ``Adam.state_dict()``): building a real optimiser imports
    torch's compiler stack, which takes seconds.
    """
    groups = []
    next_index = 0
    for name in _OPTIMIZER_GROUP_ORDER:
        count = len(list(getattr(atlas, name).parameters()))
        groups.append({
            "lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
            "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
            "fused": None, "params": list(range(next_index, next_index + count)),
        })
        next_index += count
    return {"state": {}, "param_groups": groups}


def save_nla_checkpoint(
    atlas: NeuralAtlas,
    folder: str | Path,
    iteration: int | None = None,
    optimizer_state: dict | None = None,
) -> Path:
    """Write ``atlas`` in the public NLA format: ``folder/checkpoint`` and ``folder/config.json``.

    Args:
        atlas: the model (any device; tensors are saved from CPU copies).
        folder: created if needed.
        iteration: stored as ``iteration`` (default: ``atlas.iteration``).
        optimizer_state: stored as ``optimizer_all_state_dict``; default is the state dict of a
            fresh Adam (lr 1e-4) over NLA's four parameter groups (mapping1, mapping2, alpha, atlas).

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if optimizer_state is None:
        optimizer_state = _fresh_adam_state(atlas)
    checkpoint: dict[str, Any] = {
        key: {name: value.detach().cpu().clone() for name, value in getattr(atlas, module_name).state_dict().items()}
        for module_name, key in NLA_STATE_DICT_KEYS.items()
    }
    checkpoint["iteration"] = int(atlas.iteration if iteration is None else iteration)
    checkpoint["optimizer_all_state_dict"] = optimizer_state
    torch.save(checkpoint, folder / CHECKPOINT_FILENAME)
    atlas.config.save(folder / CONFIG_FILENAME)
    return folder
