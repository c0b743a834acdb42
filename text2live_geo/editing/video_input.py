"""The input of a video edit: the layered atlas (fitted by run_atlas.py, fitted now and cached, or a
public NLA checkpoint) matched to the video, a cheap check that they belong together, and the
per-run precompute (uv maps, regions worth editing, the baked atlas crop)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from atlas import (
    CompactAtlasMaps,
    Layer,
    LayeredAtlas,
    NoForegroundError,
    frame_uv_extents,
    layer_crop_regions,
    reconstruction_psnr,
    region_pixels,
    resolution_within,
    suggested_resolution,
)
from atlas.format import RUN_ATLAS_FOLDER, load_atlas
from atlas.nla_format import CHECKPOINT_FILENAME, CONFIG_FILENAME

from ..common.io import InputError
from ..common.runs import RunError
from ..common.video_io import Video, VideoStream, frames_as_float, frames_as_uint8, resize_frames
from ..config import AtlasInputConfig, VideoEditConfig
from ..data.atlas_crops import AtlasVideo
from ..generator import min_input_size

__all__ = ["ATLAS_CACHE_FOLDER", "fitted_atlas_for_video", "load_atlas_for_video", "prepare_atlas_video",
           "sampled_reconstruction_psnr"]

#: atlases fitted for edits that name none go here, under output_dir (atlas.cache_dir overrides it)
ATLAS_CACHE_FOLDER = ".atlas_cache"


logger = logging.getLogger(__name__)


def fitted_atlas_for_video(cfg: VideoEditConfig, progress: bool = True,
                           should_stop: Callable[[], bool] | None = None) -> Path:
    """The atlas of an edit that names none (``atlas.checkpoint`` empty): fitted to the clip with the
    ``fit.*`` keys and ``video.long_side``, by the code of run_atlas.py, and cached in
    ``atlas.cache_dir`` (default ``<output_dir>/.atlas_cache``) by the clip's content and the fit
    settings, so a second edit of the clip reuses it. Returns the atlas run folder."""
    from atlas.fitting.run import cached_fit  # atlas.fitting.run imports the editing package's run plumbing

    cache = Path(cfg.atlas.cache_dir) if cfg.atlas.cache_dir else Path(cfg.output_dir) / ATLAS_CACHE_FOLDER
    return cached_fit(cfg.video, cfg.fit, cfg.seed, cfg.device, cache, crf=cfg.crf, progress=progress,
                      should_stop=should_stop)


def _is_nla_folder(path: Path) -> bool:
    """A public NLA checkpoint folder (rather than our format or a run_atlas.py run folder)."""
    return (path / CHECKPOINT_FILENAME).is_file() and not (path / RUN_ATLAS_FOLDER).is_dir()


def load_atlas_for_video(cfg: VideoEditConfig, video: Video | VideoStream, device: torch.device,
                         path: str | Path | None = None) -> tuple[LayeredAtlas, torch.Tensor]:
    """Load the atlas (:func:`atlas.format.load_atlas`: our format, a run_atlas.py run folder or a
    public NLA checkpoint) and match the video to it.

    Args:
        video: the video read, or a :class:`VideoStream` opened on it: then it is decoded now,
            each frame resized to the atlas's size as it arrives, so the clip is never held at
            its own size.
        path: the atlas; None: ``cfg.atlas.checkpoint``.

    Returns:
        The atlas (on ``device``) and the frames ``(N, 3, H, W)`` uint8 (0..255) at the atlas's size
        (resized when the video's size differs, with a note): 8 bits like the decoded clip, a quarter
        of float32's memory (0.28 GiB instead of 1.1 GiB for 300 frames of 768 x 432), which the
        edit holds for its whole run.

    Raises:
        atlas.AtlasCheckpointError: missing or mismatched checkpoint (a user error).
        InputError: the frame count differs from the atlas's; the message has both numbers and
            the key that fixes it.
    """
    path = Path(path if path is not None else cfg.atlas.checkpoint)
    atlas = load_atlas(path, device=device, num_frames=cfg.atlas.num_frames or None)
    if isinstance(video, VideoStream):
        video = video.read((atlas.height, atlas.width), eight_bit=True)
    count, expected = video.num_frames, atlas.num_frames
    if _is_nla_folder(path):
        config_path = path / CONFIG_FILENAME
        if count > expected:
            raise InputError(f"the video has {count} frames but the atlas was fitted on {expected} "
                             f"(maximum_number_of_frames in {config_path}): pass video.max_frames={expected} "
                             f"to edit its first {expected} frames")
        if count < expected:
            raise InputError(f"the video has {count} frames but the atlas expects {expected} "
                             f"(maximum_number_of_frames in {config_path}): give the whole video the atlas was "
                             f"fitted on, or, if it was fitted on exactly these {count} frames (NLA normalises "
                             f"time by min(maximum_number_of_frames, frames)), pass atlas.num_frames={count}")
    elif count > expected:
        raise InputError(f"the video has {count} frames but the atlas in '{path}' was fitted on {expected}: "
                         f"pass video.max_frames={expected} to edit its first {expected} frames")
    elif count < expected:
        raise InputError(f"the video has {count} frames but the atlas in '{path}' was fitted on {expected}: "
                         f"give the clip it was fitted on (with the video.max_frames it was fitted with)")
    source_height, source_width = video.source_size
    if (source_width, source_height) != (atlas.width, atlas.height):
        logger.info(f"note: the frames are {source_width}x{source_height} but the atlas was fitted at "
            f"{atlas.width}x{atlas.height}: the edit is trained on frames resized to {atlas.width}x{atlas.height} "
            f"and composited back at {source_width}x{source_height}")
    return atlas, frames_as_uint8(resize_frames(video.frames, (atlas.height, atlas.width)))


def sampled_reconstruction_psnr(atlas: LayeredAtlas, frames: torch.Tensor, count: int = 20000,
                                seed: int = 0) -> float:
    """PSNR (dB) of the atlas's reconstruction against ``frames`` ``(N, 3, H, W)`` (uint8, or float in
    [0, 1]) on ``count`` random
    pixels: a cheap check that the atlas belongs to the video (a full pass costs minutes)."""
    n, _, height, width = frames.shape
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, n * height * width, (count,), generator=generator)
    t, within = index // (height * width), index % (height * width)
    y, x = within // width, within % width
    with torch.no_grad():
        predicted = atlas.query(x.float(), y.float(), t.float()).reconstruction.float().cpu()
    target = frames_as_float(frames.cpu()[t, :, y, x])
    return reconstruction_psnr(predicted, target)


def prepare_atlas_video(atlas: LayeredAtlas, frames: torch.Tensor, layer: Layer, atlas_cfg: AtlasInputConfig,
                        num_scales: int, device: torch.device, progress: bool = False) -> AtlasVideo:
    """Precompute uv maps and alpha, the regions worth editing, and bake the layer's atlas crop.

    The atlas side R (``atlas.resolution``; 0: 2 atlas pixels per frame pixel) sets the pixels of the
    atlas region the edit covers, which the generator runs on (its crops in training, all of it in the
    final render), and so its memory (the default generator: about 3 GiB per megapixel of crop in
    training on the CPU, measured; the renders run in row bands, 0.9 GiB per megapixel); how large
    the region is depends on how far the camera and the object move, not only on the frame size.
    Over ``atlas.max_crop_pixels``, R follows the clip lowered until the region fits (with a note),
    or, with an explicit ``atlas.resolution``, the edit stops with one line saying what to set.

    Args:
        atlas: the layered atlas, on ``device``.
        frames: ``(N, 3, H, W)`` input frames at the atlas's size (N, W, H of the atlas), uint8
            (0..255) or float in [0, 1]; held as uint8.
        layer: "foreground" or "background".
        atlas_cfg: an AtlasInputConfig (resolution, max_crop_pixels, alpha_threshold, box_border,
            chunk_size).
        num_scales: generator scales; crops must be at least ``2^num_scales + 1`` pixels.
        device: the run's device.
        progress: tqdm bars for the (long, at full size) precomputes.

    Raises:
        RunError: frames or atlas too small for the generator, a foreground with no pixel
            above the alpha threshold in any frame, or an explicit resolution whose atlas region
            would exceed ``atlas.max_crop_pixels``.
    """
    min_size = min_input_size(num_scales)
    height, width = frames.shape[-2:]
    if min(height, width) < min_size:
        raise RunError(f"frames are {width}x{height} px; the generator needs at least {min_size} px per side "
                       f"(use a smaller generator.num_scales)")
    if 0 < atlas_cfg.resolution < min_size:
        raise RunError(f"atlas.resolution={atlas_cfg.resolution} is below the generator's minimum side {min_size}")
    # the edited layer's uv alone: the edit never looks at the other layer's (0.8 GB less for 300 frames
    # at 768 x 432, held for the whole run)
    maps = atlas.precompute_maps(device, chunk_size=atlas_cfg.chunk_size, progress=progress, layers=(layer,))
    resolution = atlas_cfg.resolution or max(min_size, suggested_resolution(maps, layer))
    try:
        regions = layer_crop_regions(maps, layer, resolution, min_size, atlas_cfg.alpha_threshold,
                                     atlas_cfg.box_border)
    except NoForegroundError as error:
        raise RunError(f"{error} (lower atlas.alpha_threshold, or edit layer=background)") from None
    if atlas_cfg.max_crop_pixels < 0:
        raise RunError(f"atlas.max_crop_pixels must be at least 0 (0: no limit), got {atlas_cfg.max_crop_pixels}")
    if atlas_cfg.max_crop_pixels:
        # the frame boxes are in frame pixels: the same at every R, so the uv extents are measured once
        extents = frame_uv_extents(maps, layer, regions.frame_boxes)
        pixels = region_pixels(extents, resolution)
        if pixels > atlas_cfg.max_crop_pixels:
            if atlas_cfg.resolution:
                raise RunError(f"atlas.resolution={resolution} gives an atlas region of {pixels} pixels to edit, more "
                               f"than atlas.max_crop_pixels={atlas_cfg.max_crop_pixels} (the generator runs on it, and "
                               f"its memory grows with it): set atlas.resolution=0 (follows the clip, within the "
                               f"limit), a lower atlas.resolution, or a higher atlas.max_crop_pixels (0: no limit)")
            lowered = resolution_within(extents, resolution, atlas_cfg.max_crop_pixels, min_size)
            logger.info(f"note: atlas side {resolution} -> {lowered}: at {resolution} the atlas region to edit would "
                        f"have {pixels} pixels, over atlas.max_crop_pixels={atlas_cfg.max_crop_pixels} (raise it, "
                        f"or set atlas.resolution={resolution}, if memory allows)")
            resolution = lowered
            regions = layer_crop_regions(maps, layer, resolution, min_size, atlas_cfg.alpha_threshold,
                                         atlas_cfg.box_border)
    # a thin region (a nearly static layer) is padded so the generator can run on it
    atlas_box = regions.atlas_box.padded_to(min_size, resolution, resolution)
    atlas_image = atlas.bake(layer, resolution, device=device, chunk_size=atlas_cfg.chunk_size,
                             box=atlas_box, progress=progress)[None]
    # held for the whole run but read a few frames at a time: 16-bit uv and alpha, half the memory
    maps = CompactAtlasMaps.from_maps(maps)
    return AtlasVideo(frames=frames_as_uint8(frames).to(device), maps=maps, layer=layer, resolution=resolution,
                      frame_boxes=regions.frame_boxes, atlas_box=atlas_box, atlas_image=atlas_image)
