"""Our atlas file format, and one loader for it and for public NLA checkpoints.

An atlas folder holds ``config.json`` and ``model.safetensors``:

- ``config.json``: ``{"format": "text2live_geo-atlas", "version": 1, "model": "grid" | "nla",
  "config": {...sizes...}, "iteration": I}`` plus free-form ``"info"`` (what it was fitted on);
- ``model.safetensors``: the model's state dict (tensors only; nothing is unpickled on load).

:func:`load_atlas` also opens a public NLA checkpoint folder (``checkpoint`` + ``config.json``)
and an atlas run folder of ``run_atlas.py`` (its ``atlas/`` sub-folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from text2live_geo.common.atomic import atomic_write, atomic_write_json

from .config import AtlasConfig
from .grid_model import GridAtlas, GridAtlasConfig
from .model import LayeredAtlas, NeuralAtlas
from .nla_format import CHECKPOINT_FILENAME, AtlasCheckpointError
from .settings import AtlasModel

__all__ = ["FORMAT_NAME", "WEIGHTS_FILENAME", "load_atlas", "save_atlas"]

FORMAT_NAME = "text2live_geo-atlas"
FORMAT_VERSION = 1
CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.safetensors"
#: the atlas sub-folder of a run_atlas.py run folder
RUN_ATLAS_FOLDER = "atlas"


def save_atlas(atlas: LayeredAtlas, folder: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``atlas`` (a GridAtlas or a NeuralAtlas) to ``folder`` in our format, atomically per
    file (written beside, then renamed). Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(atlas, GridAtlas):
        kind, sizes = "grid", atlas.config.to_dict()
    elif isinstance(atlas, NeuralAtlas):
        kind, sizes = "nla", atlas.config.to_json_dict()
    else:
        raise TypeError(f"cannot save a {type(atlas).__name__}")
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in atlas.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILENAME, lambda temporary: save_file(state, str(temporary)), durable=True)
    document = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": kind, "config": sizes,
                "iteration": int(getattr(atlas, "iteration", 0)), "info": info or {}}
    atomic_write_json(folder / CONFIG_FILENAME, document, durable=True)
    return folder


def _read_document(path: Path) -> dict | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise AtlasCheckpointError(f"could not read {path}: {error}") from None
    return document if isinstance(document, dict) and document.get("format") == FORMAT_NAME else None


def load_atlas(path: str | Path, device: torch.device | str = "cpu", num_frames: int | None = None) -> LayeredAtlas:
    """Open an atlas: a folder in our format, a public NLA checkpoint folder, or a run folder of
    ``run_atlas.py``. The result offers the :class:`~atlas.model.LayeredAtlas` API
    (``reconstruct(frames)``, ``alpha(frames)``, uv maps, baking) in eval mode on ``device``.

    Args:
        path: the folder.
        device: where the parameters go.
        num_frames: NLA only: N for the time normalisation, overriding ``maximum_number_of_frames``.

    Raises:
        AtlasCheckpointError: nothing loadable there; the message says what was expected.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise AtlasCheckpointError(f"atlas folder '{folder}' does not exist")
    if not (folder / CONFIG_FILENAME).is_file() and (folder / RUN_ATLAS_FOLDER / CONFIG_FILENAME).is_file():
        folder = folder / RUN_ATLAS_FOLDER
    config_path = folder / CONFIG_FILENAME
    document = _read_document(config_path) if config_path.is_file() else None
    if document is None:
        if (folder / CHECKPOINT_FILENAME).is_file() or config_path.is_file():
            return NeuralAtlas.from_nla_checkpoint(folder, device=device, num_frames=num_frames)
        raise AtlasCheckpointError(
            f"'{folder}' holds no atlas: expected {CONFIG_FILENAME} + {WEIGHTS_FILENAME} (an atlas fitted by "
            f"run_atlas.py) or {CHECKPOINT_FILENAME} + {CONFIG_FILENAME} (a public NLA checkpoint)")
    if document.get("version") != FORMAT_VERSION:
        raise AtlasCheckpointError(f"{config_path}: format version {document.get('version')} is not supported "
                                   f"(this version reads {FORMAT_VERSION})")
    try:
        if document["model"] == AtlasModel.grid:
            atlas: LayeredAtlas = GridAtlas(GridAtlasConfig.from_dict(document["config"]))
        elif document["model"] == AtlasModel.nla:
            overrides = {"num_frames": num_frames} if num_frames else {}
            atlas = NeuralAtlas(AtlasConfig.from_json_dict(document["config"], **overrides))
        else:
            raise AtlasCheckpointError(f"{config_path}: unknown model '{document['model']}'")
    except (KeyError, TypeError, ValueError) as error:
        raise AtlasCheckpointError(f"{config_path}: bad atlas config ({error})") from None
    weights = folder / WEIGHTS_FILENAME
    if not weights.is_file():
        raise AtlasCheckpointError(f"'{folder}' has {CONFIG_FILENAME} but no {WEIGHTS_FILENAME}")
    try:
        state = load_file(str(weights))
        atlas.load_state_dict(state)
    except Exception as error:  # a truncated or foreign file; the message says which
        raise AtlasCheckpointError(f"could not load {weights}: {str(error).splitlines()[0]}") from None
    atlas.iteration = int(document.get("iteration", 0))
    return atlas.to(device).eval()
