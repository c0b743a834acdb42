"""Video editing on a neural layered atlas (Text2LIVE video recipe, ATLAS.md section 3).

The generator edits one layer's atlas (a 2D texture of the foreground object or of the
background), and the edit is mapped back to every frame through the NLA uv maps, so it is
temporally consistent by construction.

`VideoEditor.training_step` is the whole path of one step, top to bottom:
sample frames {t-2, t, t+2}, a crop of each and the atlas crop covering their uvs ->
generator on the atlas crop -> RGBA -> atlas-space layers -> grid_sample back to each frame crop
(times the NLA alpha for the foreground) -> plus the generator on one original frame crop (and,
every 75 steps, on the whole atlas) -> per render: one paired draw of CLIP views -> embeddings ->
losses (the image objective) -> mean over the renders -> backward.

The final render runs the generator once on the whole (cropped) atlas and samples its edit into
every pixel of every frame: edited layer = (1 - a) * original + a * edit, and
frame = NLA alpha * foreground layer + (1 - NLA alpha) * background layer, the unedited layer
being the original video.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from tqdm import tqdm

from atlas import (reconstruction_psnr, AtlasMaps, Layer, NeuralAtlas, NoForegroundError, PixelBox, layer_crop_regions, sample_atlas,
                   uv_bounding_box)

from ..augment import colour_jitter, resize_short
from ..clip import ClipGuide
from ..config import VIDEO_CHOICES, VideoEditConfig, to_yaml
from ..generator import SkipGenerator, batch_statistics_without_update
from ..io import InputError, save_png, side_by_side
from ..layers import EditLayers, composite_layers, green_screen_like
from ..video_io import FOLDER_FPS, Video, VideoWriter, read_video
from .base import GeneratorTraining
from .objective import EditObjective, Render
from .run import (CONFIG_NAME, RunError, autocast_context, check_texts, decayed_lr, load_run_config, make_run_dir,
                  select_device, set_lr, timestamped)

__all__ = [
    "AtlasCropSampler",
    "AtlasSample",
    "AtlasVideo",
    "FrameCrop",
    "LayerRender",
    "VideoEditResult",
    "VideoEditor",
    "edit_video",
    "load_atlas_for_video",
    "prepare_atlas_video",
    "write_video_outputs",
]


# --------------------------------------------------------------------- per-run data
@dataclass
class AtlasVideo:
    """Everything about the input that a video edit precomputes once, on the run's device.

    Attributes:
        frames: ``(N, 3, H, W)`` the input video at the atlas's frame size, in [0, 1].
        maps: per-frame uv maps ``(N, H, W, 2)`` and NLA alpha ``(N, 1, H, W)``.
        layer: the edited layer, "foreground" or "background".
        resolution: side R of the full baked atlas.
        frame_boxes: per frame, the region (frame pixels) training crops come from; None for a
            foreground frame without confident foreground (it is never sampled).
        atlas_box: the atlas-pixel region every frame box touches (the part worth editing).
        atlas_image: ``(1, 3, h, w)`` the baked atlas inside ``atlas_box``.
    """

    frames: torch.Tensor
    maps: AtlasMaps
    layer: Layer
    resolution: int
    frame_boxes: list[Optional[PixelBox]]
    atlas_box: PixelBox
    atlas_image: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def frames_with_box(self) -> list[int]:
        return [index for index, box in enumerate(self.frame_boxes) if box is not None]


def prepare_atlas_video(atlas: NeuralAtlas, frames: torch.Tensor, layer: Layer, atlas_cfg, num_scales: int,
                        device: torch.device, progress: bool = False) -> AtlasVideo:
    """Precompute uv maps and alpha, the regions worth editing, and bake the layer's atlas crop.

    Args:
        atlas: the NLA model, on ``device``.
        frames: ``(N, 3, H, W)`` input frames at the atlas's size (N, W, H of the atlas).
        layer: "foreground" or "background".
        atlas_cfg: an AtlasInputConfig (resolution, alpha_threshold, box_border, chunk_size).
        num_scales: generator scales; crops must be at least ``2^num_scales + 1`` pixels.
        device: the run's device.
        progress: tqdm bars for the (long, at full size) precomputes.

    Raises:
        RunError: frames or atlas too small for the generator, or a foreground with no pixel
            above the alpha threshold in any frame.
    """
    min_size = 2 ** num_scales + 1
    height, width = frames.shape[-2:]
    if min(height, width) < min_size:
        raise RunError(f"frames are {width}x{height} px; the generator needs at least {min_size} px per side "
                       f"(use a smaller generator.num_scales)")
    if atlas_cfg.resolution < min_size:
        raise RunError(f"atlas.resolution={atlas_cfg.resolution} is below the generator's minimum side {min_size}")
    maps = atlas.precompute_maps(device, chunk_size=atlas_cfg.chunk_size, progress=progress)
    try:
        regions = layer_crop_regions(maps, layer, atlas_cfg.resolution, num_scales, atlas_cfg.alpha_threshold,
                                     atlas_cfg.box_border)
    except NoForegroundError as error:
        raise RunError(f"{error} (lower atlas.alpha_threshold, or edit layer=background)") from None
    # a thin region (a nearly static layer) is padded so the generator can run on it
    atlas_box = regions.atlas_box.padded_to(min_size, atlas_cfg.resolution, atlas_cfg.resolution)
    atlas_image = atlas.bake(layer, atlas_cfg.resolution, device=device, chunk_size=atlas_cfg.chunk_size,
                             box=atlas_box, progress=progress)[None]
    return AtlasVideo(frames=frames.to(device), maps=maps, layer=layer, resolution=atlas_cfg.resolution,
                      frame_boxes=regions.frame_boxes, atlas_box=atlas_box, atlas_image=atlas_image)


# ------------------------------------------------------------------ internal dataset
@dataclass
class FrameCrop:
    """One frame's training crop.

    Attributes:
        frame: frame index.
        box: the crop, in frame pixels.
        image: ``(1, 3, h, w)`` original video pixels (colour-jittered with the atlas crop).
        uv: ``(1, h, w, 2)`` the edited layer's uv at those pixels.
        nla_alpha: ``(1, 1, h, w)`` NLA alpha at those pixels.
    """

    frame: int
    box: PixelBox
    image: torch.Tensor
    uv: torch.Tensor
    nla_alpha: torch.Tensor


@dataclass
class AtlasSample:
    """What one training step sees (before flipping, which the renders apply).

    Attributes:
        frame_crops: crops of frames {t - gap, t, t + gap} that have a box (1 to 3).
        atlas_box: atlas pixels covering every frame crop's uv (at least the generator's minimum).
        atlas_crop: ``(1, 3, h, w)`` baked atlas inside ``atlas_box`` (colour-jittered).
        atlas_relevancy: ``(1, 1, h, w)`` bootstrap target inside ``atlas_box``, or None.
        direct_crop: the frame crop that also goes through the generator as it is, or None.
        whole_atlas: True when the whole (cropped) atlas is one more sample this step.
        flipped: everything is flipped horizontally this step.
    """

    frame_crops: list[FrameCrop]
    atlas_box: PixelBox
    atlas_crop: torch.Tensor
    atlas_relevancy: Optional[torch.Tensor]
    direct_crop: Optional[FrameCrop]
    whole_atlas: bool
    flipped: bool


def _random_sub_box(box: PixelBox, fraction_min: float, min_size: int) -> PixelBox:
    """A random box covering ``fraction_min``..1 of each side of ``box``, at least ``min_size``."""
    def side(length: int) -> int:
        wanted = round(length * random_uniform(fraction_min, 1.0))
        return min(max(wanted, min_size), length)

    width, height = side(box.width), side(box.height)
    left = box.left + int(torch.randint(0, box.width - width + 1, ()))
    top = box.top + int(torch.randint(0, box.height - height + 1, ()))
    return PixelBox(left, top, left + width, top + height)


def random_uniform(low: float, high: float) -> float:
    """A uniform draw from torch's global RNG (so seeds and checkpoints cover it)."""
    return float(torch.empty(()).uniform_(low, high))


