"""`t2l-image`: edit one image from the command line (thin shell over text2live_geo.edit_image).

Examples:
  t2l-image --config configs/image/golden_horse.yaml
  t2l-image image=photo.jpg text.src=horse text.comp="golden horse" text.screen="golden horse"
  t2l-image --resume runs/horse-20261129-120000 steps=2000
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import base_config, edit_parser, run_cli


def build_parser() -> argparse.ArgumentParser:
    return edit_parser(
        description="Text-driven layered editing of one image: trains a small generator on the image to "
                    "predict an RGBA edit layer composited over it, guided by CLIP.",
        epilog="Config keys are documented in README.md and text2live_geo/config.py (ImageEditConfig). "
               "Common: image, text.src, text.comp, text.screen, text.bootstrap, steps, seed, device, "
               "precision, output_dir, clip.model, mode (generator|inversion), loss.guidance "
               "(directional|geodesic), loss.imr_anchor (previous|source), max_image_pixels (larger images "
               "refused; 0: no limit).",
        base_config="configs/image/base.yaml", progress_help="no progress bar")


def edit(args: argparse.Namespace) -> None:
    """Run the edit the parsed arguments describe."""
    from ...editing import edit_image

    edit_image(args.config, args.overrides, resume=args.resume, base_config=base_config("image"),
               progress=not args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `t2l-image` and run_image.py; returns the exit status."""
    return run_cli(edit, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
