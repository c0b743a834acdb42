#!/usr/bin/env python
"""Edit one image from the command line (thin shell over text2live_geo.edit_image).

Examples:
  python run_image.py --config configs/image/golden_horse.yaml
  python run_image.py image=photo.jpg text.src=horse text.comp="golden horse" text.screen="golden horse"
  python run_image.py --resume runs/horse-20261129-120000 steps=2000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BASE_CONFIG = ROOT / "configs" / "image" / "base.yaml"


def build_parser() -> argparse.ArgumentParser:
    from text2live_geo.cli import edit_parser

    return edit_parser(
        description="Text-driven layered editing of one image: trains a small generator on the image to "
                    "predict an RGBA edit layer composited over it, guided by CLIP.",
        epilog="Config keys are documented in README.md and text2live_geo/config.py (ImageEditConfig). "
               "Common: image, text.src, text.comp, text.screen, text.bootstrap, steps, seed, device, "
               "precision, output_dir, clip.model, mode (generator|inversion), loss.guidance "
               "(directional|geodesic), loss.imr_anchor (previous|source).",
        base_config="configs/image/base.yaml", progress_help="no progress bar")


def main(args: argparse.Namespace) -> None:
    from text2live_geo import edit_image

    edit_image(args.config, args.overrides, resume=args.resume,
               base_config=BASE_CONFIG if BASE_CONFIG.is_file() else None, progress=not args.quiet)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from text2live_geo.cli import run_cli

    sys.exit(run_cli(main, build_parser()))