def _intersect(box: PixelBox, limit: PixelBox) -> PixelBox:
    return PixelBox(max(box.left, limit.left), max(box.top, limit.top),
                    min(box.right, limit.right), min(box.bottom, limit.bottom))


class AtlasCropSampler:
    """The internal dataset of a video edit (ATLAS.md section 3).

    Each step: a centre frame t in [gap, N - 1 - gap] and frames {t - gap, t, t + gap} (gap 2,
    shrunk for videos under 5 frames); frames without a box (a foreground absent there) are
    skipped, and only centres with at least one usable frame are drawn. Each frame gets a random
    crop of ``crop_min``..1 of its box; the atlas crop is the bounding box, in atlas pixels, of
    the crops' uvs. Colour jitter (p ``jitter_p``) is drawn once and applied to the atlas crop
    and the frame crops alike; the flip (p ``flip_p``) is applied by the renders.
    """

    def __init__(self, video: AtlasVideo, cfg, min_size: int,
                 atlas_relevancy: Optional[torch.Tensor] = None):
        self.video, self.cfg, self.min_size = video, cfg, min_size
        self.atlas_relevancy = atlas_relevancy
        self.gap, self.centres = self._centre_frames()

    def _usable_frames(self, centre: int, gap: int) -> list[int]:
        """Frames {centre - gap, centre, centre + gap} inside the video that have a box."""
        n, boxes = self.video.num_frames, self.video.frame_boxes
        return [f for f in dict.fromkeys((centre - gap, centre, centre + gap)) if 0 <= f < n and boxes[f] is not None]

    def _centre_frames(self) -> tuple[int, list[int]]:
        n = self.video.num_frames
        gap = max(0, min(self.cfg.frame_gap, (n - 1) // 2))
        centres = [t for t in range(gap, n - gap) if self._usable_frames(t, gap)]
        if not centres:  # e.g. a foreground present only in frame 1 of 5: no regular triplet holds it
            centres = [t for t in range(n) if self._usable_frames(t, gap)]
        if not centres:
            raise RunError("no frame has a region to edit")
        return gap, centres

    def sample(self, step: int) -> AtlasSample:
        video, cfg = self.video, self.cfg
        centre = self.centres[int(torch.randint(0, len(self.centres), ()))]
        frames = self._usable_frames(centre, self.gap)

        # a random crop of each frame's box, and the atlas pixels their uvs reach
        uv_map, crops = video.maps.uv(video.layer), []
        for frame in frames:
            box = _random_sub_box(video.frame_boxes[frame], cfg.crop_min, self.min_size)
            crops.append(FrameCrop(frame=frame, box=box, image=box.crop(video.frames[frame:frame + 1]),
                                   uv=uv_map[frame:frame + 1, box.top:box.bottom, box.left:box.right],
                                   nla_alpha=box.crop(video.maps.alpha[frame:frame + 1])))
        reached = uv_bounding_box(torch.cat([crop.uv.reshape(-1, 2) for crop in crops]), video.layer,
                                  video.resolution)
        # in coordinates of the baked atlas crop: padded to the generator's minimum inside it
        whole = video.atlas_box
        relative = _intersect(reached, whole)
        relative = PixelBox(relative.left - whole.left, relative.top - whole.top,
                            relative.right - whole.left, relative.bottom - whole.top)
        relative = relative.padded_to(self.min_size, whole.width, whole.height)
        atlas_box = PixelBox(relative.left + whole.left, relative.top + whole.top,
                             relative.right + whole.left, relative.bottom + whole.top)
        atlas_crop = relative.crop(video.atlas_image)
        atlas_relevancy = relative.crop(self.atlas_relevancy) if self.atlas_relevancy is not None else None

        # colour jitter: one draw for the atlas crop and the frame crops
        if torch.rand(()) < cfg.jitter_p:
            factors = torch.empty(4).uniform_(-1, 1) * cfg.jitter
            atlas_crop = colour_jitter(atlas_crop, factors)
            for crop in crops:
                crop.image = colour_jitter(crop.image, factors)
        flipped = bool(torch.rand(()) < cfg.flip_p)
        direct = None
        if cfg.direct_frame:
            direct = next((crop for crop in crops if crop.frame == centre), crops[0])
        whole_atlas = cfg.full_atlas_every > 0 and step % cfg.full_atlas_every == 0
        return AtlasSample(frame_crops=crops, atlas_box=atlas_box, atlas_crop=atlas_crop,
                           atlas_relevancy=atlas_relevancy, direct_crop=direct, whole_atlas=whole_atlas,
                           flipped=flipped)


@dataclass
class LayerRender:
    """One sample for the losses: the unedited layer and its edit layers, all ``(1, C, h, w)``.

    In frame space for the foreground, everything is the layer as the video shows it: times the
    NLA alpha (over black), and the green screen shows through where the NLA alpha is low.
    """

    source: torch.Tensor
    layers: EditLayers
    relevancy: Optional[torch.Tensor] = None

    def flipped(self) -> "LayerRender":
        flip = lambda image: image.flip(-1)  # noqa: E731
        layers = self.layers
        return LayerRender(flip(self.source), EditLayers(flip(layers.edit), flip(layers.alpha),
                                                         flip(layers.composite), flip(layers.greenscreen)),
                           flip(self.relevancy) if self.relevancy is not None else None)


def as_seen_in_frames(source: torch.Tensor, layers: EditLayers, nla_alpha: Optional[torch.Tensor],
                      relevancy: Optional[torch.Tensor] = None) -> LayerRender:
    """The foreground layer as a frame shows it: every render times the NLA alpha ``(1, 1, h, w)``,
    and ``(1 - NLA alpha) * green`` added to the green screen. ``nla_alpha`` None (background): as is."""
    if nla_alpha is None:
        return LayerRender(source, layers, relevancy)
    green = green_screen_like(layers.greenscreen)
    return LayerRender(
        source=nla_alpha * source,
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

    def __init__(self, cfg, video: AtlasVideo, clip: ClipGuide, device: torch.device):
        self.cfg, self.video, self.clip, self.device = cfg, video, clip, device
        self.layer: Layer = video.layer
        self.generator = SkipGenerator.from_config(cfg.generator).to(device)
        if device.type == "cuda":
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.objective = EditObjective(cfg.text, cfg.clip, cfg.loss, clip, device, cfg.precision)
        self.previous_generator = copy.deepcopy(self.generator).requires_grad_(False) \
            if self.objective.uses_previous_anchor else None

        # bootstrap target: the relevancy of the whole atlas, computed once in atlas space, so that
        # crops, flips and the uv sampling carry it to every render like the atlas colours
        self.atlas_relevancy: Optional[torch.Tensor] = None
        if cfg.text.bootstrap.strip() and cfg.loss.bootstrap > 0:
            view = resize_short(video.atlas_image, self.objective.view_size, cfg.clip.max_view_ratio)
            relevancy = clip.relevancy(view, cfg.text.bootstrap)
            self.atlas_relevancy = F.interpolate(relevancy, size=video.atlas_image.shape[-2:], mode="bilinear",
                                                 align_corners=False).clamp(0, 1)
        self.sampler = AtlasCropSampler(video, cfg.crops, self.generator.min_size, self.atlas_relevancy)

        self.setup_optimisation()

    # --------------------------------------------------------------------- one step
    def has_bootstrap_target(self) -> bool:
        return self.atlas_relevancy is not None

    def training_step(self) -> dict[str, float]:
        """One optimisation step; returns the loss values (means over the renders), the weighted
        total and the number of renders."""
        set_lr(self.optimizer, decayed_lr(self.cfg.optim, self.step))
        self.generator.train()

        # 1. sample: frames {t-2, t, t+2}, a crop of each, the atlas crop covering their uvs
        sample = self.sampler.sample(self.step)

        # 2.-5. generator on the atlas crop -> frame-space renders -> paired CLIP views -> losses
        terms, weights, renders = self.losses(sample)
        # 6. weighted total -> backward -> update (the IMR anchor takes the weights left behind)
        record = self.optimise(terms, weights)
        record["renders"] = len(renders)
        return record

    def losses(self, sample: AtlasSample) -> tuple[dict[str, torch.Tensor], dict[str, float], list[LayerRender]]:
        """Loss terms (each the mean over the sample's renders, so the weights mean what they mean
        for one image) and their weights, plus the renders they were computed from."""
        # 2. generator -> RGBA on the atlas crop (and the direct frame crop, the whole atlas) -> renders
        renders = self.render_sample(self.generator, sample)
        anchors: list[Optional[torch.Tensor]] = [None] * len(renders)
        if self.previous_generator is not None:  # IMR anchor: the previous step's generator, same sample
            with torch.no_grad(), batch_statistics_without_update(self.previous_generator):
                anchors = [render.layers.composite for render in self.render_sample(self.previous_generator, sample)]

        # 3.-5. all renders: paired CLIP views -> ONE batched CLIP forward with gradient and one
        #       without -> losses (each term the mean over the renders)
        terms, weights = self.objective.batched(
            [Render(render.source, render.layers, anchor, render.relevancy) for render, anchor in zip(renders, anchors)],
            self.bootstrap_weight(self.step))
        return terms, weights, renders

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

    def render_sample(self, generator: torch.nn.Module, sample: AtlasSample) -> list[LayerRender]:
        """The renders the losses see for one sample: each frame crop (the atlas-crop edit sampled
        at its uvs), the direct frame crop, and the whole atlas when the sample has it."""
        foreground = self.layer == "foreground"

        # the edit of the atlas crop, in atlas space: edit, alpha, green screen, composite
        rgba = self._generate(generator, sample.atlas_crop, sample.flipped)
        atlas_layers = composite_layers(rgba, sample.atlas_crop)
        channels = [atlas_layers.edit, atlas_layers.alpha, atlas_layers.greenscreen, atlas_layers.composite,
                    sample.atlas_crop]
        if sample.atlas_relevancy is not None:
            channels.append(sample.atlas_relevancy)
        atlas_stack = torch.cat(channels, dim=1)[0]  # (13 or 14, h, w): one grid_sample per frame crop

        renders: list[LayerRender] = []
        relevancy_by_frame: dict[int, Optional[torch.Tensor]] = {}
        for crop in sample.frame_crops:
            # bilinear at the crop's uvs, border-clamped; values clamped to [0, 1]
            sampled = sample_atlas(atlas_stack, crop.uv, self.layer, self.video.resolution,
                                   sample.atlas_box).clamp(0, 1)
            layers = EditLayers(edit=sampled[:, 0:3], alpha=sampled[:, 3:4], greenscreen=sampled[:, 4:7],
                                composite=sampled[:, 7:10])
            relevancy = sampled[:, 13:14] if sample.atlas_relevancy is not None else None
            relevancy_by_frame[crop.frame] = relevancy
            renders.append(as_seen_in_frames(sampled[:, 10:13], layers, crop.nla_alpha if foreground else None,
                                             relevancy))

        # one original frame crop straight through the generator: the edit must also hold on real
        # pixels, not only on the atlas's resampled ones
        if sample.direct_crop is not None:
            crop = sample.direct_crop
            layers = composite_layers(self._generate(generator, crop.image, sample.flipped), crop.image)
            renders.append(as_seen_in_frames(crop.image, layers, crop.nla_alpha if foreground else None,
                                             relevancy_by_frame[crop.frame]))
        if sample.flipped:  # "flip everything together": the frame-space renders too
            renders = [render.flipped() for render in renders]

        if sample.whole_atlas:  # the whole (cropped) atlas, untouched, as one more sample
            whole = self.video.atlas_image
            layers = composite_layers(self._generate(generator, whole, False), whole)
            renders.append(LayerRender(whole, layers, self.atlas_relevancy))
        return renders

    # ------------------------------------------------------------------ rendering
    @torch.no_grad()
    def render_atlas(self) -> EditLayers:
        """The generator on the whole (cropped) atlas (batch statistics, buffers untouched):
        the edited atlas as ``(1, C, h, w)`` layers."""
        with batch_statistics_without_update(self.generator):
            rgba = self._generate(self.generator, self.video.atlas_image, False)
        return composite_layers(rgba, self.video.atlas_image)

    @torch.no_grad()
    def frame_edit(self, atlas_layers: EditLayers, frames: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The atlas edit in frame space for some frames, at the atlas's frame size.

        Returns:
            edit ``(B, 3, H, W)`` and its visible opacity ``(B, 1, H, W)``: the edit alpha times the
            NLA alpha (foreground) or times 1 - NLA alpha (background). Then
            ``(1 - visible) * original + visible * edit`` equals ATLAS.md's
            ``NLA alpha * fg layer + (1 - NLA alpha) * bg layer`` with the edited layer
            ``(1 - a) * original + a * edit`` and the other layer the original frames.
        """
        video = self.video
        frames = list(frames)
        rgba = torch.cat([atlas_layers.edit, atlas_layers.alpha], dim=1)[0]
        sampled = sample_atlas(rgba, video.maps.uv(self.layer)[frames], self.layer, video.resolution,
                               video.atlas_box).clamp(0, 1)
        edit, alpha = sampled[:, :3], sampled[:, 3:4]
        nla_alpha = video.maps.alpha[frames].to(alpha.dtype)
        visible = nla_alpha * alpha if self.layer == "foreground" else (1 - nla_alpha) * alpha
        return edit, visible

    @torch.no_grad()
    def render(self, frames: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Edited frames ``(B, 3, H, W)`` at the atlas's frame size (all frames by default)."""
        frames = range(self.video.num_frames) if frames is None else frames
        edit, visible = self.frame_edit(self.render_atlas(), frames)
        original = self.video.frames[list(frames)]
        return (1 - visible) * original + visible * edit

    # ---------------------------------------------------------------- checkpoints
    def extra_state(self) -> dict:
        return {"layer": self.layer}

    def check_state(self, state: dict) -> None:
        if state.get("layer", self.layer) != self.layer:
            raise RunError(f"the checkpoint edits the {state['layer']} layer, not the {self.layer} layer "
                           "(do not override layer when resuming)")


# ------------------------------------------------------------------------- inputs
def load_atlas_for_video(cfg, video: Video, device: torch.device, log=print) -> tuple[NeuralAtlas, torch.Tensor]:
    """Load the NLA checkpoint and match the video to it.

    Returns:
        The atlas (on ``device``) and the frames ``(N, 3, H, W)`` at the atlas's size (resized
        when the video's size differs, with a note).

    Raises:
        atlas.AtlasCheckpointError: missing or mismatched checkpoint (a user error).
        InputError: the frame count differs from the atlas's; the message has both numbers and
            the key that fixes it.
    """
    atlas = NeuralAtlas.from_nla_checkpoint(cfg.atlas.checkpoint, device=device,
                                            num_frames=cfg.atlas.num_frames or None)
    config_path = Path(cfg.atlas.checkpoint) / "config.json"
    count, expected = video.num_frames, atlas.num_frames
    if count > expected:
        raise InputError(f"the video has {count} frames but the atlas was fitted on {expected} "
                         f"(maximum_number_of_frames in {config_path}): pass video.max_frames={expected} "
                         f"to edit its first {expected} frames")
    if count < expected:
        raise InputError(f"the video has {count} frames but the atlas expects {expected} "
                         f"(maximum_number_of_frames in {config_path}): give the whole video the atlas was "
                         f"fitted on, or, if it was fitted on exactly these {count} frames (NLA normalises time "
                         f"by min(maximum_number_of_frames, frames)), pass atlas.num_frames={count}")
    frames = video.frames
    if (video.width, video.height) != (atlas.width, atlas.height):
        log(f"note: the frames are {video.width}x{video.height} but the atlas was fitted at "
            f"{atlas.width}x{atlas.height}: the edit is trained on frames resized to {atlas.width}x{atlas.height} "
            f"and composited back at {video.width}x{video.height}")
        frames = F.interpolate(frames, size=(atlas.height, atlas.width), mode="bilinear", align_corners=False,
                               antialias=True).clamp(0, 1)
    return atlas, frames


def sampled_reconstruction_psnr(atlas: NeuralAtlas, frames: torch.Tensor, count: int = 20000,
                                seed: int = 0) -> float:
    """PSNR (dB) of the NLA reconstruction against ``frames`` ``(N, 3, H, W)`` on ``count`` random
    pixels: a cheap check that the atlas belongs to the video (a full pass costs minutes)."""
    n, _, height, width = frames.shape
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, n * height * width, (count,), generator=generator)
    t, within = index // (height * width), index % (height * width)
    y, x = within // width, within % width
    with torch.no_grad():
        predicted = atlas.query(x.float(), y.float(), t.float()).reconstruction.float().cpu()
    target = frames.cpu()[t, :, y, x].float()
    return reconstruction_psnr(predicted, target)


# ------------------------------------------------------------------------- outputs
OUTPUT_VIDEO = "edited.mp4"
OUTPUT_GREENSCREEN = "edit_on_greenscreen.mp4"
OUTPUT_COMPARISON = "comparison.mp4"


def write_video_outputs(run_dir: Path, editor: VideoEditor, original: torch.Tensor, fps: float, crf: int = 18,
                        batch_size: int = 8, progress: bool = True) -> dict:
    """The final render, streamed to disk a batch of frames at a time.

    Writes ``edited.mp4``, ``frames/00000.png``..., ``edit_on_greenscreen.mp4``,
    ``comparison.mp4`` (input | edited), and in atlas space ``atlas.png`` (the input atlas crop),
    ``edited_atlas.png`` (RGBA: the edit layer on the atlas) and ``edited_atlas_composite.png``.

    Args:
        original: ``(N, 3, H', W')`` the input video at its own size (CPU is fine); when it
            differs from the atlas's size, the frame-space edit is resized to it and composited
            over the untouched input.

    Returns:
        Timing figures (seconds).
    """
    device = editor.device
    start = time.perf_counter()
    atlas_layers = editor.render_atlas()
    save_png(editor.video.atlas_image, run_dir / "atlas.png")
    save_png(torch.cat([atlas_layers.edit, atlas_layers.alpha], dim=1), run_dir / "edited_atlas.png")
    save_png(atlas_layers.composite, run_dir / "edited_atlas_composite.png")
    atlas_seconds = time.perf_counter() - start

    count, _, height, width = original.shape
    resize = (height, width) != tuple(editor.video.frames.shape[-2:])
    bar = tqdm(total=count, disable=not progress, desc="render", unit="frame", dynamic_ncols=True)
    writers = [VideoWriter(run_dir / OUTPUT_VIDEO, width, height, fps, crf),
               VideoWriter(run_dir / OUTPUT_GREENSCREEN, width, height, fps, crf),
               VideoWriter(run_dir / OUTPUT_COMPARISON, 2 * width + 4, height, fps, crf)]
    try:
        for first in range(0, count, batch_size):
            frames = list(range(first, min(first + batch_size, count)))
            edit, visible = editor.frame_edit(atlas_layers, frames)
            if resize:
                edit = F.interpolate(edit, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
                visible = F.interpolate(visible, size=(height, width), mode="bilinear",
                                        align_corners=False).clamp(0, 1)
            source = original[frames].to(device)
            edited = (1 - visible) * source + visible * edit
            greenscreen = visible * edit + (1 - visible) * green_screen_like(edit)
            writers[0].write(edited)
            writers[1].write(greenscreen)
            for index, frame in zip(frames, edited):
                save_png(frame, run_dir / "frames" / f"{index:05d}.png")
                writers[2].write(side_by_side(source[index - first:index - first + 1], frame[None]))
            bar.update(len(frames))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    finally:
        bar.close()
    for writer in writers:
        writer.close()
    return {"render_atlas_seconds": round(atlas_seconds, 3),
            "render_seconds": round(time.perf_counter() - start, 3)}


# ---------------------------------------------------------------------------- the API
def _video_name(path: Path) -> str:
    """Run-folder stem: the file stem, or the folder name (its parent's for generic names like frames/)."""
    path = path.resolve() if path.name in ("", ".", "..") else path
    if path.is_dir() and path.name.lower() in ("frames", "images", "rgb", "jpegimages") and path.parent.name:
        return path.parent.name
    return path.stem or "video"


def edit_video(config_path: str | Path | None = None, overrides: Sequence[str] = (),
               resume: str | Path | None = None, base_config: str | Path | None = None,
               clip: ClipGuide | None = None, progress: bool = True, log=print) -> VideoEditResult:
    """Run (or resume) one video edit and write its run folder. Returns the result.

    `overrides` are `key=value` dotlist entries; with `resume`, the run folder's saved config
    is loaded and `overrides` apply on top (e.g. `steps=4000` to train longer).
    """
    cfg, resume = load_run_config(VideoEditConfig, config_path, overrides, resume, base_config, VIDEO_CHOICES)
    if OmegaConf.is_missing(cfg.video, "frames") or not cfg.video.frames:
        raise RunError("no input video: pass video.frames=path/to/frames_folder (or a .mp4/.mov file)")
    if OmegaConf.is_missing(cfg.atlas, "checkpoint") or not cfg.atlas.checkpoint:
        raise RunError("no atlas: pass atlas.checkpoint=path/to/nla_folder (holding 'checkpoint' and 'config.json')")
    check_texts(cfg)
    device = select_device(cfg.device)

    video, notes = read_video(cfg.video.frames, cfg.video.max_frames)
    for note in notes:
        log(f"note: {note}")
    atlas, frames = load_atlas_for_video(cfg, video, device, log)
    fps = float(cfg.video.fps or video.fps or FOLDER_FPS)
    if fps <= 0:
        raise RunError(f"video.fps must be positive, got {cfg.video.fps}")
    psnr = sampled_reconstruction_psnr(atlas, frames)
    log(f"NLA reconstruction of the input: {psnr:.1f} dB PSNR (random pixels)")
    if psnr < 20:
        log("note: the atlas reconstructs this video poorly; is it the atlas fitted on these frames?")
    owns_clip = clip is None
    if owns_clip:
        clip = ClipGuide.load(cfg.clip.model, device)
    clip = clip.to(device)

    torch.manual_seed(cfg.seed)
    prepare_start = time.perf_counter()
    atlas_video = prepare_atlas_video(atlas, frames, cfg.layer, cfg.atlas, cfg.generator.num_scales, device,
                                      progress=progress)
    prepare_seconds = time.perf_counter() - prepare_start
    del atlas  # the maps and the baked atlas crop are all the edit needs
    skipped = atlas_video.num_frames - len(atlas_video.frames_with_box)
    if skipped:
        log(f"note: {skipped} of {atlas_video.num_frames} frames have no foreground with NLA alpha > "
            f"{cfg.atlas.alpha_threshold}; they give no training crops (and get no visible edit)")
    editor = VideoEditor(cfg, atlas_video, clip, device)
    if owns_clip:
        clip.release_text_model()  # every text is embedded by now: free its weights
    if resume is not None:
        run_dir = resume
        editor.resume(run_dir, log)
    else:
        stem = _video_name(Path(cfg.video.frames))
        run_dir = make_run_dir(cfg.output_dir, cfg.run_name or timestamped(f"{stem}-{cfg.layer}"))
        (run_dir / CONFIG_NAME).write_text(to_yaml(cfg))
        if editor.atlas_relevancy is not None:
            save_png(editor.atlas_relevancy, run_dir / "atlas_relevancy.png")

    def snapshot() -> torch.Tensor:
        layers = editor.render_atlas()
        return side_by_side(editor.video.atlas_image, layers.composite, layers.greenscreen)

    first_step = editor.step
    train_seconds = editor.train(run_dir, progress, snapshot)

    timings = write_video_outputs(run_dir, editor, video.frames, fps, cfg.crf, cfg.render_batch, progress)
    trained = editor.step - first_step
    summary = {
        "frames": video.num_frames, "width": video.width, "height": video.height, "fps": fps,
        "atlas_width": atlas_video.frames.shape[-1], "atlas_height": atlas_video.frames.shape[-2],
        "layer": cfg.layer, "steps": editor.step, "atlas_box": list(map(int, (
            atlas_video.atlas_box.left, atlas_video.atlas_box.top, atlas_video.atlas_box.right,
            atlas_video.atlas_box.bottom))),
        "frames_without_foreground": skipped,
        "reconstruction_psnr_db": round(psnr, 2) if math.isfinite(psnr) else None,
        "prepare_seconds": round(prepare_seconds, 3),
        "seconds_per_step": round(train_seconds / trained, 3) if trained else None, **timings,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"wrote {run_dir}")
    return VideoEditResult(run_dir=run_dir, frames=video.num_frames, steps=editor.step, summary=summary)
