#!/usr/bin/env python
"""The GPU figures in one command (at most ~8 minutes on one CUDA GPU), one printed line per figure.

  python benchmarks/gpu_suite.py                     # on the first CUDA GPU; refuses without one
  python benchmarks/gpu_suite.py --device cpu --tiny # the same code paths on tiny sizes, seconds on a CPU

Figures (each group in its own subprocess, so peak memory is per group: CUDA max allocated, or
peak RSS on a CPU):

- image step, 512 px, 16 views, a CLIP of the ViT-B/32 architecture (random weights, built from
  configs/clip/vit-b-32.json with transformers' CLIPConfig: the real model's compute, no
  download): our step in fp32 and in bf16 autocast, and the reference-style baseline (the
  reference's structure, fp32: ``benchmarks/bench_step.py``'s baseline mode), each with seconds
  per step and peak memory, then our speed-up over the baseline;
- video step, 768x432, 6 views (the video default), the same CLIP and an NLA atlas of the
  reference network sizes (``benchmarks/bench_video.py``'s), fp32: seconds per step and peak memory;
- atlas fitting, our default recipe (``configs/atlas/base.yaml``'s fit) on a 70-frame 768x432
  procedural clip with its true masks: iterations per second, and seconds of fitting until the
  reconstruction PSNR on the fitter's evaluation pixels reaches 30 dB (measured every few seconds
  of fitting, the evaluations not counted; flows, masks and the model's initialisation reported
  apart), or the PSNR reached when ``--atlas-budget`` (150 s) runs out.

The figures, the card's name and the settings also go to ``benchmarks/results/gpu_suite.json``
(``--out``; ``--out ''`` writes none). ``--tiny`` shrinks every size (64 px images, a 48x32
video, a 6-frame 64x48 clip, a tiny CLIP built on the spot) so a test can run every code path on
a CPU in seconds; its figures mean nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

FULL = {"image_size": 512, "image_views": 16, "image_steps": 5, "video_width": 768, "video_height": 432,
        "video_views": 6, "video_frames": 3, "video_steps": 5, "atlas_frames": 70, "atlas_width": 768,
        "atlas_height": 432, "atlas_budget": 150.0, "eval_seconds": 5.0}
TINY = {"image_size": 64, "image_views": 2, "image_steps": 1, "video_width": 48, "video_height": 32,
        "video_views": 2, "video_frames": 3, "video_steps": 1, "atlas_frames": 6, "atlas_width": 64,
        "atlas_height": 48, "atlas_budget": 2.0, "eval_seconds": 0.5}
TINY_GENERATOR = ["generator.num_scales=3", "generator.channels=8"]
TARGET_DB = 30.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (with --tiny)")
    parser.add_argument("--tiny", "--dry-run", action="store_true", dest="tiny",
                        help="tiny sizes and a tiny CLIP: proves the code paths, measures nothing")
    parser.add_argument("--atlas-budget", type=float, default=None,
                        help="most seconds of atlas fitting (default 150; --tiny: 2)")
    parser.add_argument("--only", nargs="+", default=None, choices=["image", "video", "atlas"],
                        help="run only these groups")
    parser.add_argument("--out", default=str(HERE / "results" / "gpu_suite.json"),
                        help="JSON file for the figures ('' writes none)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--clip-folder", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def sizes(args) -> dict:
    chosen = dict(TINY if args.tiny else FULL)
    if args.atlas_budget is not None:
        chosen["atlas_budget"] = args.atlas_budget
    return chosen


def refusal(args) -> str | None:
    """One line saying why the suite cannot run as asked, or None."""
    import torch

    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            return ("gpu_suite: no CUDA GPU here (torch.cuda.is_available() is False); it measures GPU figures "
                    "only. For a CPU dry run of its code paths: --device cpu --tiny")
        index = int(args.device.split(":")[1]) if ":" in args.device else 0
        if index >= torch.cuda.device_count():
            return f"gpu_suite: {args.device} does not exist ({torch.cuda.device_count()} CUDA device(s))"
        return None
    if args.device == "cpu":
        return None if args.tiny else ("gpu_suite: --device cpu runs only with --tiny (the full sizes take "
                                       "hours on a CPU; bench_step.py and bench_video.py time CPU steps)")
    return f"gpu_suite: unknown device {args.device!r} (cuda, cuda:N or cpu)"


# --------------------------------------------------------------------------- workers (subprocesses)
def _clip(args, device):
    from common import vit_b32_clip
    from text2live_geo.clip import ClipGuide

    return ClipGuide.load(args.clip_folder, device) if args.clip_folder else vit_b32_clip(device)


def video_worker(args, device) -> dict:
    import torch

    from bench_video import reference_atlas
    from text2live_geo.common.config import load_config
    from text2live_geo.common.timing import peak_memory_gib, time_calls
    from text2live_geo.config import VideoEditConfig
    from text2live_geo.editing.video import VideoEditor
    from text2live_geo.editing.video_input import prepare_atlas_video

    s = sizes(args)
    width, height, count = s["video_width"], s["video_height"], s["video_frames"]
    resolution = round(2000 * width / 768)  # the reference's 2000 at 768 px
    cfg = load_config(VideoEditConfig, ROOT / "configs" / "video" / "base.yaml", [
        "video.frames=unused", "atlas.checkpoint=unused", f"atlas.resolution={resolution}",
        f"clip.n_aug={s['video_views']}", "precision=fp32", "text.src=horse", "text.comp=golden horse",
        "text.screen=golden horse", *(TINY_GENERATOR if args.tiny else [])])
    clip = _clip(args, device)
    atlas = reference_atlas(width, height, count, device)
    ys = torch.linspace(0, 1, height, device=device).view(1, 1, -1, 1)
    xs = torch.linspace(0, 1, width, device=device).view(1, 1, 1, -1)
    shift = torch.arange(count, device=device).view(-1, 1, 1, 1) / count
    frames = torch.cat([(0.2 + 0.6 * xs + 0.2 * shift).expand(-1, 1, height, -1), ys.expand(count, 1, -1, width),
                        0.5 + 0.4 * torch.sin(8 * xs + 3 * ys + 6 * shift)], dim=1).clamp(0, 1)
    video = prepare_atlas_video(atlas, frames, cfg.layer, cfg.atlas, cfg.generator.num_scales, device)
    del atlas
    torch.manual_seed(0)
    editor = VideoEditor(cfg, video, clip, device)
    editor.step = 1  # step 0 adds the whole atlas, as every crops.full_atlas_every-th step: time regular steps
    editor.training_step()  # warm-up, before the peak memory is reset: the peak is that of the timed steps
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = sorted(time_calls(editor.training_step, device, s["video_steps"], warmup=0))
    return {"step_s": times[len(times) // 2], "steps_s": times, "peak_gib": peak_memory_gib(device),
            "width": width, "height": height, "views": s["video_views"], "atlas_resolution": resolution}


def atlas_worker(args, device) -> dict:
    import torch

    from atlas.fitting.fit import AtlasFitter, ClipData, build_atlas
    from atlas.flow import compute_flows
    from atlas.procedural import make_procedural_clip
    from atlas.settings import AtlasRunConfig
    from common import synchronize
    from text2live_geo.common.config import load_config

    s = sizes(args)
    overrides = ["fit.flow_preset=ultrafast"] if args.tiny else []
    cfg = load_config(AtlasRunConfig, ROOT / "configs" / "atlas" / "base.yaml", overrides).fit
    cfg = dataclasses.replace(cfg, eval_every=0)  # PSNR points come from here, by fitting time
    start = time.perf_counter()
    clip = make_procedural_clip(frames=s["atlas_frames"], width=s["atlas_width"], height=s["atlas_height"],
                                objects=1, camera="pan+zoom", seed=0)
    clip_seconds = time.perf_counter() - start
    start = time.perf_counter()
    flows = compute_flows(clip.frames, preset=str(cfg.flow_preset))
    flow_seconds = time.perf_counter() - start
    masks = clip.masks.float()
    start = time.perf_counter()
    torch.manual_seed(0)
    atlas = build_atlas(cfg, ClipData(clip.frames, masks, flows)).to(device)
    data = ClipData(clip.frames.to(device), masks.to(device), flows)  # flows stay on the CPU (the sampler's)
    fitter = AtlasFitter(atlas, data, cfg, seed=0)
    synchronize(device)
    init_seconds = time.perf_counter() - start

    curve: list[dict] = []
    clock = {"fit": 0.0, "since": time.perf_counter(), "next_eval": 0.0}

    class Done(Exception):
        pass

    def measure(iteration: int) -> float:
        synchronize(device)
        clock["fit"] += time.perf_counter() - clock["since"]
        value = fitter.evaluate_psnr()
        curve.append({"seconds": round(clock["fit"], 3), "iteration": iteration, "psnr_db": round(value, 3)})
        clock["next_eval"] = clock["fit"] + s["eval_seconds"]
        synchronize(device)
        clock["since"] = time.perf_counter()
        return value

    def on_record(record: dict) -> None:
        spent = clock["fit"] + time.perf_counter() - clock["since"]
        due = spent >= clock["next_eval"] or spent >= s["atlas_budget"]
        if due and (measure(record["iteration"]) >= TARGET_DB or clock["fit"] >= s["atlas_budget"]):
            raise Done

    measure(fitter.iteration)
    stopped = "iterations"
    try:
        fitter.fit(progress=False, on_record=on_record)
    except Done:
        stopped = "30 dB" if curve[-1]["psnr_db"] >= TARGET_DB else "budget"
    if curve[-1]["iteration"] != fitter.iteration:
        measure(fitter.iteration)
    reached = next((point["seconds"] for point in curve if point["psnr_db"] >= TARGET_DB), None)
    return {"frames": s["atlas_frames"], "width": s["atlas_width"], "height": s["atlas_height"],
            "iterations": fitter.iteration, "fit_seconds": clock["fit"],
            "iterations_per_s": fitter.iteration / max(clock["fit"], 1e-9), "seconds_to_30db": reached,
            "final_psnr_db": curve[-1]["psnr_db"], "stopped_by": stopped, "budget_seconds": s["atlas_budget"],
            "clip_seconds": clip_seconds, "flow_seconds": flow_seconds, "init_seconds": init_seconds,
            "samples_per_iteration": cfg.samples, "curve": curve}


def worker(args) -> dict:
    from text2live_geo.common.runs import select_device

    device = select_device(args.device)
    if args.worker == "video":
        return video_worker(args, device)
    if args.worker == "atlas":
        return atlas_worker(args, device)
    raise SystemExit(f"unknown worker {args.worker}")  # pragma: no cover (parent side only starts the above)


# --------------------------------------------------------------------------- parent side
def _run(command: list[str], env: dict) -> dict:
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command[1:4])} failed (exit {completed.returncode}):\n" + "\n".join(tail))
    return json.loads(lines[-1][len("RESULT "):])


def image_runs(args, clip_folder: str | None, env: dict) -> dict:
    s = sizes(args)
    common = [sys.executable, str(HERE / "bench_step.py"), "--size", str(s["image_size"]), "--views",
              str(s["image_views"]), "--steps", str(s["image_steps"]), "--device", args.device, "--out", ""]
    if clip_folder:
        common += ["--clip-folder", clip_folder]
    for override in TINY_GENERATOR if args.tiny else []:
        common += ["--set", override]
    return {name: _run(common + ["--worker", mode, "--precision", precision], env)
            for name, mode, precision in (("fp32", "ours", "fp32"), ("bf16", "ours", "bf16"),
                                          ("baseline", "baseline", "fp32"))}


def tiny_clip_folder() -> str:
    from text2live_geo.tiny_clip import build_clip

    folder = tempfile.mkdtemp(prefix="gpu_suite_clip_")
    words = "a an the of photo image high quality horse golden over green screen in front".split()
    build_clip(folder, words, image_size=32, patch_size=8, vision_width=32, vision_layers=2, text_width=32,
               text_layers=2, heads=2, projection_dim=32, seed=0)
    return folder


def lines_for(figures: dict) -> list[str]:
    """One line per figure."""
    out = []
    s, card = figures["sizes"], figures["device_name"]
    if "image" in figures:
        image = figures["image"]
        label = f"{s['image_size']} px, {s['image_views']} views, {figures['clip']}"
        for name in ("fp32", "bf16", "baseline"):
            r = image[name]
            what = "reference-style baseline fp32" if name == "baseline" else f"ours {name}"
            out.append(f"image_step_{name}: {r['step_s']:.4f} s/step, peak {r['peak_gib']:.2f} GiB "
                       f"({what}; {label}; {r['views_encoded']} views encoded; {card})")
        for name in ("fp32", "bf16"):
            out.append(f"image_speedup_{name}_vs_baseline: {image['baseline']['step_s'] / image[name]['step_s']:.2f}"
                       f"x (memory {image[name]['peak_gib'] / image['baseline']['peak_gib']:.2f}x)")
    if "video" in figures:
        v = figures["video"]
        out.append(f"video_step: {v['step_s']:.4f} s/step, peak {v['peak_gib']:.2f} GiB ({v['width']}x{v['height']}, "
                   f"{v['views']} views, atlas R {v['atlas_resolution']}, fp32, {figures['clip']}; {card})")
    if "atlas" in figures:
        a = figures["atlas"]
        clip = f"{a['frames']}-frame {a['width']}x{a['height']} procedural clip, true masks"
        out.append(f"atlas_fit_iterations_per_s: {a['iterations_per_s']:.1f} it/s ({a['iterations']} iterations of "
                   f"{a['samples_per_iteration']} pixels in {a['fit_seconds']:.1f} s; {clip}; {card})")
        reached = a["seconds_to_30db"]
        out.append(f"atlas_seconds_to_30db: {reached:.1f} s of fitting (flows {a['flow_seconds']:.1f} s, "
                   f"initialisation {a['init_seconds']:.1f} s apart; {clip})" if reached is not None else
                   f"atlas_seconds_to_30db: not reached in {a['fit_seconds']:.1f} s (budget "
                   f"{a['budget_seconds']:g} s; {a['final_psnr_db']:.2f} dB at the end; {clip})")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0
    reason = refusal(args)
    if reason:
        print(reason, file=sys.stderr)
        return 2
    import torch

    started = time.perf_counter()
    groups = args.only or ["image", "video", "atlas"]
    device_name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else \
        (platform.processor() or platform.machine() or "CPU")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    clip_folder = tiny_clip_folder() if args.tiny else None
    figures: dict = {"device": args.device, "device_name": device_name, "tiny": args.tiny, "sizes": sizes(args),
                     "torch": torch.__version__,
                     "clip": "tiny CLIP" if args.tiny else "ViT-B/32-sized CLIP (random weights)"}
    print(f"gpu_suite: {device_name}, torch {torch.__version__}, {'TINY dry run, ' if args.tiny else ''}"
          f"groups {' '.join(groups)}", flush=True)
    worker_args = ["--device", args.device] + (["--tiny", "--clip-folder", clip_folder] if args.tiny else [])
    if args.atlas_budget is not None:
        worker_args += ["--atlas-budget", str(args.atlas_budget)]
    try:
        for group in groups:
            if group == "image":
                figures["image"] = image_runs(args, clip_folder, env)
            else:
                figures[group] = _run([sys.executable, str(Path(__file__).resolve()), "--worker", group,
                                       *worker_args], env)
            printed = {line.split(":")[0] for line in figures.get("_printed", [])}
            for line in lines_for(figures):
                if line.split(":")[0] not in printed:
                    print(line, flush=True)
                    figures.setdefault("_printed", []).append(line)
    except RuntimeError as error:
        print(f"gpu_suite: {error}", file=sys.stderr)
        return 1
    figures["lines"] = figures.pop("_printed", [])
    figures["seconds"] = time.perf_counter() - started
    print(f"gpu_suite_seconds: {figures['seconds']:.0f}")
    if args.out:
        from text2live_geo.common.atomic import atomic_write_json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
