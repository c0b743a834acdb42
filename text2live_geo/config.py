"""Typed configuration: dataclasses turned into omegaconf structured configs.

Every field is typed, so an unknown or mistyped key, or a value of the wrong type, fails at
load time with the key's name (`ConfigError`). YAML files and `key=value` CLI dotlists are
merged over the dataclass defaults in that order.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or override is wrong; the message names the key."""


class Choice(StrEnum):
    """A config value from a fixed set. Members are named by their value, so YAML files and
    overrides write the plain word (`loss.guidance=geodesic`), omegaconf rejects any other word
    at load with the key's name, and a member compares equal to (and hashes like) its string."""

    def __str__(self) -> str:
        return self.value


class Mode(Choice):
    generator = "generator"  # layered edit: a generator predicts an RGBA edit layer
    inversion = "inversion"  # optimise the pixels directly, no generator


class Guidance(Choice):
    directional = "directional"  # Text2LIVE's directional CLIP loss
    geodesic = "geodesic"  # IMC + IMR (Oh et al.)


class Distance(Choice):
    spherical = "spherical"
    cosine = "cosine"


class TextReduction(Choice):
    mean_distance = "mean_distance"  # mean over templates of the distance to each (reference)
    mean_embedding = "mean_embedding"  # distance to the normalised mean template embedding


class TemplateSampling(Choice):
    subset = "subset"  # text.templates_per_step templates drawn per step, shared by every text term
    reference = "reference"  # each term draws its own 1..all rows at random, with replacement (reference)


class DirectionalPairs(Choice):
    index = "index"  # view i with text direction i mod T
    all = "all"  # every view with every text direction (reference)


class BootstrapSchedule(Choice):
    linear = "linear"  # from loss.bootstrap down to 0 over bootstrap_steps
    constant = "constant"  # loss.bootstrap for bootstrap_steps steps, then 0 (the reference's video "none")


class ImrAnchor(Choice):
    previous = "previous"  # frozen generator of the previous step
    source = "source"  # the input's views


class ImcPairing(Choice):
    published = "published"  # text directions as a batch paired row by row with the views (published fit)
    templates = "templates"  # text subspace fitted on the distinct template directions of the step


class GfkSolver(Choice):
    hogsvd = "hogsvd"  # the published numerics, made deterministic
    exact = "exact"  # closed form


class OptimizerName(Choice):
    madgrad = "madgrad"
    adam = "adam"


class Precision(Choice):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Fill(Choice):
    white = "white"
    black = "black"


class AtlasLayer(Choice):
    foreground = "foreground"
    background = "background"


@dataclass
class TextConfig:
    """What the input shows (`src`), what the result should show (`comp`), what the edit
    layer alone shows over a green screen (`screen`), and the text whose CLIP relevancy map
    bootstraps the alpha (`bootstrap`; empty disables the bootstrap loss).

    `src`, `comp` and `screen` are lists of texts (a single string in a YAML file or a `key=value`
    override is read as a one-text list): every text is embedded under every template; the
    directional / IMC term pairs `src[k]` with `comp[k]` for k < min(len(src), len(comp)), and
    composition and screen use all their texts (docs/text2live.md, "Texts and templates")."""

    src: list[str] = field(default_factory=lambda: ["horse"])
    comp: list[str] = field(default_factory=lambda: ["golden horse"])
    screen: list[str] = field(default_factory=lambda: ["golden horse"])
    bootstrap: str = ""
    templates_per_step: int = 4  # random subset of the templates used each step
    # subset (templates_per_step templates per step) | reference (each term its own random rows)
    template_sampling: TemplateSampling = TemplateSampling.subset


