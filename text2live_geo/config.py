"""Typed configuration: dataclasses turned into omegaconf structured configs.

Every field is typed, so an unknown or mistyped key, or a value of the wrong type, fails at
load time with the key's name (`ConfigError`). YAML files and `key=value` CLI dotlists are
merged over the dataclass defaults in that order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or override is wrong; the message names the key."""


@dataclass
class TextConfig:
    """What the input shows (`src`), what the result should show (`comp`), what the edit
    layer alone shows over a green screen (`screen`), and the text whose CLIP relevancy map
    bootstraps the alpha (`bootstrap`; empty disables the bootstrap loss)."""

    src: str = "horse"
    comp: str = "golden horse"
    screen: str = "golden horse"
    bootstrap: str = ""
    templates_per_step: int = 4  # random subset of the templates used each step


@dataclass
class ClipConfig:
    """CLIP guidance model and its views."""

    model: str = "openai/clip-vit-base-patch32"  # hub id or local folder (save_pretrained layout)
    view_size: Optional[int] = None  # short side of CLIP views; None: the model's image_size (224)
    max_view_ratio: float = 320 / 224  # long side <= ratio * short side
    structure_size: Optional[int] = None  # short side for structure tokens; None: view_size
    max_structure_ratio: float = 380 / 224
    n_aug: int = 16  # views per image per step (view 0 is the whole image)
    crop_min: float = 0.6  # views 1.. crop this fraction (to 1) of each side
    fill: str = "white"  # colour revealed by affine/perspective warps: white | black
    checkpoint_chunk: int = 0  # >0: activation checkpointing of CLIP views in chunks (less memory)
    memory_efficient: bool = True  # fused MLP tails in the view forward: same values, ~28 % less graph memory
    # activation checkpointing of the first N vision layers in the view forward (less memory,
    # a little slower); None: 3/4 of the layers on CPU (where memory is scarce), none on CUDA
    checkpoint_layers: Optional[int] = None


@dataclass
class GeneratorConfig:
    """Deep-Image-Prior style skip U-Net predicting RGBA."""

    num_scales: int = 7
    channels: int = 128
    skip_channels: int = 4
    decorrelated_rgb: bool = True
    alpha_bias_init: float = 0.0  # initial alpha logit bias (0: reference; < 0: start nearly transparent)
    checkpoint_levels: int = 0  # >0: recompute the merges of this many top levels in the backward (less memory)
    memory_efficient: bool = True  # fused blocks: same function, ~1/3 of the activation memory, ~10 % slower on CPU


@dataclass
class LossConfig:
    """Loss weights and options (see README "Losses")."""

    guidance: str = "geodesic"  # directional (Text2LIVE) | geodesic (IMC + IMR, Oh et al.)
    distance: str = "spherical"  # spherical | cosine, for composition and screen
    composition: float = 1.0
    directional: float = 1.0  # weight of the directional loss, or of IMC under geodesic
    imr: float = 1.0  # weight of IMR (geodesic guidance only)
    imr_anchor: str = "previous"  # previous (frozen generator of the last step) | source
    gfk_solver: str = "hogsvd"  # hogsvd (reference numerics) | exact (closed form)
    gfk_null_dim: int = 256
    gfk_max_subspace_dim: int = 128
    screen: float = 1.0
    structure: float = 2.0
    sparsity: float = 6.0
    sparsity_l1: float = 0.01
    sparsity_l0: float = 0.01
    bootstrap: float = 10.0  # annealed linearly to 0 over bootstrap_steps
    bootstrap_steps: int = 1000


@dataclass
class OptimConfig:
    name: str = "madgrad"  # madgrad | adam
    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 0.01
    lr_decay: float = 0.99  # lr *= lr_decay each step
    min_lr: float = 1e-5


@dataclass
class CropConfig:
    """Internal dataset: the random crop of the input the generator sees each step."""

    resize_short: int = 512  # input resized so its short side is this (0: keep)
    crop_min: float = 0.85
    scale_min: float = 0.8
    scale_max: float = 1.2
    flip_p: float = 0.5
    jitter: float = 0.1
    jitter_p: float = 0.1
    full_image_every: int = 75


