"""An atlas fit as a run: the clip read and checked, a run folder, metrics, checkpoints, resume,
the fitted atlas and previews (``run_atlas.py`` / ``t2l-atlas``; docs/atlas_fitting.md,
"Running a fit").

:func:`fit_atlas` is the API the command line calls (it mirrors ``edit_image`` / ``edit_video``):
config -> :func:`read_clip` (the clip and its masks folder, checked) -> :func:`prepare_clip`
(optical flow both ways; masks from motion when no folder is given) -> a new run folder ->
:func:`run_fit` (the fit with checkpoints, then every output). Nothing is written before the
inputs have passed their checks. :func:`cached_fit` fits the atlas of a video edit that names
none, once per clip content and fit settings.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (one line per iteration), ``checkpoint.pt``,
``atlas/`` (our format: ``config.json`` + ``model.safetensors``), ``fit_summary.json`` (written
last: a folder with it holds a finished fit) and the previews ``reconstruction.mp4``,
``alpha.mp4``, ``masks.mp4``, ``atlas_grid.mp4``, ``atlas_foreground.png``,
``atlas_background.png``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from text2live_geo.common.atomic import atomic_write_json, atomic_write_text
from text2live_geo.common.config import ConfigError, load_config, to_yaml
from text2live_geo.common.io import save_png, side_by_side
from text2live_geo.common.runs import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    MetricsLog,
    RunError,
    load_checkpoint,
    load_run_config,
    make_run_dir,
    save_checkpoint,
    select_device,
    timestamped,
)
from text2live_geo.common.video_io import FOLDER_FPS, VideoWriter, frames_as_float, video_name

from ..config import AtlasConfig
from ..crops import suggested_resolution
from ..flow import FlowField, compute_flows
from ..format import RUN_ATLAS_FOLDER, save_atlas
from ..grid_model import GridAtlas, GridAtlasConfig
from ..inputs import ClipInput, load_clip
from ..layers import Layer
from ..masks import motion_masks
from ..model import AtlasMaps, LayeredAtlas, NeuralAtlas
from ..render import sample_atlas
from ..settings import AtlasModel, AtlasRunConfig, FitConfig, VideoInputConfig
from .fit import AtlasFitter, ClipData, build_atlas

__all__ = [
    "AtlasRunResult",
    "PreparedClip",
    "cached_fit",
    "check_config",
    "checkerboard",
    "clip_digest",
    "fit_atlas",
    "fit_key",
    "load_fit_checkpoint",
    "prepare_clip",
    "read_clip",
    "run_fit",
    "write_previews",
]

logger = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "fit_summary.json"
#: marks a checkpoint.pt as an atlas fit's (image and video edits write checkpoint.pt too)
CHECKPOINT_KIND = "atlas-fit"
#: frames rendered at once for fit_summary.json and the previews
_FRAME_BATCH = 4
#: the previews' atlas sides are measured on at most this many frames spread over the clip (they
#: only size the preview images; an edit measures its own on every frame)
_RESOLUTION_FRAMES = 32
#: what a fit's metrics line holds besides the loss terms
_NOT_TERMS = ("iteration", "psnr_db", "lr", "seconds")


@dataclass
class AtlasRunResult:
    """What :func:`fit_atlas` returns: the run folder, its atlas folder (what ``load_atlas`` and
    ``run_video.py atlas.checkpoint=`` open) and the contents of ``fit_summary.json``."""

    run_dir: Path
    atlas_dir: Path
    summary: dict


@dataclass
class PreparedClip:
    """A clip ready for fitting.

    Attributes:
        clip: the frames at the fitting size (and the masks folder's masks, if one was given).
        masks: ``(N, 1, H, W)`` bool masks the fit uses, or None (background only).
        masks_source: "folder", "motion" or "none".
        flows: optical flow both ways between consecutive frames (None once :func:`run_fit` has
            fitted with them: it lets them go before writing the outputs).
        seconds: what the flow and the masks took.
    """

    clip: ClipInput
    masks: torch.Tensor | None
    masks_source: str
    flows: FlowField | None
    seconds: float


# ---------------------------------------------------------------------------------- inputs
def check_config(cfg: AtlasRunConfig) -> None:
    """RunError for a config no fit can run with (each message names the key)."""
    if not cfg.video.frames:
        raise RunError("no input video: pass video.frames=path/to/clip.mp4 (or a folder of frames)")
    if cfg.fit.layers not in (1, 2):
        raise RunError(f"fit.layers must be 2 (foreground + background) or 1 (background only), got {cfg.fit.layers}")
    for key, value, least in (("fit.iterations", cfg.fit.iterations, 0), ("fit.samples", cfg.fit.samples, 1),
                              ("video.max_frames", cfg.video.max_frames, 0),
                              ("video.long_side", cfg.video.long_side, 0),
                              ("video.frame_limit", cfg.video.frame_limit, 0),
                              ("video.max_frame_pixels", cfg.video.max_frame_pixels, 0),
                              ("checkpoint_every", cfg.checkpoint_every, 0)):
        if value < least:
            raise RunError(f"{key} must be at least {least}, got {value}")


def read_clip(cfg: AtlasRunConfig) -> ClipInput:
    """The clip at the fitting size (``video.frames``, ``video.max_frames``, ``video.long_side``) and
    the masks folder's masks (``fit.masks``), checked; notes are logged. The clip is probed before it
    is decoded (``video.frame_limit``, ``video.max_frame_pixels``) and resized frame by frame as it is
    decoded. Raises the input's UserError (missing or corrupt video, too long, frames too large, one
    frame, mixed sizes, masks that do not fit)."""
    clip = load_clip(cfg.video.frames, max_frames=cfg.video.max_frames, long_side=cfg.video.long_side,
                     masks=cfg.fit.masks or None, frame_limit=cfg.video.frame_limit,
                     max_frame_pixels=cfg.video.max_frame_pixels)
    for note in clip.notes:
        logger.info(f"note: {note}")
    return clip


def prepare_clip(cfg: AtlasRunConfig, clip: ClipInput) -> PreparedClip:
    """Optical flow (``fit.flow_preset``) and the masks the fit uses: the masks folder's, else
    masks from motion; none (a background-only fit, said in a note) when ``fit.layers`` is 1 or
    nothing moves apart from the camera."""
    start = time.perf_counter()
    # float16: half the flows' memory (0.7 GB less for 300 frames at 768 x 432), rounding far below
    # the flow's own error (atlas.flow.compute_flows)
    flows = compute_flows(clip.frames, preset=str(cfg.fit.flow_preset), dtype=torch.float16)
    masks, source = None, "none"
    if cfg.fit.layers == 1:
        unused = " (the masks folder is not used)" if clip.masks is not None else ""
        logger.info(f"note: fit.layers=1: fitting the background only{unused}")
    elif clip.masks is not None:
        masks, source = clip.masks, "folder"
    else:
        found = motion_masks(clip.frames, flows)
        if found.found:
            masks, source = found.masks, "motion"
            logger.info(f"masks from motion: {found.reason}")
        else:
            logger.info(f"note: no foreground found: fitting the background only ({found.reason})")
    return PreparedClip(clip=clip, masks=masks, masks_source=source, flows=flows,
                        seconds=time.perf_counter() - start)


def _tensor_digest(hasher, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    hasher.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    hasher.update(tensor.numpy().reshape(-1).view(np.uint8))  # the bytes, hashed in place (no copy of the clip)


def clip_digest(clip: ClipInput) -> str:
    """sha256 of the clip's frames at the fitting size and of its masks folder's masks."""
    hasher = hashlib.sha256()
    _tensor_digest(hasher, clip.frames)
    if clip.masks is not None:
        _tensor_digest(hasher, clip.masks)
    return hasher.hexdigest()


def _fit_settings(fit: FitConfig) -> dict:
    """The fit settings as plain values (choices as their words), the masks folder's path left out
    (its content is in the clip digest)."""
    values = json.loads(json.dumps(dataclasses.asdict(fit), default=str))
    values.pop("masks", None)
    return values


def fit_key(clip: ClipInput, fit: FitConfig, seed: int) -> str:
    """The cache key of a fit: sha256 of the clip's decoded frames (after video.max_frames and the
    resize to video.long_side), the masks folder's masks, the fit settings and the seed."""
    settings = json.dumps({"fit": _fit_settings(fit), "seed": int(seed), "clip": clip_digest(clip)}, sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()


# ------------------------------------------------------------------------------- the fit
def _describe(atlas: LayeredAtlas) -> tuple[str, dict]:
    if isinstance(atlas, GridAtlas):
        return "grid", atlas.config.to_dict()
    if isinstance(atlas, NeuralAtlas):
        return "nla", atlas.config.to_json_dict()
    raise TypeError(f"cannot checkpoint a {type(atlas).__name__}")


def _rebuild(model: str, sizes: dict) -> LayeredAtlas:
    """A model of the checkpointed sizes (its weights are loaded next)."""
    if model == AtlasModel.grid:
        return GridAtlas(GridAtlasConfig.from_dict(sizes))
    return NeuralAtlas(AtlasConfig.from_json_dict(sizes))


def _clip_on(prepared: PreparedClip, device: torch.device | str) -> ClipData:
    """The clip's frames and masks on ``device``; the flows stay on the CPU, where the pixel sampler
    draws its random pixels and looks their flow up (and the initialisation reads them)."""
    masks = None if prepared.masks is None else prepared.masks.to(device)  # bool: 1 byte a pixel, not 4
    return ClipData(frames=prepared.clip.frames.to(device), masks=masks, flows=prepared.flows)


def load_fit_checkpoint(run_dir: Path, device: torch.device) -> dict | None:
    """The run folder's checkpoint, None when the fit stopped before its first one (it then starts
    over in the folder). RunError when it is not an atlas fit's checkpoint."""
    if not (run_dir / CHECKPOINT_NAME).is_file():
        logger.info(f"note: '{run_dir}' has no checkpoint yet: fitting from the first iteration")
        return None
    state = load_checkpoint(run_dir, device)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise RunError(f"'{run_dir}' is not an atlas run folder to resume "
                       f"(its {CHECKPOINT_NAME} is not an atlas fit's)")
    return state


class FitStopped(RunError):
    """The fit was asked to stop (``should_stop``): its checkpoint is written and it resumes from
    there, but it has no outputs yet."""


def run_fit(cfg: AtlasRunConfig, run_dir: Path, prepared: PreparedClip, device: torch.device,
            state: dict | None = None, progress: bool = True,
            should_stop: Callable[[], bool] | None = None) -> AtlasRunResult:
    """Fit ``prepared`` with ``cfg`` in the folder ``run_dir`` (writing its ``config.yaml``), then
    write the outputs. ``state``: a checkpoint of the folder (:func:`load_fit_checkpoint`) to
    continue from; None starts from the first iteration. ``should_stop`` is asked after every
    iteration; when it says so, the fit writes its checkpoint and raises :class:`FitStopped`.

    Raises:
        RunError: the checkpoint belongs to another clip, other masks or another model (nothing
            is written then).
        FitStopped: stopped by ``should_stop`` (the checkpoint is written; no outputs).
    """
    run_dir = Path(run_dir)
    clip = prepared.clip
    digest = clip_digest(clip)
    masks_digest = "" if prepared.masks is None else hashlib.sha256(
        prepared.masks.contiguous().numpy().reshape(-1).view(np.uint8)).hexdigest()
    if state is not None:
        if state.get("clip_sha256") != digest or state.get("masks_sha256") != masks_digest:
            raise RunError(f"the clip or its masks differ from those the fit in '{run_dir}' was started on "
                           "(do not override video.* or fit.masks / fit.layers when resuming)")
        if state.get("model") != str(cfg.fit.model):
            raise RunError(f"the fit in '{run_dir}' fits a {state.get('model')} model, not {cfg.fit.model} "
                           "(do not override fit.model when resuming)")
    _write_config(run_dir, cfg)

    data = _clip_on(prepared, device)
    torch.manual_seed(cfg.seed)
    if state is None:  # the initialisation works on CPU tensors (OpenCV fits to the flow)
        on_cpu = data if torch.device(device).type == "cpu" else _clip_on(prepared, "cpu")  # not a second copy
        atlas = build_atlas(cfg.fit, on_cpu).to(device)
        on_cpu = None
    else:
        atlas = _rebuild(state["model"], state["atlas_config"]).to(device)
    fitter = AtlasFitter(atlas, data, cfg.fit, seed=cfg.seed)
    model, sizes = _describe(atlas)
    seconds_before = 0.0
    metrics_path = run_dir / METRICS_NAME
    if state is not None:
        fitter.load_state_dict(state["fitter"])
        seconds_before = float(state.get("seconds", 0.0))
        logger.info(f"resuming {run_dir} at iteration {fitter.iteration}")
    elif cfg.fit.model == AtlasModel.nla and cfg.fit.pretrain_per_frame > 0:
        fitter.pretrain_mappings(cfg.fit.pretrain_per_frame * clip.num_frames)
    MetricsLog(metrics_path).truncate(fitter.iteration, key="iteration")

    layers = atlas.config.layers if isinstance(atlas, GridAtlas) else (2 if prepared.masks is not None else 1)
    logger.info(f"fitting a {layers}-layer {model} atlas to {clip.num_frames} frames of {clip.width}x{clip.height} "
                f"(masks: {prepared.masks_source}), {cfg.fit.iterations} iterations")
    metrics = MetricsLog(metrics_path)
    start = time.perf_counter()

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - start

    def on_record(record: dict) -> None:
        line = {"iteration": record["iteration"]}
        line.update((name, value) for name, value in record.items() if name not in _NOT_TERMS)
        if "psnr_db" in record:
            line["psnr_db"] = record["psnr_db"]
        line["lr"] = fitter.optimizer.param_groups[0]["lr"]
        line["seconds"] = round(elapsed(), 3)
        metrics.write(line)

    def checkpoint() -> None:
        save_checkpoint(run_dir, {"kind": CHECKPOINT_KIND, "fitter": fitter.state_dict(), "model": model,
                                  "atlas_config": sizes, "clip_sha256": digest, "masks_sha256": masks_digest,
                                  "seconds": elapsed()})

    fitter.fit(progress=progress, on_record=on_record, on_checkpoint=checkpoint,
               checkpoint_every=cfg.checkpoint_every, should_stop=should_stop)
    checkpoint()
    if fitter.iteration < cfg.fit.iterations:  # only a stop ends the loop early
        raise FitStopped(f"the atlas fit stopped at iteration {fitter.iteration} of {cfg.fit.iterations}; "
                         f"its checkpoint in {run_dir} resumes it")
    seconds = elapsed()
    # the outputs need the atlas alone: the optimiser's state, the gradients and the flows (3.3 MB a
    # frame at 768 x 432) go before the previews
    iterations = fitter.iteration
    fitter = data = None
    atlas.zero_grad(set_to_none=True)
    prepared.flows = None

    atlas.eval()
    atlas_dir = save_atlas(atlas, run_dir / RUN_ATLAS_FOLDER, info={
        "fitted_by": "run_atlas.py", "source": str(clip.source), "frames": clip.num_frames, "width": clip.width,
        "height": clip.height, "source_width": clip.source_size[1], "source_height": clip.source_size[0],
        "masks": prepared.masks_source, "seed": cfg.seed, "fit": _fit_settings(cfg.fit),
        "masks_folder": cfg.fit.masks})
    fps = float(cfg.video.fps or clip.fps or FOLDER_FPS)
    outputs = write_previews(run_dir, atlas, clip.frames, prepared.masks, fps, cfg.crf, device)
    summary = {
        "psnr_db": outputs.pop("psnr_db"), "seconds": round(seconds, 3),
        "prepare_seconds": round(prepared.seconds, 3), "iterations": iterations, "frames": clip.num_frames,
        "width": clip.width, "height": clip.height, "layers": layers, "model": model,
        "masks": prepared.masks_source, **outputs, "source": str(clip.source), "fps": fps,
    }
    atomic_write_json(run_dir / SUMMARY_NAME, summary)
    logger.info(f"atlas fitted: {summary['psnr_db']} dB PSNR over every pixel, {seconds:.1f} s; wrote {run_dir}")
    return AtlasRunResult(run_dir=run_dir, atlas_dir=atlas_dir, summary=summary)


def _check_atlas_run(folder: Path) -> None:
    """RunError (one line) unless ``folder`` is an atlas run folder to resume."""
    expected = f"run_atlas.py writes {CONFIG_NAME} and {CHECKPOINT_NAME} there"
    if not folder.is_dir() or not (folder / CONFIG_NAME).is_file():
        raise RunError(f"'{folder}' is not an atlas run folder to resume ({expected})")
    try:
        load_config(AtlasRunConfig, folder / CONFIG_NAME, warn_legacy=False)
    except ConfigError:
        raise RunError(f"'{folder}' is not an atlas run folder to resume (its {CONFIG_NAME} is not an atlas "
                       f"fit's config; {expected})") from None


def fit_atlas(config_path: str | Path | None = None, overrides: Sequence[str] = (),
              resume: str | Path | None = None, base_config: str | Path | None = None,
              progress: bool = True, should_stop: Callable[[], bool] | None = None) -> AtlasRunResult:
    """Fit (or resume fitting) a layered atlas to a clip and write its run folder (module docstring).

    ``overrides`` are ``key=value`` dotlist entries (AtlasRunConfig); with ``resume``, the run
    folder's saved config is loaded and ``overrides`` apply on top (e.g. ``fit.iterations=4000``).
    ``should_stop``: asked after every iteration (:func:`run_fit`).
    """
    if resume is not None:
        _check_atlas_run(Path(resume))
    cfg, resume = load_run_config(AtlasRunConfig, config_path, overrides, resume, base_config)
    check_config(cfg)
    device = select_device(cfg.device)
    # a checkpoint that is not an atlas fit's fails before the clip is read
    state = load_fit_checkpoint(resume, device) if resume is not None else None
    prepared = prepare_clip(cfg, read_clip(cfg))
    if resume is None:
        stem = video_name(cfg.video.frames)
        run_dir = make_run_dir(cfg.output_dir, cfg.run_name or timestamped(f"{stem}-atlas"))
    else:
        run_dir = resume
    return run_fit(cfg, run_dir, prepared, device, state=state, progress=progress, should_stop=should_stop)


def _write_config(run_dir: Path, cfg: AtlasRunConfig) -> None:
    atomic_write_text(run_dir / CONFIG_NAME, to_yaml(cfg))


# ------------------------------------------------------------------------- the cache
def cached_fit(video: VideoInputConfig, fit: FitConfig, seed: int, device: str, cache_dir: str | Path,
               crf: int = 18, checkpoint_every: int | None = None, progress: bool = True,
               should_stop: Callable[[], bool] | None = None) -> Path:
    """The atlas run folder of a clip fitted with ``fit``: reused from ``cache_dir`` when the same
    clip content (frames after ``video.max_frames`` and ``video.long_side``, masks folder content)
    was fitted with the same settings and seed, resumed when a fit there was cut short, fitted
    into ``cache_dir/<clip>-<key>/`` otherwise. Returns the folder (``load_atlas`` opens it).
    ``checkpoint_every``: None keeps AtlasRunConfig's."""
    cfg = AtlasRunConfig(video=dataclasses.replace(video), fit=dataclasses.replace(fit), seed=seed, device=device,
                         output_dir=str(cache_dir), crf=crf)
    if checkpoint_every is not None:
        cfg.checkpoint_every = checkpoint_every
    check_config(cfg)
    torch_device = select_device(device)
    clip = read_clip(cfg)
    key = fit_key(clip, cfg.fit, seed)
    folder = Path(cache_dir) / f"{video_name(video.frames)}-{key[:16]}"
    cfg.run_name = folder.name
    folder.mkdir(parents=True, exist_ok=True)
    # one fitter per cache entry: batches (or workers) sharing a cache wait for each other's fit
    # of the same clip instead of writing one folder twice, then reuse it
    with _exclusive_lock(folder / ".fit.lock", f"another process is fitting {video.frames} into {folder}: waiting"):
        if (folder / SUMMARY_NAME).is_file() and (folder / RUN_ATLAS_FOLDER / "config.json").is_file():
            logger.info(f"reusing the atlas fitted on {video.frames} ({folder})")
            return folder
        state = None
        if (folder / CONFIG_NAME).is_file():
            logger.info(f"resuming the unfinished atlas fit of {video.frames} in {folder}")
            state = load_fit_checkpoint(folder, torch_device)
        else:
            logger.info(f"no atlas given: fitting one to {video.frames} first (fit.*; cached in {folder})")
        prepared = prepare_clip(cfg, clip)
        run_fit(cfg, folder, prepared, torch_device, state=state, progress=progress, should_stop=should_stop)
    return folder


@contextlib.contextmanager
def _exclusive_lock(path: Path, waiting_message: str):
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the block, logging
    ``waiting_message`` when another process holds it. The lock goes with the process, so a killed
    fitter never leaves it held. Without ``fcntl`` (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX only
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(waiting_message)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- outputs
def checkerboard(resolution: int, cell: int, light: Sequence[float], dark: Sequence[float]) -> torch.Tensor:
    """``(3, R, R)`` checkerboard of ``cell`` x ``cell`` atlas-pixel squares in two colours."""
    index = torch.arange(resolution) // max(1, cell)
    odd = ((index[:, None] + index[None, :]) % 2).bool()
    light_colour = torch.tensor(light, dtype=torch.float32).view(3, 1, 1)
    dark_colour = torch.tensor(dark, dtype=torch.float32).view(3, 1, 1)
    return torch.where(odd, dark_colour, light_colour)


#: checker colours of the atlas_grid.mp4 preview: foreground orange / blue, background light / dark gray
FOREGROUND_CHECKER = ((1.0, 0.6, 0.1), (0.1, 0.3, 0.9))
BACKGROUND_CHECKER = ((0.85, 0.85, 0.85), (0.3, 0.3, 0.3))


@torch.no_grad()
def write_previews(run_dir: Path, atlas: LayeredAtlas, frames: torch.Tensor, masks: torch.Tensor | None,
                   fps: float, crf: int, device: torch.device) -> dict:
    """Write the previews and measure the reconstruction over every pixel of every frame.

    Writes ``reconstruction.mp4`` (input | reconstruction), ``alpha.mp4``, ``masks.mp4`` (the masks
    the fit used; black without), ``atlas_grid.mp4`` (a checkerboard on each atlas layer mapped back
    to the frames through the uv maps and composited with alpha, over a faint copy of the input:
    a texture that sticks to the object keeps its squares on it), ``atlas_foreground.png`` and
    ``atlas_background.png`` (baked at :func:`atlas.crops.suggested_resolution` of up to
    ``_RESOLUTION_FRAMES`` frames spread over the clip: every frame of a clip that short).

    The uv maps are computed a batch of frames at a time, never for the whole clip at once (20
    bytes a pixel: 2 GB for 300 frames at 768 x 432).

    Returns:
        ``psnr_db``, ``mask_iou`` (alpha > 0.5 against the masks used; None without masks) and
        ``atlas_resolution`` per layer.
    """
    n, _, height, width = frames.shape
    spread = sorted(set(torch.linspace(0, n - 1, min(n, _RESOLUTION_FRAMES)).round().long().tolist()))
    sampled = atlas.frame_maps(spread)
    resolution = {layer: suggested_resolution(sampled, layer) for layer in Layer}
    del sampled
    for layer in Layer:
        save_png(atlas.bake(layer, resolution[layer], device=device), run_dir / f"atlas_{layer}.png")
    cell = 2 * max(3, round(min(height, width) / 8))  # ~ 2 atlas pixels per frame pixel: squares of min(H, W) / 8
    checkers = {"foreground": checkerboard(resolution["foreground"], cell, *FOREGROUND_CHECKER).to(device),
                "background": checkerboard(resolution["background"], cell, *BACKGROUND_CHECKER).to(device)}

    squared_error, intersection, union = 0.0, 0, 0
    writers = [VideoWriter(run_dir / name, w, height, fps, crf) for name, w in
               (("reconstruction.mp4", 2 * width + 4), ("alpha.mp4", width), ("masks.mp4", width),
                ("atlas_grid.mp4", width))]
    try:
        for start in range(0, n, _FRAME_BATCH):
            indices = list(range(start, min(n, start + _FRAME_BATCH)))
            target = frames_as_float(frames[indices]).to(device)
            batch = atlas.frame_maps(indices)
            reconstruction = atlas.reconstruct_from_maps(batch).clamp(0, 1)  # no second pass of the mappings
            squared_error += float((reconstruction.double() - target.double()).pow(2).sum())
            alpha = batch.alpha.float()
            used = (torch.zeros_like(alpha) if masks is None else masks[indices].to(device).float())
            if masks is not None:
                inside = alpha > 0.5
                intersection += int((inside & (used > 0.5)).sum())
                union += int((inside | (used > 0.5)).sum())
            grid = _grid_frames(checkers, batch, resolution)
            writers[0].write(side_by_side(target, reconstruction).cpu())
            writers[1].write(alpha.expand(-1, 3, -1, -1).cpu())
            writers[2].write(used.expand(-1, 3, -1, -1).cpu())
            writers[3].write((0.75 * grid + 0.25 * target).cpu())
        for writer in writers:
            writer.close()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    mse = squared_error / (n * 3 * height * width)
    psnr = float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)
    iou = None if masks is None else (intersection / union if union else 1.0)
    return {"psnr_db": round(psnr, 3), "mask_iou": None if iou is None else round(iou, 4),
            "atlas_resolution": resolution}


def _grid_frames(checkers: dict[str, torch.Tensor], maps: AtlasMaps, resolution: dict[str, int]) -> torch.Tensor:
    """The two checkerboards seen through the frames' uv maps, composited with alpha -> ``(B, 3, H, W)``."""
    foreground = sample_atlas(checkers["foreground"], maps.uv("foreground"), "foreground", resolution["foreground"])
    background = sample_atlas(checkers["background"], maps.uv("background"), "background", resolution["background"])
    alpha = maps.alpha.to(foreground.dtype)
    return (alpha * foreground + (1 - alpha) * background).clamp(0, 1)