@dataclass
class ClipConfig:
    """CLIP guidance model and its views."""

    model: str = "openai/clip-vit-base-patch32"  # hub id or local folder (save_pretrained layout)
    view_size: int | None = None  # short side of CLIP views; None: the model's image_size (224)
    max_view_ratio: float = 320 / 224  # long side <= ratio * short side (aspect kept: the short side shrinks)
    shared_view_size: bool = False  # all renders of a step at the first one's view size (one CLIP pass each way)
    structure_size: int | None = None  # short side for structure tokens; None: view_size
    max_structure_ratio: float = 380 / 224
    n_aug: int = 16  # views per image per step (view 0 is the whole image)
    paired_views: bool = True  # view i of input, composite, green screen share parameters (false: reference)
    encode_composite_twice: bool = False  # directional terms get their own composite views (true: reference)
    crop_min: float = 0.6  # views 1.. crop this fraction (to 1) of each side
    fill: Fill = Fill.white  # colour revealed by affine/perspective warps
    checkpoint_chunk: int = 0  # >0: activation checkpointing of CLIP views in chunks (less memory)
    memory_efficient: bool = True  # fused MLP tails in the view forward: same values, ~28 % less graph memory
    # activation checkpointing of the first N vision layers in the view forward (less memory,
    # a little slower); None: 3/4 of the layers on CPU (where memory is scarce), none on CUDA
    checkpoint_layers: int | None = None


@dataclass
class GeneratorConfig:
    """Deep-Image-Prior style skip U-Net predicting RGBA."""

    num_scales: int = 7
    channels: int = 128
    skip_channels: int = 4
    decorrelated_rgb: bool = True
    inv_colour_scale: float = 1.6  # decorrelated-colour map: chroma weighs this much more (reference 1.6; 1: unscaled)
    top_norm: bool = False  # batch norm after the top level's final 1x1 conv (the reference has none)
    alpha_bias_init: float = 0.0  # initial alpha logit bias (0: reference; < 0: start nearly transparent)
    checkpoint_levels: int = 0  # >0: recompute the merges of this many top levels in the backward (less memory)
    memory_efficient: bool = True  # fused blocks: same function, ~1/3 of the activation memory, ~10 % slower on CPU


@dataclass
class LossConfig:
    """Loss weights and options (see README "Losses")."""

    guidance: Guidance = Guidance.geodesic  # geodesic (IMC + IMR, Oh et al.) | directional (Text2LIVE)
    distance: Distance = Distance.spherical  # for composition and screen
    # composition / screen over several template embeddings: mean_distance (reference) | mean_embedding
    text_reduction: TextReduction = TextReduction.mean_distance
    composition: float = 1.0
    directional: float = 1.0  # weight of the directional loss, or of IMC under geodesic
    imr: float = 1.0  # weight of IMR (geodesic guidance only)
    imr_anchor: ImrAnchor = ImrAnchor.previous  # previous (frozen generator of the last step) | source (input views)
    # templates (text subspace fitted on the T templates) | published (one text row per view, as the published fit)
    imc_pairing: ImcPairing = ImcPairing.templates
    gfk_solver: GfkSolver = GfkSolver.hogsvd  # hogsvd (published numerics) | exact (closed form)
    gfk_null_dim: int = 256
    gfk_max_subspace_dim: int = 128
    directional_pairs: DirectionalPairs = DirectionalPairs.index  # directional loss: index | all (reference)
    raw_directions: bool = False  # directional loss on unnormalised CLIP embeddings (true: reference)
    screen: float = 1.0
    structure: float = 2.0
    sparsity: float = 6.0
    sparsity_l1: float = 0.01
    sparsity_l0: float = 0.01
    bootstrap: float = 10.0  # weight of the relevancy bootstrap for its first bootstrap_steps steps
    bootstrap_steps: int = 1000
    # linear (to 0 over bootstrap_steps; reference image) | constant (then 0; reference video)
    bootstrap_schedule: BootstrapSchedule = BootstrapSchedule.linear
    relevancy_per_crop: bool = False  # bootstrap target from every render at 224 x 224 (true: reference)


