"""Image editing: the editor, final outputs, and the run (`edit_image`).

The step itself is `GeneratorTraining.training_step` (editing/base.py), the same for images and
videos: sample a crop -> generator -> RGBA -> composite / green screen -> one paired draw of CLIP
views -> embeddings (one batched forward with gradient, one without) -> losses -> backward.
What is the image's own is here: the crop it samples (`draw_sample`) and how the generator's
output becomes edit layers (`render_sample`).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..augment import resize_short
from ..clip import ClipGuide
from ..common.io import read_image, save_png, side_by_side
from ..common.runs import RunError, autocast_context
from ..config import ImageEditConfig, Mode
from ..data.image_crops import CropSampler
from ..generator import PixelParameterization, SkipGenerator, batch_statistics_without_update, min_input_size
from ..layers import EditLayers, composite_layers
from .base import GeneratorTraining
from .objective import EditObjective, Render
from .run import PreparedEdit, run_edit

logger = logging.getLogger(__name__)


@dataclass
class ImageEditResult:
    run_dir: Path
    layers: EditLayers
    input_image: torch.Tensor
    steps: int


def prepare_input(image: torch.Tensor, resize_to: int, min_size: int, name: str, upscale: bool = False
                  ) -> torch.Tensor:
    """Downscale so the short side is at most `resize_to` (with `upscale`, exactly `resize_to`:
    a smaller image is upscaled, as the reference does); check min size."""
    height, width = image.shape[-2:]
    if resize_to and (min(height, width) > resize_to or (upscale and min(height, width) < resize_to)):
        image = resize_short(image, resize_to, max_ratio=float("inf"))
    if min(image.shape[-2:]) < min_size:
        raise RunError(f"image '{name}' is {width}x{height} px; the generator needs at least {min_size} px per "
                       f"side (use a larger image or a smaller generator.num_scales)")
    return image.clamp(0, 1)


# ---------------------------------------------------------------------------- the editor
class ImageEditor(GeneratorTraining):
    """Holds everything of one image edit and runs its training steps."""

    def __init__(self, cfg: ImageEditConfig, image: torch.Tensor, clip_guide: ClipGuide, device: torch.device):
        self.cfg, self.clip_guide, self.device = cfg, clip_guide, device
        self.image = image.to(device)
        inversion = cfg.mode == Mode.inversion
        self.sparsity = not inversion  # the alpha of a pixel inversion is not an edit's
        if inversion:
            self.generator = PixelParameterization(self.image).to(device)
            min_size = 1
        else:
            self.generator = SkipGenerator.from_config(cfg.generator).to(device)
            min_size = self.generator.min_size
        if device.type == "cuda":
            self.generator = self.generator.to(memory_format=torch.channels_last)
        loss = cfg.loss
        self.objective = EditObjective(cfg.text, cfg.clip, loss, clip_guide, device, cfg.precision)
        self.previous_generator = copy.deepcopy(self.generator).requires_grad_(False) \
            if self.objective.uses_previous_anchor else None
        view_size = self.objective.view_size

        # bootstrap target: relevancy of the whole input, carried as an extra channel so every
        # crop, flip and rescale of the internal dataset moves it with the pixels
        self.relevancy: torch.Tensor | None = None
        source = self.image
        self.bootstraps = bool(cfg.text.relevancy_text()) and loss.bootstrap > 0 and not inversion
        if self.bootstraps and not loss.relevancy_per_crop:  # (per crop: the objective computes it)
            view = resize_short(self.image, view_size, cfg.clip.max_view_ratio)
            relevancy = clip_guide.relevancy(view, cfg.text.relevancy_text())
            self.relevancy = F.interpolate(relevancy, size=self.image.shape[-2:], mode="bilinear",
                                           align_corners=False).clamp(0, 1)
            source = torch.cat([self.image, self.relevancy], dim=1)
        self.sampler = CropSampler(source, cfg.crops, min_size, enabled=not inversion)

        self.setup_optimisation()

    # --------------------------------------------------------- what the step sees
    def has_bootstrap_target(self) -> bool:
        return self.bootstraps

    def draw_sample(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """This step's input samples: a crop `(1, 3, h, w)` with its relevancy `(1, 1, h, w)` or
        None; with crops.full_image_extra, on a whole-image step the crop and the whole image."""
        return [(sample[:, :3], sample[:, 3:] if sample.shape[1] > 3 else None)
                for sample in self.sampler.samples(self.step)]

    def render_sample(self, generator: torch.nn.Module,
                      sample: Sequence[tuple[torch.Tensor, torch.Tensor | None]]) -> list[Render]:
        """`generator` on each crop -> RGBA -> edit layers over the untouched crop."""
        renders = []
        for crop, relevancy in sample:
            with autocast_context(self.device, self.cfg.precision):
                rgba = generator(crop)
            renders.append(Render(crop, composite_layers(rgba.float(), crop), relevancy=relevancy))
        return renders

    # ------------------------------------------------------------------ rendering
    @torch.no_grad()
    def render(self) -> EditLayers:
        """The generator on the whole input (batch statistics, buffers untouched)."""
        with batch_statistics_without_update(self.generator), autocast_context(self.device, self.cfg.precision):
            rgba = self.generator(self.image)
        return composite_layers(rgba.float(), self.image)

    def snapshot(self) -> torch.Tensor:
        """Input | composite | edit over green, side by side."""
        layers = self.render()
        return side_by_side(self.image, layers.composite, layers.greenscreen)


def write_outputs(run_dir: Path, image: torch.Tensor, layers: EditLayers, prefix: str = "") -> None:
    """Final images: composite, RGBA edit layer, alpha, edit on green screen, comparison."""
    save_png(layers.composite, run_dir / f"{prefix}composite.png")
    save_png(torch.cat([layers.edit, layers.alpha], dim=1), run_dir / f"{prefix}edit_layer.png")
    save_png(layers.alpha, run_dir / f"{prefix}alpha.png")
    save_png(layers.greenscreen, run_dir / f"{prefix}edit_on_greenscreen.png")
    save_png(side_by_side(image, layers.composite, layers.greenscreen), run_dir / f"{prefix}comparison.png")


# ---------------------------------------------------------------------------- the API
def edit_image(config_path: str | Path | None = None, overrides: Sequence[str] = (),
               resume: str | Path | None = None, base_config: str | Path | None = None,
               clip_guide: ClipGuide | None = None, progress: bool = True,
               run_dir: str | Path | None = None, should_stop: Callable[[], bool] | None = None) -> ImageEditResult:
    """Run (or resume) one image edit and write its run folder. Returns the result.

    `overrides` are `key=value` dotlist entries; with `resume`, the run folder's saved config
    is loaded and `overrides` apply on top (e.g. `steps=2000` to train longer). `run_dir`: the new
    run's folder (created if missing; it must not hold a run), for a caller that owns it, like a
    batch; default: a new folder under `output_dir`, named `run_name` or after the input.
    `should_stop`: asked after every training step; True ends the training there with a checkpoint
    (the outputs show the edit so far, and `resume` continues it).
    """

    def prepare(cfg: ImageEditConfig, device: torch.device) -> PreparedEdit:
        if not cfg.image:
            raise RunError("no input image: pass image=path/to/photo.png (or set it in the config)")
        if cfg.max_image_pixels < 0:
            raise RunError(f"max_image_pixels must be at least 0 (0: no limit), got {cfg.max_image_pixels}")
        image, notes = read_image(cfg.image, cfg.max_image_pixels, key="max_image_pixels")
        for note in notes:
            logger.info(f"note: {note}")
        guide = ClipGuide.load(cfg.clip.model, device) if clip_guide is None else clip_guide
        guide = guide.to(device)
        min_size = 1 if cfg.mode == Mode.inversion else min_input_size(cfg.generator.num_scales)
        image = prepare_input(image, cfg.crops.resize_short, min_size, cfg.image, cfg.crops.resize_upscale)
        torch.manual_seed(cfg.seed)
        editor = ImageEditor(cfg, image, guide, device)
        if clip_guide is None:
            guide.release_text_model()  # every text is embedded by now: free its weights
        first = {"input.png": image}
        if editor.relevancy is not None:
            first["relevancy.png"] = editor.relevancy
        return PreparedEdit(editor, Path(cfg.image).stem, first)

    _, prepared, run_dir, _ = run_edit(ImageEditConfig, config_path, overrides, resume, base_config, run_dir,
                                       progress, prepare, should_stop)
    editor = prepared.editor
    layers = editor.render()
    write_outputs(run_dir, editor.image, layers)
    logger.info(f"wrote {run_dir}")
    return ImageEditResult(run_dir=run_dir, layers=layers, input_image=editor.image.cpu(), steps=editor.step)
