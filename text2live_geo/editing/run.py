"""What image and video edits share around the editor: the check of the texts, and `run_edit`,
the one run skeleton of `edit_image` and `edit_video`."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..common.atomic import atomic_write_text
from ..common.config import to_yaml
from ..common.io import save_png
from ..common.runs import (
    CONFIG_NAME,
    RunError,
    claim_run_dir,
    load_run_config,
    make_run_dir,
    select_device,
    timestamped,
)
from ..config import ImageEditConfig, VideoEditConfig
from .base import GeneratorTraining


def check_texts(cfg: ImageEditConfig | VideoEditConfig) -> None:
    """RunError when one of the edit's text lists (text.src, text.comp, text.screen) is empty or
    holds an empty text."""
    for key in ("src", "comp", "screen"):
        texts = getattr(cfg.text, key)
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not str(text).strip() for text in texts):
            raise RunError(f"text.{key} is empty or holds an empty text: give it a description, "
                           f"e.g. text.{key}='golden horse' or text.{key}='[golden horse, gold horse]'")


# ------------------------------------------------------------------------------ the run skeleton
@dataclass
class PreparedEdit:
    """What an edit's set-up hands the run skeleton: the editor, the stem of a new run folder's name,
    and the images a new run folder starts with (file name -> `(1, C, H, W)` image)."""

    editor: GeneratorTraining
    name: str
    first_images: dict[str, torch.Tensor] = field(default_factory=dict)


def run_edit(schema: type, config_path, overrides: Sequence[str], resume, base_config, run_dir, progress: bool,
             prepare: Callable[[Any, torch.device], PreparedEdit],
             should_stop: Callable[[], bool] | None = None) -> tuple[Any, PreparedEdit, Path, float]:
    """One edit run, image or video: config -> checks -> device -> `prepare(cfg, device)` (input,
    CLIP, editor) -> a new run folder (config.yaml and the first images) or the resumed one ->
    training. Returns `(cfg, prepared, run folder, seconds trained in this call)`; the caller
    writes its final outputs.

    `resume`: a run folder to continue (its saved config, `overrides` on top); `run_dir`: the new
    run's folder for a caller that owns it (a batch); default: a new folder under `output_dir`
    named `run_name` or after the input. `should_stop`: asked after every training step; True ends
    the training there, checkpointed (`GeneratorTraining.train`)."""
    if resume is not None and run_dir is not None:
        raise RunError("give resume (a run folder to continue) or run_dir (a new run's folder), not both")
    cfg, resume = load_run_config(schema, config_path, overrides, resume, base_config)
    check_texts(cfg)
    device = select_device(cfg.device)
    prepared = prepare(cfg, device)
    editor = prepared.editor
    if resume is not None:
        run_dir = resume
        editor.resume(run_dir)
    else:
        run_dir = claim_run_dir(run_dir) if run_dir is not None else \
            make_run_dir(cfg.output_dir, cfg.run_name or timestamped(prepared.name))
        atomic_write_text(run_dir / CONFIG_NAME, to_yaml(cfg))
        for name, image in prepared.first_images.items():
            save_png(image, run_dir / name)
    seconds = editor.train(run_dir, progress, should_stop)
    return cfg, prepared, run_dir, seconds