@dataclass
class OptimConfig:
    name: OptimizerName = OptimizerName.madgrad  # madgrad (reference) | adam
    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 0.01
    lr_decay: float = 0.99  # lr *= lr_decay each step
    min_lr: float = 1e-5


@dataclass
class CropConfig:
    """Internal dataset: the random crop of the input the generator sees each step."""

    resize_short: int = 512  # input resized so its short side is at most this (0: keep)
    resize_upscale: bool = False  # also upscale a smaller input to resize_short (true: reference)
    crop_min: float = 0.85
    scale_min: float = 0.8
    scale_max: float = 1.2
    flip_p: float = 0.5
    jitter: float = 0.1
    jitter_p: float = 0.1
    full_image_every: int = 75
    full_image_extra: bool = False  # the whole image is a second render besides the crop (true: reference)


@dataclass
class ImageEditConfig:
    """One image edit. `mode`: generator (layered edit) | inversion (optimise pixels)."""

    image: str = ""  # the input image (required)
    mode: Mode = Mode.generator  # generator (layered edit) | inversion (optimise the pixels)
    text: TextConfig = field(default_factory=TextConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    crops: CropConfig = field(default_factory=CropConfig)
    steps: int = 1000
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = Precision.fp32  # fp32 | bf16 | fp16 (autocast)
    output_dir: str = "runs"
    run_name: str = ""  # folder name under output_dir; empty: <image stem>-<timestamp>
    log_every: int = 100  # snapshot PNGs every this many steps
    checkpoint_every: int = 100


ConfigT = TypeVar("ConfigT")


def load_config(schema: type[ConfigT], config_path: str | Path | Sequence[str | Path] | None = None,
                overrides: Sequence[str] = (), base_path: str | Path | None = None) -> ConfigT:
    """Merge `base_path`, then `config_path` (a YAML file, or several merged in order), then
    `key=value` overrides over `schema`.

    Returns an instance of the dataclass `schema` (typed all the way down: choices are `Choice`
    enums). Raises ConfigError naming the offending key: unknown keys, wrong types and values
    outside a choice's set all fail here, at load.
    """
    cfg = OmegaConf.structured(schema)
    list_keys = string_list_keys(schema)
    try:
        paths = [config_path] if config_path is None or isinstance(config_path, (str, Path)) else list(config_path)
        for path in [base_path, *paths]:
            if path is None:
                continue
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            cfg = OmegaConf.merge(cfg, wrap_scalars(OmegaConf.load(path), list_keys))
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override '{item}' is not of the form key=value")
        if overrides:
            cfg = OmegaConf.merge(cfg, wrap_scalars(OmegaConf.from_dotlist(list(overrides)), list_keys))
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or getattr(error, "key", None)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"bad config key '{key}': {reason}" if key else f"bad config: {reason}") from None


def string_list_keys(schema: type, prefix: str = "") -> list[str]:
    """Dotted keys of the `list[str]` fields of `schema`, nested dataclasses included."""
    keys: list[str] = []
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            keys += string_list_keys(hint, f"{prefix}{item.name}.")
        elif typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
            keys.append(prefix + item.name)
    return keys


_ABSENT = object()


def wrap_scalars(incoming, keys: Sequence[str]):
    """A loaded YAML / dotlist config with a single value at a `list[str]` key read as a one-item
    list (`text.src=horse` means `text.src=[horse]`; an empty value, a list with one empty text)."""
    for key in keys:
        value = OmegaConf.select(incoming, key, default=_ABSENT)
        if value is _ABSENT or OmegaConf.is_list(value):
            continue
        OmegaConf.update(incoming, key, ["" if value is None else str(value)], merge=False)
    return incoming


