"""The input of a video edit: the NLA checkpoint matched to the video, a cheap check that they
belong together, and the per-run precompute (uv maps, regions worth editing, the baked atlas crop)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from atlas import (
    Layer,
    LayeredAtlas,
    NeuralAtlas,
    NoForegroundError,
    layer_crop_regions,
    reconstruction_psnr,
    suggested_resolution,
)

from ..config import AtlasInputConfig, VideoEditConfig
from ..data.atlas_crops import AtlasVideo
from ..io import InputError
from ..video_io import Video
from .run import RunError

__all__ = ["load_atlas_for_video", "prepare_atlas_video", "sampled_reconstruction_psnr"]


logger = logging.getLogger(__name__)


def load_atlas_for_video(cfg: VideoEditConfig, video: Video, device: torch.device) -> tuple[NeuralAtlas, torch.Tensor]:
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
        logger.info(f"note: the frames are {video.width}x{video.height} but the atlas was fitted at "
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


def prepare_atlas_video(atlas: LayeredAtlas, frames: torch.Tensor, layer: Layer, atlas_cfg: AtlasInputConfig,
                        num_scales: int, device: torch.device, progress: bool = False) -> AtlasVideo:
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
    if 0 < atlas_cfg.resolution < min_size:
        raise RunError(f"atlas.resolution={atlas_cfg.resolution} is below the generator's minimum side {min_size}")
    maps = atlas.precompute_maps(device, chunk_size=atlas_cfg.chunk_size, progress=progress)
    resolution = atlas_cfg.resolution or max(min_size, suggested_resolution(maps, layer))
    try:
        regions = layer_crop_regions(maps, layer, resolution, num_scales, atlas_cfg.alpha_threshold,
                                     atlas_cfg.box_border)
    except NoForegroundError as error:
        raise RunError(f"{error} (lower atlas.alpha_threshold, or edit layer=background)") from None
    # a thin region (a nearly static layer) is padded so the generator can run on it
    atlas_box = regions.atlas_box.padded_to(min_size, resolution, resolution)
    atlas_image = atlas.bake(layer, resolution, device=device, chunk_size=atlas_cfg.chunk_size,
                             box=atlas_box, progress=progress)[None]
    return AtlasVideo(frames=frames.to(device), maps=maps, layer=layer, resolution=resolution,
                      frame_boxes=regions.frame_boxes, atlas_box=atlas_box, atlas_image=atlas_image)
