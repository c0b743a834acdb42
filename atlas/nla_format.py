"""The public NLA checkpoint format: reading it (with checks that name what is wrong) and writing it.

A checkpoint folder holds ``checkpoint`` (a ``torch.save`` dict with ``model_F_mapping1_state_dict``,
``model_F_mapping2_state_dict``, ``F_atlas_state_dict``, ``model_F_alpha_state_dict``, and usually
``iteration`` and ``optimizer_all_state_dict``) and ``config.json`` (sizes, see :mod:`atlas.config`).

This module knows the files and keys, not the model: it works on any module that has the four
networks (:data:`NLA_STATE_DICT_KEYS`), ``config`` and ``iteration``, i.e. a
:class:`~atlas.model.NeuralAtlas`, whose :meth:`~atlas.model.NeuralAtlas.from_nla_checkpoint`
builds the atlas from :func:`read_nla_checkpoint`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from text2live_geo.common.errors import UserError

from .config import AtlasConfig

__all__ = [
    "AtlasCheckpointError",
    "CHECKPOINT_FILENAME",
    "CONFIG_FILENAME",
    "NLACheckpoint",
    "NLA_STATE_DICT_KEYS",
    "read_nla_checkpoint",
    "save_nla_checkpoint",
]

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


class AtlasCheckpointError(UserError, ValueError):
    """An NLA checkpoint folder is missing a file or key, or does not match its config."""


@dataclass
class NLACheckpoint:
    """A public NLA checkpoint folder, read and checked at the file level.

    Attributes:
        config: the sizes from ``config.json`` (with the caller's overrides).
        contents: the ``torch.save`` dict of ``checkpoint``.
        path: the ``checkpoint`` file.
    """

    config: AtlasConfig
    contents: dict
    path: Path

    def load_into(self, atlas: nn.Module) -> None:
        """Load the four networks and the iteration into ``atlas`` (a NeuralAtlas built from
        :attr:`config`), checking each network's keys and shapes first.

        Raises:
            AtlasCheckpointError: a missing key, or a layer whose shape differs from the config.
        """
        checkpoint, checkpoint_path = self.contents, self.path
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


def read_nla_checkpoint(
    folder: str | Path,
    device: torch.device | str = "cpu",
    num_frames: int | None = None,
    width: int | None = None,
    height: int | None = None,
) -> NLACheckpoint:
    """Read a public NLA checkpoint folder (``torch.load(weights_only=True)``).

    Args:
        folder: the checkpoint folder.
        device: ``map_location`` of the tensors.
        num_frames, width, height: overrides of ``maximum_number_of_frames``, ``resx``, ``resy``.

    Raises:
        AtlasCheckpointError: a missing folder, file or config key, or an unreadable file; the
            message names it.
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
    return NLACheckpoint(config=config, contents=checkpoint, path=checkpoint_path)


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


def _fresh_adam_state(atlas: nn.Module) -> dict[str, Any]:
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
    atlas: nn.Module,
    folder: str | Path,
    iteration: int | None = None,
    optimizer_state: dict | None = None,
) -> Path:
    """Write ``atlas`` in the public NLA format: ``folder/checkpoint`` and ``folder/config.json``.

    Args:
        atlas: the NeuralAtlas (any device; tensors are saved from CPU copies).
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
