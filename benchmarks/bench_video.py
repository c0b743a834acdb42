#!/usr/bin/env python
"""Time the video edit: preparation (uv maps + baking), training steps and the final render.

Builds, with random weights (no downloads): a CLIP of the ViT-B/32 architecture
(configs/clip/vit-b-32.json) and an NLA atlas with the reference network sizes (mappings 256 x 6 /
256 x 4, atlas 256 x 8 with 10 frequencies, alpha 256 x 8 with 5). The atlas texture network is
random; the mapping and alpha networks get the smooth geometry of atlas.testing (a panning
background and a foreground blob present in every frame), so the uv maps cover an atlas region of
realistic size (random mappings would collapse it to a few pixels and make the generator's work
unrealistically small). Network costs do not depend on weight values.

The cost of the uv maps and of the per-frame part of the render is proportional to the frame
count: `--measure-frames M` builds the atlas over M frames only, times them, and extrapolates to
`--frames N` (reported as `extrapolated`). Training-step cost does not depend on N.

  python benchmarks/bench_video.py --width 384 --height 216 --frames 10 --steps 2
  python benchmarks/bench_video.py --measure-frames 3 --steps 1   # 768 x 432, 70 frames (extrapolated)
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=768, help="frame width W (reference 768)")
    parser.add_argument("--height", type=int, default=432, help="frame height H (reference 432)")
    parser.add_argument("--frames", type=int, default=70, help="frame count N the figures are given for (reference 70)")
    parser.add_argument("--measure-frames", type=int, default=0,
                        help="frames actually built and rendered (0: all N); per-frame costs are extrapolated to N")
    parser.add_argument("--resolution", type=int, default=0,
                        help="baked atlas side R (0: 2000 * W / 768, the reference 2000 at 768 px)")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps (after the warm-up steps)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first (lazy set-up)")
    parser.add_argument("--layer", default="foreground", choices=["foreground", "background"])
    parser.add_argument("--views", type=int, default=6, help="CLIP views per render (clip.n_aug; reference 6)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def reference_atlas(width: int, height: int, frames: int, device):
    """An NLA model with the reference sizes and a realistic geometry (see the module docstring)."""
    import torch

    from atlas import AtlasConfig, NeuralAtlas
    from atlas.testing import _set_alpha_blob, _set_mapping

    torch.manual_seed(0)
    atlas = NeuralAtlas(AtlasConfig(width=width, height=height, num_frames=frames))
    half_side = max(width, height) / 2.0
    _set_mapping(atlas.background_mapping, 0.8, -0.15, 0.0)
    _set_mapping(atlas.foreground_mapping, 0.6, 0.25, 0.1)
    _set_alpha_blob(atlas.alpha_network, x_centre=(width - 1) / 2 / half_side - 1,
                    y_centre=(height - 1) / 2 / half_side - 1, time_weight=0.0, sharpness=6.0)
    return atlas.to(device).eval()


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from common import synchronize, vit_b32_clip
    from text2live_geo.common.config import load_config
    from text2live_geo.common.runs import select_device
    from text2live_geo.config import VideoEditConfig
    from text2live_geo.editing.video import VideoEditor
    from text2live_geo.editing.video_input import prepare_atlas_video
    from text2live_geo.editing.video_outputs import write_video_outputs

    device = select_device(args.device)
    measured = args.measure_frames or args.frames
    resolution = args.resolution or round(2000 * args.width / 768)
    cfg = load_config(VideoEditConfig, HERE.parent / "configs" / "video" / "base.yaml", [
        "video.frames=unused", "atlas.checkpoint=unused", f"layer={args.layer}", f"atlas.resolution={resolution}",
        f"clip.n_aug={args.views}", f"precision={args.precision}", "text.src=horse", "text.comp=golden horse",
        "text.screen=golden horse"])
    figures: dict = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "machine": platform.processor() or platform.machine(), "width": args.width,
                     "height": args.height, "frames": args.frames, "measured_frames": measured,
                     "atlas_resolution": resolution, "layer": args.layer, "views": args.views,
                     "generator": f"{cfg.generator.num_scales} scales x {cfg.generator.channels} ch",
                     "precision": args.precision}
    if device.type == "cuda":
        figures["gpu"] = torch.cuda.get_device_name(device)

    def clock() -> float:
        synchronize(device)
        return time.perf_counter()

    clip = vit_b32_clip(device)
    atlas = reference_atlas(args.width, args.height, measured, device)
    # smooth moving gradients: the network costs do not depend on content, but PNG and H.264
    # encoding of noise would be unrealistically slow
    ys = torch.linspace(0, 1, args.height, device=device).view(1, 1, -1, 1)
    xs = torch.linspace(0, 1, args.width, device=device).view(1, 1, 1, -1)
    shift = torch.arange(measured, device=device).view(-1, 1, 1, 1) / max(measured, 1)
    frames = torch.cat([(0.2 + 0.6 * xs + 0.2 * shift).expand(-1, 1, args.height, -1),
                        ys.expand(measured, 1, -1, args.width),
                        (0.5 + 0.4 * torch.sin(8 * xs + 3 * ys + 6 * shift))], dim=1).clamp(0, 1)

    # preparation: the uv maps (per frame) are timed apart from baking (once)
    precompute = atlas.precompute_maps
    timings: dict = {}

    def timed_precompute(*a, **k):
        start = clock()
        result = precompute(*a, **k)
        timings["maps"] = clock() - start
        return result

    atlas.precompute_maps = timed_precompute
    start = clock()
    video = prepare_atlas_video(atlas, frames, args.layer, cfg.atlas, cfg.generator.num_scales, device)
    prepare = clock() - start
    box = video.atlas_box
    figures["atlas_region_px"] = f"{box.width} x {box.height}"
    figures["maps_seconds_per_frame"] = timings["maps"] / measured
    figures["bake_seconds"] = prepare - timings["maps"]

    torch.manual_seed(0)
    editor = VideoEditor(cfg, video, clip, device)
    # step 0 also trains on the whole atlas (as every crops.full_atlas_every-th step does): start at
    # step 1 so that the timed steps are the regular ones
    editor.step = 1
    start = clock()
    for _ in range(args.warmup):  # lazy initialisations, allocator growth
        editor.training_step()
    figures["warmup_seconds"] = (clock() - start) / args.warmup if args.warmup else None
    step_times, renders = [], []
    for _ in range(args.steps):
        start = clock()
        record = editor.training_step()
        step_times.append(clock() - start)
        renders.append(record["renders"])
    figures["seconds_per_step"] = sum(step_times) / len(step_times) if step_times else math.nan
    figures["renders_per_step"] = renders

    # final render, the real output path (write_video_outputs): the generator on the whole atlas
    # (once), then per frame: uv sampling, compositing, PNG and three mp4 streams
    with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
        render = write_video_outputs(Path(folder), editor, video.frames.cpu(), fps=10.0, crf=cfg.crf,
                                     batch_size=cfg.render_batch, progress=False)
    figures["render_atlas_seconds"] = render["render_atlas_seconds"]
    figures["render_seconds_per_frame"] = (render["render_seconds"] - render["render_atlas_seconds"]) / measured

    n = args.frames
    figures["prepare_seconds"] = figures["maps_seconds_per_frame"] * n + figures["bake_seconds"]
    figures["render_seconds"] = figures["render_atlas_seconds"] + figures["render_seconds_per_frame"] * n
    figures["train_3000_steps_hours"] = figures["seconds_per_step"] * 3000 / 3600
    figures["extrapolated"] = measured != n
    print_table(figures)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def print_table(figures: dict) -> None:
    note = f" (extrapolated from {figures['measured_frames']} frames)" if figures["extrapolated"] else ""
    rows = [
        ("device", f"{figures['device']} ({figures.get('gpu', figures['machine'])}, {figures['threads']} threads)"),
        ("video", f"{figures['width']} x {figures['height']}, {figures['frames']} frames; atlas R "
                  f"{figures['atlas_resolution']}, {figures['layer']} region {figures['atlas_region_px']}"),
        ("model", f"CLIP ViT-B/32 size, {figures['views']} views; generator {figures['generator']}; "
                  f"{figures['precision']}"),
        ("uv maps per frame", f"{figures['maps_seconds_per_frame']:.2f} s"),
        ("bake atlas", f"{figures['bake_seconds']:.2f} s"),
        ("prepare total", f"{figures['prepare_seconds']:.1f} s{note}"),
        ("warm-up step", "-" if figures["warmup_seconds"] is None else f"{figures['warmup_seconds']:.2f} s"),
        ("training step", f"{figures['seconds_per_step']:.2f} s (renders per step: {figures['renders_per_step']})"),
        ("3000 steps", f"{figures['train_3000_steps_hours']:.2f} h"),
        ("render: atlas", f"{figures['render_atlas_seconds']:.2f} s"),
        ("render: per frame", f"{figures['render_seconds_per_frame']:.3f} s (sampling, compositing, PNG, 3 mp4s)"),
        ("render total", f"{figures['render_seconds']:.1f} s{note}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
