#!/usr/bin/env python
"""FLOPs of one of our image training steps: the compute bench_step.py's `ours` mode times, counted
(forward and backward, torch.utils.flop_counter) instead of timed, so the figure does not depend on
the machine's load. Run it in two checkouts to see whether a change added compute to the step.

  python benchmarks/step_flops.py                      # 256 px, 8 views, ViT-B/32-sized CLIP
  python benchmarks/step_flops.py --out results/x.json # also write the figures

Counted: the matrix products and convolutions (what FlopCounterMode counts; element-wise work such
as the view augmentations is not), the generator's parameters and one generator forward at the
image size, and the shapes of the step's CLIP image encodings.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="image side in px (square input)")
    parser.add_argument("--views", type=int, default=8, help="CLIP views per image (n_aug)")
    parser.add_argument("--guidance", default="directional", choices=["directional", "geodesic"])
    parser.add_argument("--clip-folder", default=None, help="a CLIP folder instead of the ViT-B/32 architecture")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out", default="", help="JSON file for the figures")
    return parser.parse_args(argv)


def count(args) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from common import STEP_RECIPE, vit_b32_clip
    from text2live_geo.clip import ClipGuide
    try:
        from text2live_geo.common.config import load_config
    except ImportError:  # a checkout from before the layers (commit 75a7570)
        from text2live_geo.config import load_config
    from text2live_geo.config import ImageEditConfig
    from text2live_geo.editing.image import ImageEditor

    device = torch.device("cpu")
    clip = ClipGuide.load(args.clip_folder, device) if args.clip_folder else vit_b32_clip(device)
    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, args.size)
    image = torch.stack([ramp[None].expand(args.size, -1), ramp[:, None].expand(-1, args.size),
                         torch.rand(args.size, args.size) * 0.2 + 0.4])[None]
    cfg = load_config(ImageEditConfig, STEP_RECIPE, [  # bench_step's `ours` settings
        "image=bench.png", f"clip.n_aug={args.views}", f"loss.guidance={args.guidance}", "precision=fp32",
        "crops.full_image_every=1", f"crops.resize_short={args.size}", "device=cpu", "text.src=horse",
        "text.comp=golden horse", "text.screen=golden horse", "clip.checkpoint_chunk=0", *args.set])
    editor = ImageEditor(cfg, image, clip, device)
    clip.release_text_model()
    encodings: list[list[int]] = []
    encode = clip.encode_images

    def counted_encode(views, *rest, **options):
        encodings.append(list(views.shape))
        return encode(views, *rest, **options)

    clip.encode_images = counted_encode
    editor.training_step()  # warm-up (lazy set-up)
    encodings.clear()
    step = FlopCounterMode(display=False)
    with step:
        editor.training_step()
    generator = FlopCounterMode(display=False)
    with generator, torch.no_grad():
        editor.generator(torch.rand(1, 3, args.size, args.size))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                            text=True).stdout.strip() or None
    return {"commit": commit, "size": args.size, "views": args.views, "guidance": args.guidance,
            "step_gflop": step.get_total_flops() / 1e9,
            "generator_forward_gflop": generator.get_total_flops() / 1e9,
            "generator_parameters": sum(p.numel() for p in editor.generator.parameters()),
            "clip_image_encodings": encodings}


def main(argv=None) -> dict:
    args = parse_args(argv)
    figures = count(args)
    print(f"step_flops: {figures['step_gflop']:.2f} GFLOP per training step ({figures['size']} px, "
          f"{figures['views']} views, {figures['guidance']}; commit {figures['commit']})")
    print(f"generator: {figures['generator_parameters']:,} parameters, {figures['generator_forward_gflop']:.2f} GFLOP "
          f"per forward at {figures['size']} px")
    print(f"CLIP image encodings per step: {figures['clip_image_encodings']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