def to_yaml(cfg: object) -> str:
    """YAML of a config dataclass instance (what `load_config` reads back)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


# ------------------------------------------------------------------------------ video
@dataclass
class VideoInputConfig:
    """The input video: a folder of frames (sorted by file name) or a video file."""

    frames: str = ""  # (required) a folder of frames (.png/.jpg/...) or a video file (.mp4/.mov/...)
    max_frames: int = 0  # keep only the first max_frames frames (0: all)
    fps: float | None = None  # output frame rate; None: the input video's, or 10 for a frames folder
    long_side: int = 768  # atlas fitting: frames downscaled so their longer side is at most this (NLA: 768 x 432)


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
    bootstrap: float = 0.05  # BCE of alpha against the masks, until bootstrap_until
    bootstrap_until: int = 1000
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
class AtlasInputConfig:
    """The layered atlas of the video (fitted by run_atlas.py, or a public NLA checkpoint folder), or
    where the one fitted for the edit is cached, and how it is baked and cropped."""

    checkpoint: str = ""  # run_atlas.py run folder, atlas folder or NLA folder; empty: fit one first (fit.*)
    cache_dir: str = ""  # atlases fitted for edits, one per clip and fit settings; empty: <output_dir>/.atlas_cache
    num_frames: int = 0  # NLA checkpoints: N for the time normalisation; 0: maximum_number_of_frames of config.json
    resolution: int = 0  # side R of the baked atlas image; 0: follows the clip (2 atlas pixels per frame pixel)
    alpha_threshold: float = 0.95  # foreground pixels: NLA alpha above this
    box_border: int = 30  # foreground frame boxes grow by this many pixels per side
    chunk_size: int = 65536  # pixels per atlas-network evaluation (lower it if memory is short)


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


class DirectFrameInput(Choice):
    layer = "layer"  # the edited layer as NLA separates it: frame x alpha (fg), background reconstruction (bg)
    frame = "frame"  # the raw frame crop


@dataclass
class AtlasCropConfig:
    """Internal dataset of a video edit: frame crops and the atlas crop covering them."""

    frame_gap: int = 2  # a step uses frames {t - gap, t, t + gap}
    crop_min: float = 0.95  # each frame crop covers crop_min..1 of its frame box per side
    flip_p: float = 0.5
    jitter: float = 0.1
    jitter_p: float = 0.1
    full_atlas_every: int = 75  # add the whole (cropped) atlas as a sample every this many steps (0: never)
    background_atlas_downscale: int = 3  # the background's whole-atlas sample is downscaled this much (reference 3)
    direct_frame: bool = True  # also send one frame crop (of a random one of the step's frames) through the generator
    # what the generator sees for it: layer (reference: the frame x NLA alpha for the foreground, the NLA
    # background reconstruction for the background) | frame (the raw frame crop)
    direct_frame_input: DirectFrameInput = DirectFrameInput.layer
    # frame-crop renders of the foreground: the loss source (the resampled atlas crop) times the NLA alpha
    # like the layers (true) | as it is (false, reference)
    mask_frame_source: bool = True


@dataclass
class VideoEditConfig:
    """One video edit on a neural layered atlas (Text2LIVE video recipe, docs/video.md, "The video recipe").

    `layer`: foreground | background, the atlas layer the generator edits.
    """

    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    atlas: AtlasInputConfig = field(default_factory=AtlasInputConfig)
    fit: FitConfig = field(default_factory=FitConfig)  # used when atlas.checkpoint is empty: fit one first
    layer: AtlasLayer = AtlasLayer.foreground  # the atlas layer the generator edits: foreground | background
    text: TextConfig = field(default_factory=TextConfig)
    clip: ClipConfig = field(default_factory=lambda: ClipConfig(n_aug=6, fill=Fill.black))
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: LossConfig = field(default_factory=lambda: LossConfig(
        structure=3.0, sparsity=0.1, sparsity_l1=0.01, sparsity_l0=0.005,
        bootstrap_schedule=BootstrapSchedule.constant))  # the reference's video bootstrap: no annealing
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr_decay=0.999))
    crops: AtlasCropConfig = field(default_factory=AtlasCropConfig)
    steps: int = 3000
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = Precision.fp32  # fp32 | bf16 | fp16 (autocast)
    output_dir: str = "runs"
    run_name: str = ""  # folder name under output_dir; empty: <video stem>-<layer>-<timestamp>
    log_every: int = 100  # atlas snapshot PNGs every this many steps (0: never)
    checkpoint_every: int = 100
    render_batch: int = 8  # frames composited at once in the final render
    crf: int = 18  # H.264 quality of the mp4 outputs (lower: better, larger)


# ------------------------------------------------------------------------------ batch
class Executor(Choice):
    local = "local"  # worker processes on this machine
    ray = "ray"  # one Ray task per clip, on a local Ray instance or a cluster (ray.address)


@dataclass
class RayConfig:
    """The Ray executor (executor=ray; Ray is the optional extra `text2live_geo[distributed]`)."""

    address: str = ""  # a running cluster: host:port of its head, ray://host:port or auto; empty: a local instance
    num_gpus: float | None = None  # GPUs per clip task; None: 1 when the cluster has GPUs, else 0
    num_cpus: float = 1.0  # CPUs per clip task (its torch threads)
    max_retries: int = 2  # reruns of a clip whose worker process crashed (it resumes from its checkpoint)
    connect_timeout: float = 5.0  # seconds to reach ray.address before giving up
    local_cpus: int = 0  # a local instance: CPUs it offers (0: every CPU of this machine)


@dataclass
class BatchConfig:
    """A batch (run_batch.py / t2l-batch): how the clips are run and where the batch folder is.
    Every other key of a batch's config and overrides is a key of the video or image config and
    applies to each clip it is a key of (docs/batch.md)."""

    executor: Executor = Executor.local  # local (worker processes) | ray (one Ray task per clip)
    workers: int = 0  # local executor: clips edited at once; 0: one per visible GPU (1 without GPUs)
    threads: int = 0  # local executor: torch CPU threads per worker; 0: this machine's CPUs divided between them
    ray: RayConfig = field(default_factory=RayConfig)
    output_dir: str = "runs"
    run_name: str = ""  # the batch folder under output_dir; empty: <input folder or manifest name>-batch


BASE_CONFIG_HEADER = """\
# Every default of {schema} ({module}), written by scripts/write_base_configs.py.
# The dataclasses are the one source of defaults: change them there and rerun the script
# (a test checks that this file agrees). Example configs and key=value overrides go on top.
"""


def field_comments(schema: type, prefix: str = "") -> dict[str, str]:
    """`dotted.key -> the comment on its line` in the dataclass source, nested dataclasses included."""
    comments: dict[str, str] = {}
    hints = typing.get_type_hints(schema)
    for line in inspect.getsource(schema).splitlines():
        match = re.match(r"\s+(\w+): [^#]*#\s*(.+)$", line)
        if match and match.group(1) in hints:
            comments[prefix + match.group(1)] = match.group(2).strip()
    for item in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[item.name]):
            comments.update(field_comments(hints[item.name], f"{prefix}{item.name}."))
    return comments


def default_yaml(schema: type) -> str:
    """The YAML of `schema`'s defaults, each key with its comment from the dataclass source and
    a header saying where the values come from."""
    comments = field_comments(schema)
    path: list[str] = []
    lines = [BASE_CONFIG_HEADER.format(schema=schema.__name__, module="text2live_geo/config.py").rstrip()]
    for line in OmegaConf.to_yaml(OmegaConf.structured(schema)).splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        key = line.strip().split(":")[0]
        path = path[:depth] + [key]
        comment = comments.get(".".join(path))
        lines.append(f"{line:<40} # {comment}" if comment else line)
    return "\n".join(lines) + "\n"


#: shipped base config files -> the schema whose defaults they hold
BASE_CONFIGS = {"configs/image/base.yaml": ImageEditConfig, "configs/video/base.yaml": VideoEditConfig,
                "configs/atlas/base.yaml": AtlasRunConfig, "configs/batch/base.yaml": BatchConfig}
