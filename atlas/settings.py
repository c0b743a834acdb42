"""The atlas package's own settings: the input clip, fitting an atlas, and one fitting run
(`t2l-atlas`). Typed dataclasses loaded with `text2live_geo.common.config.load_config`; the
editing library reuses `VideoInputConfig` and `FitConfig` inside its video edit config."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from text2live_geo.common.config import Choice, LegacyKey
from text2live_geo.common.media_files import DEFAULT_FRAME_LIMIT, DEFAULT_MAX_IMAGE_PIXELS

__all__ = ["AtlasModel", "AtlasRunConfig", "FIT_LEGACY_KEYS", "FitConfig", "FlowPreset", "VideoInputConfig"]


@dataclass
class VideoInputConfig:
    """The input video: a folder of frames (sorted by file name) or a video file."""

    frames: str = ""  # (required) a folder of frames (.png/.jpg/...) or a video file (.mp4/.mov/...)
    max_frames: int = 0  # keep only the first max_frames frames (0: all)
    fps: float | None = None  # output frame rate; None: the input video's, or 10 for a frames folder
    long_side: int = 768  # atlas fitting: frames downscaled so their longer side is at most this (NLA: 768 x 432)
    # memory grows with the frames kept, so a longer clip is refused before it is decoded (2000: ~67 s at 30 fps)
    frame_limit: int = DEFAULT_FRAME_LIMIT  # refuse a clip keeping more frames than this (0: no limit); see max_frames
    # 200 MP admits any camera's photos and 8K video (33 MP); frames are read one at a time, resized as read
    max_frame_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # refuse frames over this many pixels, w x h (0: no limit)


class AtlasModel(Choice):
    grid = "grid"  # ours: per-frame motion + residual grids + dense textures (minutes)
    nla = "nla"  # NLA's four MLPs with positional encoding (the reference recipe: hours)


class FlowPreset(Choice):
    ultrafast = "ultrafast"
    fast = "fast"
    medium = "medium"


@dataclass
class FitConfig:
    """Fitting a layered atlas to a clip (docs/atlas_fitting.md). The defaults are our fast
    recipe; configs/atlas/nla.yaml expresses NLA's recipe with the same keys."""

    iterations: int = 2000  # optimisation steps
    masks: str = ""  # folder of foreground masks (one PNG per frame, nonzero = foreground); empty: from motion
    layers: int = 2  # 2: foreground + background; 1: background only
    model: AtlasModel = AtlasModel.grid
    samples: int = 16384  # random pixels per iteration
    flow_preset: FlowPreset = FlowPreset.medium  # OpenCV DIS optical flow preset
    # learning rates (Adam)
    lr_textures: float = 0.05  # grid model: textures
    lr_grids: float = 0.01  # grid model: residual and alpha grids
    lr_transforms: float = 3e-4  # grid model: per-frame homographies / affine maps
    lr_networks: float = 1e-4  # nla model: every network
    lr_decay: float = 0.1  # learning rates fall (cosine) to this fraction by the last iteration
    # loss weights (docs/atlas_fitting.md, "Losses")
    rgb: float = 1.0  # reconstruction MSE
    gradient: float = 0.0  # MSE of the reconstruction's finite differences against the frame's
    flow: float = 1e-4  # uv consistency along the optical flow (pixel units, alpha-weighted)
    alpha_flow: float = 0.01  # alpha consistency along the optical flow
    mask_loss: float = 0.05  # BCE of alpha against the masks, until mask_loss_until (NLA's alpha bootstrapping)
    mask_loss_until: int = 1000
    sparsity: float = 0.0  # foreground colour where alpha is low (NLA)
    rigidity: float = 0.0  # local rigidity of the mappings (NLA), finite differences of derivative_px
    global_rigidity: float = 0.0  # rigidity over global_derivative_px, until global_rigidity_until
    global_rigidity_background: float = 0.0
    global_rigidity_until: int = 5000
    derivative_px: float = 1.0
    global_derivative_px: float = 100.0
    smoothness: float = 1e-3  # grid model: total variation of the residual grids and the alpha grid
    pretrain_per_frame: int = 0  # nla model: mapping pre-training steps towards uv = 0.8 (x, y), per frame (NLA: 100)
    # grid model sizes
    texel_density: float = 1.0  # texels per frame pixel at the finest scale the clip shows
    max_texture: int = 2048
    residual_cells: int = 16
    residual_frames: int = 8
    alpha_downscale: int = 2
    # nla model sizes (NLA: 256 wide; mapping layers 6 / 4; atlas 8 layers, 10 frequencies; alpha 8, 5)
    nla_width: int = 256
    eval_every: int = 100  # PSNR on a fixed pixel subset every this many iterations
    eval_pixels: int = 65536


@dataclass
class AtlasRunConfig:
    """One atlas fit (run_atlas.py / t2l-atlas)."""

    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output_dir: str = "runs"
    run_name: str = ""  # folder name under output_dir; empty: <clip stem>-atlas-<timestamp>
    checkpoint_every: int = 500  # iterations between checkpoints (0: only at the end)
    crf: int = 18  # H.264 quality of the preview mp4s

    LEGACY_KEYS: ClassVar[tuple[LegacyKey, ...]]


#: FitConfig keys renamed ("bootstrap" is the edit's relevancy bootstrap; here it was the mask loss)
FIT_LEGACY_KEYS = (LegacyKey("bootstrap", "mask_loss"), LegacyKey("bootstrap_until", "mask_loss_until"))
AtlasRunConfig.LEGACY_KEYS = tuple(LegacyKey(f"fit.{key.old}", f"fit.{key.new}") for key in FIT_LEGACY_KEYS)


