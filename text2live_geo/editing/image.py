"""Image editing: the editor (one training step), final outputs, and the run (`edit_image`).

`ImageEditor.training_step` is the whole path of one step, top to bottom:
sample a crop -> generator -> RGBA -> composite / green screen -> one paired draw of CLIP
views -> embeddings (one batched forward with gradient, one without) -> losses -> backward.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..augment import resize_short
from ..clip import ClipGuide
from ..config import ImageEditConfig, to_yaml
from ..data.image_crops import CropSampler
from ..generator import PixelParameterization, SkipGenerator, batch_statistics_without_update
from ..io import read_image, save_png, side_by_side
from ..layers import EditLayers, composite_layers
from .base import GeneratorTraining
from .objective import EditObjective, Render
from .run import (
    CONFIG_NAME,
    RunError,
    autocast_context,
    check_texts,
    claim_run_dir,
    decayed_lr,
    load_run_config,
    make_run_dir,
    select_device,
    set_lr,
    timestamped,
)

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

    def __init__(self, cfg: ImageEditConfig, image: torch.Tensor, clip: ClipGuide, device: torch.device):
        self.cfg, self.clip, self.device = cfg, clip, device
        self.image = image.to(device)
        inversion = cfg.mode == "inversion"
        if inversion:
            self.generator = PixelParameterization(self.image).to(device)
            min_size = 1
        else:
            self.generator = SkipGenerator.from_config(cfg.generator).to(device)
            min_size = self.generator.min_size
        if device.type == "cuda":
            self.generator = self.generator.to(memory_format=torch.channels_last)
        loss = cfg.loss
        self.objective = EditObjective(cfg.text, cfg.clip, loss, clip, device, cfg.precision)
        self.previous_generator = copy.deepcopy(self.generator).requires_grad_(False) \
            if self.objective.uses_previous_anchor else None
        view_size = self.objective.view_size

        # bootstrap target: relevancy of the whole input, carried as an extra channel so every
        # crop, flip and rescale of the internal dataset moves it with the pixels
        self.relevancy: torch.Tensor | None = None
        source = self.image
        self.bootstraps = bool(cfg.text.bootstrap.strip()) and loss.bootstrap > 0 and not inversion
        if self.bootstraps and not loss.relevancy_per_crop:  # (per crop: the objective computes it)
            view = resize_short(self.image, view_size, cfg.clip.max_view_ratio)
            relevancy = clip.relevancy(view, cfg.text.bootstrap)
            self.relevancy = F.interpolate(relevancy, size=self.image.shape[-2:], mode="bilinear",
                                           align_corners=False).clamp(0, 1)
            source = torch.cat([self.image, self.relevancy], dim=1)
        self.sampler = CropSampler(source, cfg.crops, min_size, enabled=not inversion)

        self.setup_optimisation()

    # --------------------------------------------------------------------- one step
    def has_bootstrap_target(self) -> bool:
        return self.bootstraps

    def training_step(self) -> dict[str, float]:
        """One optimisation step; returns the loss values (and the weighted total)."""
        # 1. sample: a crop of the input (plus the relevancy channel when bootstrapping)
        samples = self.step_samples()

        # 2.-5. generator -> layers -> paired CLIP views -> embeddings -> losses
        terms, weights, _ = self.losses_of(samples)

        # 6. weighted total -> backward -> update (the IMR anchor takes the weights left behind)
        return self.optimise(terms, weights)

    def step_samples(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Set this step's learning rate and train mode, and draw its input samples: a crop
        `(1, 3, h, w)` with its relevancy `(1, 1, h, w)` or None; with crops.full_image_extra, on
        a whole-image step the crop and the whole image."""
        set_lr(self.optimizer, decayed_lr(self.cfg.optim, self.step))
        self.generator.train()
        return [(sample[:, :3], sample[:, 3:] if sample.shape[1] > 3 else None)
                for sample in self.sampler.samples(self.step)]

    def losses(self, crop: torch.Tensor, relevancy: torch.Tensor | None = None
               ) -> tuple[dict[str, torch.Tensor], dict[str, float], EditLayers]:
        """Loss terms and their weights for one input crop `(1, 3, h, w)` (and its relevancy
        `(1, 1, h, w)`), plus the edit layers they were computed from."""
        terms, weights, layers = self.losses_of([(crop, relevancy)])
        return terms, weights, layers[0]

    def losses_of(self, samples: Sequence[tuple[torch.Tensor, torch.Tensor | None]]
                  ) -> tuple[dict[str, torch.Tensor], dict[str, float], list[EditLayers]]:
        """Loss terms (each the mean over the samples) and their weights for one or more input
        crops with their relevancy, plus the edit layers of each."""
        cfg = self.cfg
        renders, all_layers = [], []
        for crop, relevancy in samples:
            # 2. generator -> RGBA -> edit layers over the untouched crop
            with autocast_context(self.device, cfg.precision):
                rgba = self.generator(crop)
            layers = composite_layers(rgba.float(), crop)
            anchor = None
            if self.previous_generator is not None:  # IMR anchor: the previous step's generator
                with torch.no_grad(), autocast_context(self.device, cfg.precision), \
                        batch_statistics_without_update(self.previous_generator):
                    anchor = composite_layers(self.previous_generator(crop).float(), crop).composite
            renders.append(Render(crop, layers, anchor, relevancy))
            all_layers.append(layers)

        # 3.-5. paired CLIP views -> embeddings -> losses
        terms, weights = self.objective.batched(renders, self.bootstrap_weight(self.step),
                                                sparsity=cfg.mode == "generator")
        return terms, weights, all_layers

    # ------------------------------------------------------------------ rendering
    @torch.no_grad()
    def render(self) -> EditLayers:
        """The generator on the whole input (batch statistics, buffers untouched)."""
        with batch_statistics_without_update(self.generator), autocast_context(self.device, self.cfg.precision):
            rgba = self.generator(self.image)
        return composite_layers(rgba.float(), self.image)


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
               clip: ClipGuide | None = None, progress: bool = True,
               run_dir: str | Path | None = None) -> ImageEditResult:
    """Run (or resume) one image edit and write its run folder. Returns the result.

    `overrides` are `key=value` dotlist entries; with `resume`, the run folder's saved config
    is loaded and `overrides` apply on top (e.g. `steps=2000` to train longer). `run_dir`: the new
    run's folder (created if missing; it must not hold a run), for a caller that owns it, like a
    batch; default: a new folder under `output_dir`, named `run_name` or after the input.
    """
    if resume is not None and run_dir is not None:
        raise RunError("give resume (a run folder to continue) or run_dir (a new run's folder), not both")
    cfg, resume = load_run_config(ImageEditConfig, config_path, overrides, resume, base_config)
    if not cfg.image:
        raise RunError("no input image: pass image=path/to/photo.png (or set it in the config)")
    check_texts(cfg)
    device = select_device(cfg.device)
    image, notes = read_image(cfg.image)
    for note in notes:
        logger.info(f"note: {note}")
    owns_clip = clip is None
    if owns_clip:
        clip = ClipGuide.load(cfg.clip.model, device)
    clip = clip.to(device)
    min_size = 1 if cfg.mode == "inversion" else 2 ** cfg.generator.num_scales + 1
    image = prepare_input(image, cfg.crops.resize_short, min_size, cfg.image, cfg.crops.resize_upscale)

    torch.manual_seed(cfg.seed)
    editor = ImageEditor(cfg, image, clip, device)
    if owns_clip:
        clip.release_text_model()  # every text is embedded by now: free its weights
    if resume is not None:
        run_dir = resume
        editor.resume(run_dir)
    else:
        run_dir = claim_run_dir(run_dir) if run_dir is not None else \
            make_run_dir(cfg.output_dir, cfg.run_name or timestamped(Path(cfg.image).stem))
        (run_dir / CONFIG_NAME).write_text(to_yaml(cfg))
        save_png(image, run_dir / "input.png")
        if editor.relevancy is not None:
            save_png(editor.relevancy, run_dir / "relevancy.png")

    def snapshot() -> torch.Tensor:
        layers = editor.render()
        return side_by_side(editor.image, layers.composite, layers.greenscreen)

    editor.train(run_dir, progress, snapshot)
    layers = editor.render()
    write_outputs(run_dir, editor.image, layers)
    logger.info(f"wrote {run_dir}")
    return ImageEditResult(run_dir=run_dir, layers=layers, input_image=image, steps=editor.step)
