"""Video editing on a neural layered atlas (Text2LIVE video recipe, docs/video.md, "The video recipe").

The generator edits one layer's atlas (a 2D texture of the foreground object or of the
background), and the edit is mapped back to every frame through the NLA uv maps, so it is
temporally consistent by construction.

One step (`GeneratorTraining.training_step`, editing/base.py, the same method as for images),
top to bottom: sample frames {t-2, t, t+2}, a crop of each and the atlas crop covering their uvs ->
generator on the atlas crop -> RGBA -> atlas-space layers -> grid_sample back to each frame crop
(times the NLA alpha for the foreground) -> plus the generator on one of the frame crops (and,
every 75 steps, on the whole atlas) -> per render: one paired draw of CLIP views -> embeddings ->
losses (the image objective) -> mean over the renders -> backward.

The final render runs the generator once on the whole (cropped) atlas and samples its edit into
every pixel of every frame: edited layer = (1 - a) * original + a * edit, and
frame = NLA alpha * foreground layer + (1 - NLA alpha) * background layer, the unedited layer
being the original video.

The parts around the editor: `video_input` loads the atlas and prepares the input
(`AtlasVideo`), `text2live_geo.data.atlas_crops` samples what each step sees, `video_outputs`
writes the final render; `edit_video` at the end of this module runs them in order.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from atlas import Layer, sample_atlas

from ..augment import resize_short
from ..clip import ClipGuide
from ..common.atomic import atomic_write_json
from ..common.io import side_by_side
from ..common.runs import RunError, autocast_context
from ..common.video_io import FOLDER_FPS, VideoStream, video_name
from ..config import VideoEditConfig
from ..data.atlas_crops import AtlasCropSampler, AtlasSample, AtlasVideo
from ..generator import SkipGenerator, batch_statistics_without_update
from ..layers import EditLayers, composite_layers, green_screen_like
from .base import GeneratorTraining
from .objective import EditObjective, Render
from .run import PreparedEdit, run_edit
from .video_input import (
    fitted_atlas_for_video,
    load_atlas_for_video,
    prepare_atlas_video,
    sampled_reconstruction_psnr,
)
from .video_outputs import write_video_outputs

__all__ = ["VideoEditResult", "VideoEditor", "as_seen_in_frames", "edit_video"]


# ---------------------------------------------------------------------- what the losses see
logger = logging.getLogger(__name__)


def as_seen_in_frames(source: torch.Tensor, layers: EditLayers, nla_alpha: torch.Tensor | None,
                      relevancy: torch.Tensor | None = None, mask_source: bool = True) -> Render:
    """The foreground layer as a frame shows it: every render times the NLA alpha ``(1, 1, h, w)``,
    and ``(1 - NLA alpha) * green`` added to the green screen. ``nla_alpha`` None (background): as is.
    ``mask_source`` False leaves the source as it is (the reference's frame crops)."""
    if nla_alpha is None:
        return Render(source, layers, relevancy=relevancy)
    green = green_screen_like(layers.greenscreen)
    return Render(
        source=nla_alpha * source if mask_source else source,
        layers=EditLayers(edit=nla_alpha * layers.edit, alpha=nla_alpha * layers.alpha,
                          composite=nla_alpha * layers.composite,
                          greenscreen=nla_alpha * layers.greenscreen + (1 - nla_alpha) * green),
        relevancy=nla_alpha * relevancy if relevancy is not None else None)


@dataclass
class VideoEditResult:
    run_dir: Path
    frames: int
    steps: int
    summary: dict


# ---------------------------------------------------------------------------- the editor
class VideoEditor(GeneratorTraining):
    """Holds everything of one video edit and runs its training steps (mirrors ImageEditor)."""

    def __init__(self, cfg: VideoEditConfig, video: AtlasVideo, clip_guide: ClipGuide, device: torch.device):
        self.cfg, self.video, self.clip_guide, self.device = cfg, video, clip_guide, device
        self.layer: Layer = video.layer
        self.generator = SkipGenerator.from_config(cfg.generator).to(device)
        if device.type == "cuda":
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.objective = EditObjective(cfg.text, cfg.clip, cfg.loss, clip_guide, device, cfg.precision)
        self.previous_generator = copy.deepcopy(self.generator).requires_grad_(False) \
            if self.objective.uses_previous_anchor else None
        self.sparsity = True

        # bootstrap target: the relevancy of the whole atlas, computed once in atlas space, so that
        # crops, flips and the uv sampling carry it to every render like the atlas colours
        self.atlas_relevancy: torch.Tensor | None = None
        self.bootstraps = bool(cfg.text.relevancy_text()) and cfg.loss.bootstrap > 0
        if self.bootstraps and not cfg.loss.relevancy_per_crop:  # (per crop: the objective computes it)
            view = resize_short(video.atlas_image, self.objective.view_size, cfg.clip.max_view_ratio)
            relevancy = clip_guide.relevancy(view, cfg.text.relevancy_text())
            self.atlas_relevancy = F.interpolate(relevancy, size=video.atlas_image.shape[-2:], mode="bilinear",
                                                 align_corners=False).clamp(0, 1)
        self.sampler = AtlasCropSampler(video, cfg.crops, self.generator.min_size, self.atlas_relevancy)
        self.whole_atlas, self.whole_atlas_relevancy = self._whole_atlas_sample()

        self.setup_optimisation()

    def _whole_atlas_sample(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The whole-atlas sample (and its relevancy): the baked region, for the background
        downscaled by `crops.background_atlas_downscale` (as the reference does), and then, where it
        still has more than `crops.whole_atlas_max_pixels` pixels, downscaled to that many: this
        sample runs through the generator with gradients, so its pixels set the step's memory
        (about 3 GiB per megapixel on the CPU). Bilinear, antialiased; neither downscale goes below
        the generator's minimum side."""
        whole, relevancy = self.video.atlas_image, self.atlas_relevancy
        height, width = whole.shape[-2:]
        min_side = self.generator.min_size
        factor = self.cfg.crops.background_atlas_downscale if self.layer == Layer.background else 1
        factor = max(1, min(factor, min(height, width) // min_side))
        size = (height // factor, width // factor)
        max_pixels = self.cfg.crops.whole_atlas_max_pixels
        if max_pixels > 0 and size[0] * size[1] > max_pixels:
            # one scale for both sides (the aspect kept), floored so the product fits
            scale = max(math.sqrt(max_pixels / (size[0] * size[1])), min_side / min(size))
            size = (max(min_side, math.floor(size[0] * scale)), max(min_side, math.floor(size[1] * scale)))
        if size != (height, width):
            resize = lambda image: F.interpolate(image, size=size, mode="bilinear", align_corners=False,  # noqa: E731
                                                 antialias=True).clamp(0, 1)
            whole = resize(whole)
            relevancy = resize(relevancy) if relevancy is not None else None
        return whole, relevancy

    # --------------------------------------------------------------------- one step
    def has_bootstrap_target(self) -> bool:
        return self.bootstraps

    def draw_sample(self) -> AtlasSample:
        """Frames {t-2, t, t+2}, a crop of each, the atlas crop covering their uvs (and the direct
        frame crop; every `crops.full_atlas_every` steps the whole atlas)."""
        return self.sampler.sample(self.step)

    def _generate(self, generator: torch.nn.Module, image: torch.Tensor, flipped: bool) -> torch.Tensor:
        """RGBA ``(1, 4, h, w)`` (float32) of ``image`` ``(1, 3, h, w)``; with ``flipped`` the generator
        sees the image mirrored and its output is mirrored back, so it lines up with ``image``."""
        if flipped:
            image = image.flip(-1)
        if self.device.type == "cuda":
            image = image.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.cfg.precision):
            rgba = generator(image)
        rgba = rgba.float()
        return rgba.flip(-1) if flipped else rgba

    def render_sample(self, generator: torch.nn.Module, sample: AtlasSample) -> list[Render]:
        """The renders the losses see for one sample: each frame crop (the atlas-crop edit sampled
        at its uvs), the direct frame crop, and the whole atlas when the sample has it."""
        foreground = self.layer == Layer.foreground

        # the edit of the atlas crop, in atlas space: edit, alpha, green screen, composite
        rgba = self._generate(generator, sample.atlas_crop, sample.flipped)
        atlas_layers = composite_layers(rgba, sample.atlas_crop)
        channels = [atlas_layers.edit, atlas_layers.alpha, atlas_layers.greenscreen, atlas_layers.composite,
                    sample.atlas_crop]
        if sample.atlas_relevancy is not None:
            channels.append(sample.atlas_relevancy)
        atlas_stack = torch.cat(channels, dim=1)[0]  # (13 or 14, h, w): one grid_sample per frame crop

        renders: list[Render] = []
        relevancy_by_frame: dict[int, torch.Tensor | None] = {}
        mask_source = self.cfg.crops.mask_frame_source
        for crop in sample.frame_crops:
            # bilinear at the crop's uvs, border-clamped; values clamped to [0, 1]
            sampled = sample_atlas(atlas_stack, crop.uv, self.layer, self.video.resolution,
                                   sample.atlas_box).clamp(0, 1)
            layers = EditLayers(edit=sampled[:, 0:3], alpha=sampled[:, 3:4], greenscreen=sampled[:, 4:7],
                                composite=sampled[:, 7:10])
            relevancy = sampled[:, 13:14] if sample.atlas_relevancy is not None else None
            relevancy_by_frame[crop.frame] = relevancy
            renders.append(as_seen_in_frames(sampled[:, 10:13], layers, crop.nla_alpha if foreground else None,
                                             relevancy, mask_source))

        # one frame crop straight through the generator: the edit must also hold on the frame's
        # pixels, not only on the atlas's resampled ones
        if sample.direct_crop is not None:
            renders.append(self._direct_render(generator, sample, relevancy_by_frame[sample.direct_crop.frame]))
        if sample.flipped:  # "flip everything together": the frame-space renders too
            renders = [render.flipped() for render in renders]

        if sample.whole_atlas:  # the whole (cropped) atlas, untouched, as one more sample
            whole = self.whole_atlas
            layers = composite_layers(self._generate(generator, whole, False), whole)
            renders.append(Render(whole, layers, relevancy=self.whole_atlas_relevancy))
        return renders

    def _direct_render(self, generator: torch.nn.Module, sample: AtlasSample,
                       relevancy: torch.Tensor | None) -> Render:
        """The direct frame crop's render (unflipped frame space).

        `direct_frame_input=layer` (the reference's): the generator sees the layer image x
        (`sample.direct_input`: frame x NLA alpha, or the background reconstruction); for the
        foreground its RGBA output is multiplied by the NLA alpha and composited over x, so the
        loss sees composite (1 - alpha a) x + alpha a (alpha e) and source x. `frame`: the generator
        sees the raw frame crop, rendered as the layer as seen in the frame (`as_seen_in_frames`)."""
        crop, foreground = sample.direct_crop, self.layer == Layer.foreground
        nla_alpha = crop.nla_alpha if foreground else None
        if sample.direct_input is None:
            layers = composite_layers(self._generate(generator, crop.image, sample.flipped), crop.image)
            return as_seen_in_frames(crop.image, layers, nla_alpha, relevancy)
        image = sample.direct_input
        rgba = self._generate(generator, image, sample.flipped)
        if nla_alpha is not None:
            rgba = rgba * nla_alpha
            relevancy = nla_alpha * relevancy if relevancy is not None else None
        return Render(image, composite_layers(rgba, image), relevancy=relevancy)

    # ------------------------------------------------------------------ rendering
    @torch.no_grad()
    def render_atlas(self) -> EditLayers:
        """The generator on the whole (cropped) atlas (batch statistics, buffers untouched):
        the edited atlas as ``(1, C, h, w)`` layers."""
        with batch_statistics_without_update(self.generator):
            rgba = self._generate(self.generator, self.video.atlas_image, False)
        return composite_layers(rgba, self.video.atlas_image)

    def snapshot(self) -> torch.Tensor:
        """Atlas | edited atlas | edit over green, side by side."""
        layers = self.render_atlas()
        return side_by_side(self.video.atlas_image, layers.composite, layers.greenscreen)

    @torch.no_grad()
    def frame_edit(self, atlas_layers: EditLayers, frames: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The atlas edit in frame space for some frames, at the atlas's frame size.

        Returns:
            edit ``(B, 3, H, W)`` and its visible opacity ``(B, 1, H, W)``: the edit alpha times the
            NLA alpha (foreground) or times 1 - NLA alpha (background). Then
            ``(1 - visible) * original + visible * edit`` equals (docs/video.md, "Final render")
            ``NLA alpha * fg layer + (1 - NLA alpha) * bg layer`` with the edited layer
            ``(1 - a) * original + a * edit`` and the other layer the original frames.
        """
        video = self.video
        frames = list(frames)
        rgba = torch.cat([atlas_layers.edit, atlas_layers.alpha], dim=1)[0]
        maps = video.maps.frames(frames)
        sampled = sample_atlas(rgba, maps.uv(self.layer), self.layer, video.resolution,
                               video.atlas_box).clamp(0, 1)
        edit, alpha = sampled[:, :3], sampled[:, 3:4]
        nla_alpha = maps.alpha.to(alpha.dtype)
        visible = nla_alpha * alpha if self.layer == Layer.foreground else (1 - nla_alpha) * alpha
        return edit, visible

    @torch.no_grad()
    def render(self, frames: Sequence[int] | None = None) -> torch.Tensor:
        """Edited frames ``(B, 3, H, W)`` at the atlas's frame size (all frames by default)."""
        frames = range(self.video.num_frames) if frames is None else frames
        edit, visible = self.frame_edit(self.render_atlas(), frames)
        original = self.video.frame_images(frames)
        return (1 - visible) * original + visible * edit

    # ---------------------------------------------------------------- checkpoints
    def extra_state(self) -> dict:
        return {"layer": str(self.layer)}  # a plain string: checkpoints load with weights_only

    def check_state(self, state: dict) -> None:
        if state.get("layer", self.layer) != self.layer:
            raise RunError(f"the checkpoint edits the {state['layer']} layer, not the {self.layer} layer "
                           "(do not override layer when resuming)")


# ---------------------------------------------------------------------------- the API
def edit_video(config_path: str | Path | None = None, overrides: Sequence[str] = (),
               resume: str | Path | None = None, base_config: str | Path | None = None,
               clip_guide: ClipGuide | None = None, progress: bool = True,
               run_dir: str | Path | None = None, should_stop: Callable[[], bool] | None = None) -> VideoEditResult:
    """Run (or resume) one video edit and write its run folder. Returns the result.

    `overrides` are `key=value` dotlist entries; with `resume`, the run folder's saved config
    is loaded and `overrides` apply on top (e.g. `steps=4000` to train longer). `run_dir`: the new
    run's folder (created if missing; it must not hold a run), for a caller that owns it, like a
    batch; default: a new folder under `output_dir`, named `run_name` or after the input.
    `should_stop`: asked after every training step; True ends the training there with a checkpoint
    (the outputs show the edit so far, and `resume` continues it).
    """
    facts: dict = {}  # what the set-up learns and the summary reports

    def prepare(cfg: VideoEditConfig, device: torch.device) -> PreparedEdit:
        if not cfg.video.frames:
            raise RunError("no input video: pass video.frames=path/to/frames_folder (or a .mp4/.mov file)")
        if cfg.video.fps is not None and cfg.video.fps < 0:
            raise RunError(f"video.fps must be positive, got {cfg.video.fps}")
        for key in ("max_frames", "frame_limit", "max_frame_pixels"):
            if getattr(cfg.video, key) < 0:
                raise RunError(f"video.{key} must be at least 0, got {getattr(cfg.video, key)}")
        # probed, not decoded: a clip over video.frame_limit (or with frames over video.max_frame_pixels)
        # stops here, before any fit; it is decoded later at the atlas's size, frame by frame
        video = VideoStream(cfg.video.frames, cfg.video.max_frames, cfg.video.frame_limit,
                            cfg.video.max_frame_pixels)
        logged = len(video.notes)
        for note in video.notes:
            logger.info(f"note: {note}")
        guide = clip_guide
        atlas_path = cfg.atlas.checkpoint
        if not atlas_path:  # no atlas given: fit one (or reuse the one fitted on this clip before)
            if guide is None:  # a wrong clip.model fails now, not after the fit
                guide = ClipGuide.load(cfg.clip.model, device)
            atlas_path = fitted_atlas_for_video(cfg, progress)
        atlas, frames = load_atlas_for_video(cfg, video, device, atlas_path)  # decoded at the atlas's size
        for note in video.notes[logged:]:  # frames converted while decoding
            logger.info(f"note: {note}")
        psnr = sampled_reconstruction_psnr(atlas, frames)
        logger.info(f"atlas reconstruction of the input: {psnr:.1f} dB PSNR (random pixels)")
        if psnr < 20:
            logger.info("note: the atlas reconstructs this video poorly; is it the atlas fitted on these frames?")
        if guide is None:
            guide = ClipGuide.load(cfg.clip.model, device)
        guide = guide.to(device)

        torch.manual_seed(cfg.seed)
        prepare_start = time.perf_counter()
        atlas_video = prepare_atlas_video(atlas, frames, cfg.layer, cfg.atlas, cfg.generator.num_scales, device,
                                          progress=progress)
        facts.update(video=video, atlas_path=atlas_path, psnr=psnr,
                     prepare_seconds=time.perf_counter() - prepare_start)
        del atlas  # the maps and the baked atlas crop are all the edit needs
        skipped = atlas_video.num_frames - len(atlas_video.frames_with_box)
        if skipped:
            logger.info(f"note: {skipped} of {atlas_video.num_frames} frames have no foreground with NLA alpha > "
                        f"{cfg.atlas.alpha_threshold}; they give no training crops (and get no visible edit)")
        editor = VideoEditor(cfg, atlas_video, guide, device)
        if clip_guide is None:
            guide.release_text_model()  # every text is embedded by now: free its weights
        facts["first_step"] = editor.step
        first = {"atlas_relevancy.png": editor.atlas_relevancy} if editor.atlas_relevancy is not None else {}
        return PreparedEdit(editor, f"{video_name(cfg.video.frames)}-{cfg.layer}", first)

    cfg, prepared, run_dir, train_seconds = run_edit(VideoEditConfig, config_path, overrides, resume, base_config,
                                                     run_dir, progress, prepare, should_stop)
    editor: VideoEditor = prepared.editor
    video, atlas_video, psnr = facts["video"], editor.video, facts["psnr"]
    fps = float(cfg.video.fps or video.fps or FOLDER_FPS)
    # the untouched input at its own size, decoded again a batch at a time for the composite
    timings = write_video_outputs(run_dir, editor, video, fps, cfg.crf, cfg.render_batch, progress,
                                  cfg.export.layers)
    trained = editor.step - facts["first_step"]
    box = atlas_video.atlas_box
    summary = {
        "frames": atlas_video.num_frames, "width": video.width, "height": video.height, "fps": fps,
        "atlas_width": atlas_video.frames.shape[-1], "atlas_height": atlas_video.frames.shape[-2],
        "layer": cfg.layer, "steps": editor.step,
        "atlas_resolution": atlas_video.resolution,  # R of the baked atlas (atlas.resolution, or followed the clip)
        "atlas_box": list(map(int, (box.left, box.top, box.right, box.bottom))),
        "frames_without_foreground": atlas_video.num_frames - len(atlas_video.frames_with_box),
        "atlas": str(facts["atlas_path"]),
        "reconstruction_psnr_db": round(psnr, 2) if math.isfinite(psnr) else None,
        "prepare_seconds": round(facts["prepare_seconds"], 3),
        "seconds_per_step": round(train_seconds / trained, 3) if trained else None, **timings,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    logger.info(f"wrote {run_dir}")
    return VideoEditResult(run_dir=run_dir, frames=atlas_video.num_frames, steps=editor.step, summary=summary)
