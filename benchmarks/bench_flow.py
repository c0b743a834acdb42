#!/usr/bin/env python
"""DIS optical flow and automatic foreground masks on procedural clips with ground truth.

Part 1, flow: per frame size and DIS preset, the time per frame pair (one direction) and the
mean end-point error (EPE, pixels) against the clip's true flow, over all pixels and over the
pixels visible in both frames (``flow_visible``), at the native size (``min_side=0``) and with
the default enlargement of small frames (``compute_flows``'s ``min_side``, 288).

Part 2, masks: ``motion_masks`` (default settings, medium preset, default enlargement) on clips
with a static / panning / panning-and-zooming camera; IoU against the true masks over the whole
clip, and the seconds for flows and masks.

  python benchmarks/bench_flow.py                      # 256x144 and 768x432, 3 mask clips
  python benchmarks/bench_flow.py --sizes 128x72 --mask-frames 16 --mask-size 128x72
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256x144,768x432", help="frame sizes WxH for the flow part")
    parser.add_argument("--presets", default="ultrafast,fast,medium")
    parser.add_argument("--flow-frames", type=int, default=24, help="frames of each flow clip")
    parser.add_argument("--flow-seeds", type=int, default=2, help="clips per size (seeds 0..)")
    parser.add_argument("--mask-frames", type=int, default=24)
    parser.add_argument("--mask-size", default="256x144")
    parser.add_argument("--mask-cameras", default="static,pan,pan+zoom")
    parser.add_argument("--mask-objects", type=int, default=1)
    parser.add_argument("--mask-seed", type=int, default=0, help="first seed")
    parser.add_argument("--mask-seeds", type=int, default=1, help="clips per camera (seeds from --mask-seed)")
    parser.add_argument("--skip-flow", action="store_true")
    parser.add_argument("--skip-masks", action="store_true")
    return parser.parse_args(argv)


def _size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def bench_flow(args) -> None:
    import numpy as np

    from atlas.flow import _dis, flow_dis, to_gray_uint8
    from atlas.procedural import make_procedural_clip

    print("flow: camera pan+zoom, 2 objects; time per pair (one direction); EPE in px")
    print(f"{'size':>9} {'preset':>9} {'enlarge':>7} {'ms/pair':>8} {'EPE all':>8} {'EPE vis':>8} {'EPE fg':>8}")
    for size in args.sizes.split(","):
        width, height = _size(size)
        clips = [make_procedural_clip(frames=args.flow_frames, width=width, height=height, objects=2,
                                      camera="pan+zoom", seed=seed) for seed in range(args.flow_seeds)]
        grays = [to_gray_uint8(clip.frames) for clip in clips]
        motion = np.mean([float(clip.flow.norm(dim=-1).mean()) for clip in clips])
        moving = np.mean([float(clip.flow[clip.masks[:-1, 0]].norm(dim=-1).mean()) for clip in clips])
        print(f"{size}: true flow {motion:.1f} px per frame on average, {moving:.1f} px on the objects")
        for preset in args.presets.split(","):
            for scale in sorted({1.0, max(1.0, 288 / min(width, height))}):
                dis = _dis(preset)
                flow_dis(grays[0][0], grays[0][1], dis=dis, scale=scale)  # warm-up
                seconds, pairs, all_errors, visible_errors, foreground_errors = 0.0, 0, [], [], []
                for clip, gray in zip(clips, grays):
                    for t in range(clip.num_frames - 1):
                        start = time.perf_counter()
                        flow = flow_dis(gray[t], gray[t + 1], dis=dis, scale=scale)
                        seconds += time.perf_counter() - start
                        pairs += 1
                        error = np.linalg.norm(flow - clip.flow[t].numpy(), axis=-1)
                        visible = clip.flow_visible[t].numpy()
                        foreground = clip.masks[t, 0].numpy() & visible
                        all_errors.append(error.mean())
                        visible_errors.append(error[visible].mean())
                        foreground_errors.append(error[foreground].mean())
                print(f"{size:>9} {preset:>9} {scale:>6.2f}x {1000 * seconds / pairs:>8.1f} "
                      f"{np.mean(all_errors):>8.3f} {np.mean(visible_errors):>8.3f} {np.mean(foreground_errors):>8.3f}",
                      flush=True)


def bench_masks(args) -> list[float]:
    from atlas.flow import compute_flows
    from atlas.masks import mask_iou, motion_masks
    from atlas.procedural import make_procedural_clip

    width, height = _size(args.mask_size)
    seeds = range(args.mask_seed, args.mask_seed + args.mask_seeds)
    print(f"masks: {args.mask_frames} frames {width}x{height}, {args.mask_objects} object(s), seeds {list(seeds)}")
    ious = []
    for camera in args.mask_cameras.split(","):
        for seed in seeds:
            clip = make_procedural_clip(frames=args.mask_frames, width=width, height=height,
                                        objects=args.mask_objects, camera=camera, seed=seed)
            start = time.perf_counter()
            flows = compute_flows(clip.frames)
            middle = time.perf_counter()
            result = motion_masks(clip.frames, flows)
            end = time.perf_counter()
            iou = mask_iou(result.masks, clip.masks) if result.found else 0.0
            ious.append(iou)
            print(f"  {camera:>9} seed {seed}: IoU {iou:.3f}  flows {middle - start:.2f} s  "
                  f"masks {end - middle:.2f} s  ({result.reason})", flush=True)
    return ious


def main(argv=None) -> None:
    import cv2

    args = parse_args(argv)
    print(f"opencv {cv2.__version__}, {cv2.getNumThreads()} threads")
    if not args.skip_flow:
        bench_flow(args)
    if not args.skip_masks:
        ious = bench_masks(args)
        print(f"mask_iou_min: {min(ious):.3f}")
        print(f"mask_iou_mean: {sum(ious) / len(ious):.3f}")


if __name__ == "__main__":
    main()
