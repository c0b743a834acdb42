"""How long a video edit will take and how much memory it needs, measured, not guessed
(`t2l-video --estimate`): a few real training steps of the edit on the device and config it would
run with, timed, and the peak memory while they ran; nothing is written.

- The atlas: the one ``atlas.checkpoint`` names, or the one fitted for this clip before (the cache
  of ``atlas.cache_dir``): then the steps are those of the edit itself and no fit is needed. With no
  atlas yet, the fit is estimated from a fit of the clip's first frames (a few frames of flow and
  masks, their seconds scaled to the whole clip; a few fit iterations, their seconds times
  ``fit.iterations``) and the edit steps are timed on that briefly fitted atlas of the first frames
  (the step cost depends on the frame and crop sizes, which are the clip's), its editable region
  taken at a lower alpha threshold where ``atlas.alpha_threshold`` finds none in so short a fit.
- Expected time: fit + preparing the atlas for the edit + ``steps`` x the median measured seconds
  per step (after one warm-up step). The final render is not included (a small share:
  ``benchmarks/bench_video.py`` times it).
- Peak memory: CUDA's max allocated on a GPU; on a CPU the process's peak resident size (what the
  estimate itself held: the clip, the models and the timed steps).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..clip import ClipGuide
from ..common.config import load_config
from ..common.eta import duration_text
from ..common.runs import RunError, select_device
from ..common.timing import device_clock, peak_memory_gib, time_calls
from ..common.video_io import VideoStream, video_name
from ..config import VideoEditConfig
from .run import check_texts
from .video import VideoEditor
from .video_input import load_atlas_for_video, prepare_atlas_video

logger = logging.getLogger(__name__)

__all__ = ["estimate_video_edit", "format_estimate"]

#: frames of the clip a fit estimate fits (when there is no atlas yet)
PREFIX_FRAMES = 6


def _cached_atlas(cfg: VideoEditConfig) -> Path | None:
    """The atlas run folder fitted for this clip and these fit settings before, or None."""
    from atlas.fitting.run import SUMMARY_NAME, fit_key, read_clip
    from atlas.settings import AtlasRunConfig

    from .video_input import ATLAS_CACHE_FOLDER

    atlas_cfg = AtlasRunConfig(video=dataclasses.replace(cfg.video), fit=dataclasses.replace(cfg.fit), seed=cfg.seed,
                               device=cfg.device)
    clip = read_clip(atlas_cfg)
    cache = Path(cfg.atlas.cache_dir) if cfg.atlas.cache_dir else Path(cfg.output_dir) / ATLAS_CACHE_FOLDER
    folder = cache / f"{video_name(cfg.video.frames)}-{fit_key(clip, cfg.fit, cfg.seed)[:16]}"
    return folder if (folder / SUMMARY_NAME).is_file() else None


def _fit_estimate(cfg: VideoEditConfig, device: torch.device, iterations: int) -> tuple[dict, object, torch.Tensor]:
    """Fit the clip's first frames briefly, timed; returns (figures, that atlas, its frames)."""
    from atlas.fitting.fit import AtlasFitter, ClipData, build_atlas
    from atlas.fitting.run import prepare_clip, read_clip
    from atlas.settings import AtlasRunConfig

    atlas_cfg = AtlasRunConfig(video=dataclasses.replace(cfg.video), fit=dataclasses.replace(cfg.fit), seed=cfg.seed,
                               device=cfg.device)
    clip = read_clip(atlas_cfg)
    frames = clip.num_frames
    count = min(frames, PREFIX_FRAMES)
    prefix = dataclasses.replace(clip, frames=clip.frames[:count], names=clip.names[:count],
                                 masks=None if clip.masks is None else clip.masks[:count])
    start = device_clock(device)
    prepared = prepare_clip(atlas_cfg, prefix)
    flow_seconds = device_clock(device) - start
    masks = None if prepared.masks is None else prepared.masks.float()
    torch.manual_seed(cfg.seed)
    start = device_clock(device)
    atlas = build_atlas(cfg.fit, ClipData(prefix.frames, masks, prepared.flows)).to(device)
    data = ClipData(prefix.frames.to(device), None if masks is None else masks.to(device), prepared.flows)
    fitter = AtlasFitter(atlas, data, cfg.fit, seed=cfg.seed)
    init_seconds = device_clock(device) - start
    fit_cfg = fitter.cfg
    times: list[float] = []
    last = [device_clock(device)]

    def on_record(record: dict) -> None:
        now = device_clock(device)
        times.append(now - last[0])
        last[0] = now
        if len(times) >= iterations + 1:
            raise _Enough

    with contextlib.suppress(_Enough):
        fitter.fit(progress=False, on_record=on_record)
    per_iteration = sorted(times[1:] or times)[len(times[1:] or times) // 2]  # median after a warm-up
    scale = (frames - 1) / max(count - 1, 1)  # flows run between consecutive frames
    figures = {"frames": frames, "fit_frames_timed": count, "fit_flow_seconds": flow_seconds * scale,
               "fit_init_seconds": init_seconds * frames / count, "fit_seconds_per_iteration": per_iteration,
               "fit_iterations": fit_cfg.iterations}
    figures["fit_seconds"] = (figures["fit_flow_seconds"] + figures["fit_init_seconds"]
                              + per_iteration * fit_cfg.iterations)
    return figures, atlas.eval(), prefix.frames


class _Enough(Exception):
    pass


def estimate_video_edit(config_path: str | Path | Sequence[str | Path] | None = None, overrides: Sequence[str] = (),
                        base_config: str | Path | None = None, timed_steps: int = 3, fit_iterations: int = 5,
                        clip_guide: ClipGuide | None = None) -> dict:
    """Measure what one video edit with this config will take (see the module docstring).

    Returns the figures: ``seconds_per_step`` (median of ``timed_steps`` steps after a warm-up),
    ``steps``, ``fit_seconds`` (0 with an atlas), ``prepare_seconds``, ``expected_seconds``,
    ``peak_gib``, the device, the clip's frames and size, and where the atlas comes from."""
    if timed_steps < 1:
        raise RunError(f"--estimate-steps must be at least 1, got {timed_steps}")
    cfg = load_config(VideoEditConfig, config_path, overrides, base_path=base_config)
    if not cfg.video.frames:
        raise RunError("no input video: pass video.frames=path/to/frames_folder (or a .mp4/.mov file)")
    check_texts(cfg)
    device = select_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    video = VideoStream(cfg.video.frames, cfg.video.max_frames, cfg.video.frame_limit, cfg.video.max_frame_pixels)
    guide = (clip_guide or ClipGuide.load(cfg.clip.model, device)).to(device)
    figures: dict = {"device": str(device), "width": video.width, "height": video.height, "steps": cfg.steps,
                     "timed_steps": timed_steps}
    if device.type == "cuda":
        figures["device_name"] = torch.cuda.get_device_name(device)
    atlas_path = cfg.atlas.checkpoint or _cached_atlas(cfg)
    if atlas_path:
        atlas, frames = load_atlas_for_video(cfg, video, device, atlas_path)
        figures.update(atlas=str(atlas_path), fit_seconds=0.0, frames=frames.shape[0])
    else:
        fit, atlas, frames = _fit_estimate(cfg, device, fit_iterations)
        figures.update(fit, atlas="none yet: fitted first (fit.*)")
    torch.manual_seed(cfg.seed)
    # a fit of a few iterations has no foreground alpha near 1 yet: its editable region is taken at a
    # lower alpha threshold (the masks it was initialised from), as the full fit's would be
    thresholds = [cfg.atlas.alpha_threshold] if atlas_path else sorted({cfg.atlas.alpha_threshold, 0.5, 0.1},
                                                                        reverse=True)
    for threshold in thresholds:
        try:
            start = device_clock(device)
            atlas_video = prepare_atlas_video(atlas, frames, cfg.layer,
                                              dataclasses.replace(cfg.atlas, alpha_threshold=threshold),
                                              cfg.generator.num_scales, device)
            prepare = device_clock(device) - start
            break
        except RunError:
            if threshold == thresholds[-1]:
                raise
    figures["alpha_threshold"] = threshold
    figures["prepare_seconds"] = prepare * figures["frames"] / frames.shape[0]  # the uv maps are per frame
    del atlas
    editor = VideoEditor(cfg, atlas_video, guide, device)
    editor.step = 1  # step 0 also trains on the whole atlas (as every crops.full_atlas_every-th step)
    # one untimed step first (warm-up: lazy set-up, allocator growth)
    times = time_calls(editor.training_step, device, timed_steps, warmup=1)
    figures["step_seconds"] = times
    figures["seconds_per_step"] = sorted(times)[len(times) // 2]
    figures["expected_seconds"] = figures["fit_seconds"] + figures["prepare_seconds"] + cfg.steps * \
        figures["seconds_per_step"]
    figures["peak_gib"] = peak_memory_gib(device)
    return figures


def format_estimate(figures: dict) -> list[str]:
    """The lines `t2l-video --estimate` prints."""
    device = figures["device"] + (f" ({figures['device_name']})" if "device_name" in figures else "")
    lines = [f"clip: {figures['frames']} frames of {figures['width']}x{figures['height']}; device {device}"]
    if figures["fit_seconds"]:
        lines.append(f"atlas fit: ~{duration_text(figures['fit_seconds'])} ({figures['fit_iterations']} iterations x "
                     f"{figures['fit_seconds_per_iteration']:.3f} s + flow and masks "
                     f"~{figures['fit_flow_seconds']:.0f} s, "
                     f"timed on the first {figures['fit_frames_timed']} frames)")
    else:
        lines.append(f"atlas: {figures['atlas']} (no fit needed)")
    training = duration_text(figures["steps"] * figures["seconds_per_step"])
    lines.append(f"edit: {figures['steps']} steps x {figures['seconds_per_step']:.3f} s/step (median of "
                 f"{figures['timed_steps']} timed steps) = {training}; preparing the atlas "
                 f"{figures['prepare_seconds']:.1f} s")
    lines.append(f"expected time: {duration_text(figures['expected_seconds'])} (without the final render)")
    memory = "CUDA max allocated" if figures["device"].startswith("cuda") else "peak RSS of the estimate"
    lines.append(f"peak memory: {figures['peak_gib']:.2f} GiB ({memory})")
    return lines