@dataclass
class ImageEditConfig:
    """One image edit. `mode`: generator (layered edit) | inversion (optimise pixels)."""

    image: str = MISSING
    mode: str = "generator"
    text: TextConfig = field(default_factory=TextConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    crops: CropConfig = field(default_factory=CropConfig)
    steps: int = 1000
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16
    output_dir: str = "runs"
    run_name: str = ""  # folder name under output_dir; empty: <image stem>-<timestamp>
    log_every: int = 100  # snapshot PNGs every this many steps
    checkpoint_every: int = 100


CHOICES = {
    "mode": ("generator", "inversion"),
    "loss.guidance": ("directional", "geodesic"),
    "loss.distance": ("spherical", "cosine"),
    "loss.imr_anchor": ("previous", "source"),
    "loss.gfk_solver": ("hogsvd", "exact"),
    "optim.name": ("madgrad", "adam"),
    "precision": ("fp32", "bf16", "fp16"),
    "clip.fill": ("white", "black"),
}


def _check_choices(cfg: Any, choices: dict[str, Sequence[str]]) -> None:
    for key, allowed in choices.items():
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in allowed:
            raise ConfigError(f"config key '{key}' is '{value}', expected one of: {', '.join(allowed)}")


def load_config(schema: type, config_path: str | Path | None = None, overrides: Sequence[str] = (),
                choices: dict[str, Sequence[str]] | None = None, base_path: str | Path | None = None):
    """Merge `base_path`, then `config_path` (YAML), then `key=value` overrides over `schema`.

    Returns a structured (typed) DictConfig. Raises ConfigError naming the offending key.
    """
    cfg = OmegaConf.structured(schema)
    try:
        for path in (base_path, config_path):
            if path is None:
                continue
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override '{item}' is not of the form key=value")
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or getattr(error, "key", None)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"bad config key '{key}': {reason}" if key else f"bad config: {reason}") from None
    _check_choices(cfg, CHOICES if choices is None else choices)
    return cfg


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(cfg)


# ------------------------------------------------------------------------------ video
@dataclass
class VideoInputConfig:
    """The input video: a folder of frames (sorted by file name) or a video file."""

    frames: str = MISSING  # folder of frames (.png/.jpg/...) or a video file (.mp4/.mov/...) read with imageio-ffmpeg
    max_frames: int = 0  # keep only the first max_frames frames (0: all)
    fps: Optional[float] = None  # output frame rate; None: the input video's, or 10 for a frames folder


@dataclass
class AtlasInputConfig:
    """The neural layered atlas (public NLA checkpoint folder) and how it is baked and cropped."""

    checkpoint: str = MISSING  # NLA folder holding `checkpoint` and `config.json`
    num_frames: int = 0  # N for NLA's time normalisation; 0: maximum_number_of_frames of config.json
    resolution: int = 2000  # side R of the baked atlas image
    alpha_threshold: float = 0.95  # foreground pixels: NLA alpha above this
    box_border: int = 30  # foreground frame boxes grow by this many pixels per side
    chunk_size: int = 65536  # pixels per atlas-network evaluation (lower it if memory is short)


@dataclass
class AtlasCropConfig:
    """Internal dataset of a video edit: frame crops and the atlas crop covering them."""

    frame_gap: int = 2  # a step uses frames {t - gap, t, t + gap}
    crop_min: float = 0.95  # each frame crop covers crop_min..1 of its frame box per side
    flip_p: float = 0.5
    jitter: float = 0.1
    jitter_p: float = 0.1
    full_atlas_every: int = 75  # add the whole (cropped) atlas as a sample every this many steps (0: never)
    direct_frame: bool = True  # also send one original frame crop through the generator


@dataclass
class VideoEditConfig:
    """One video edit on a neural layered atlas (Text2LIVE video recipe, ATLAS.md section 3).

    `layer`: foreground | background, the atlas layer the generator edits.
    """

    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    atlas: AtlasInputConfig = field(default_factory=AtlasInputConfig)
    layer: str = "foreground"
    text: TextConfig = field(default_factory=TextConfig)
    clip: ClipConfig = field(default_factory=lambda: ClipConfig(n_aug=6, fill="black"))
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: LossConfig = field(default_factory=lambda: LossConfig(
        structure=3.0, sparsity=0.1, sparsity_l1=0.01, sparsity_l0=0.005))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr_decay=0.999))
    crops: AtlasCropConfig = field(default_factory=AtlasCropConfig)
    steps: int = 3000
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16
    output_dir: str = "runs"
    run_name: str = ""  # folder name under output_dir; empty: <video stem>-<layer>-<timestamp>
    log_every: int = 100  # atlas snapshot PNGs every this many steps (0: never)
    checkpoint_every: int = 100
    render_batch: int = 8  # frames composited at once in the final render
    crf: int = 18  # H.264 quality of the mp4 outputs (lower: better, larger)


VIDEO_CHOICES = {
    **{key: allowed for key, allowed in CHOICES.items() if key != "mode"},
    "layer": ("foreground", "background"),
}
