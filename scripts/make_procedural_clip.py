#!/usr/bin/env python
"""Write a procedural clip with its ground truth (see atlas/procedural.py) into a folder.

Writes ``clip.mp4`` (H.264), ``frames/00000.png ...``, ``masks/00000.png ...`` (255 = foreground,
names as the frames) and ``clip.json`` (the arguments, so the clip can be made again); with
``--flow``, ``flow.npz`` too (true forward flow, float16, and its visibility mask).

  python scripts/make_procedural_clip.py                       # the demo clip in data/procedural/
  python scripts/make_procedural_clip.py --out /tmp/clip --frames 24 --width 256 --height 144 \\
      --objects 2 --camera pan+zoom --seed 3 --flow
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    from atlas.procedural import CAMERA_MOTIONS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "data" / "procedural"), help="output folder")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=72)
    parser.add_argument("--objects", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument("--camera", default="pan", choices=CAMERA_MOTIONS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--motion", type=float, default=1.0, help="scales every motion")
    parser.add_argument("--object-size", type=float, default=1.4, help="scales the objects' radius")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--flow", action="store_true", help="also write flow.npz")
    return parser.parse_args(argv)


def main(argv=None) -> Path:
    from atlas.procedural import make_procedural_clip, write_procedural_clip

    args = parse_args(argv)
    settings = dict(frames=args.frames, width=args.width, height=args.height, objects=args.objects,
                    camera=args.camera, seed=args.seed, motion=args.motion,
                    object_size=args.object_size)
    clip = make_procedural_clip(**settings)
    folder = write_procedural_clip(clip, args.out, fps=args.fps, flow=args.flow)
    (folder / "clip.json").write_text(json.dumps(
        {"made_by": "scripts/make_procedural_clip.py", "fps": args.fps, **settings,
         "foreground_fraction": round(float(clip.masks.float().mean()), 4)}, indent=2) + "\n")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"wrote {folder} ({clip.num_frames} frames {clip.width}x{clip.height}, camera {clip.camera}, "
          f"{args.objects} object(s), {size / 1024:.0f} KiB)")
    return folder


if __name__ == "__main__":
    main()
