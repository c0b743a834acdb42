"""`t2l-atlas`: fit a layered atlas (foreground + background) to a clip from the command line
(thin shell over atlas.fitting.run.fit_atlas).

Examples:
  t2l-atlas video.frames=clip.mp4
  t2l-atlas video.frames=frames/ fit.masks=masks/ fit.iterations=3000 run_name=blackswan
  t2l-atlas --config configs/atlas/nla.yaml video.frames=clip.mp4
  t2l-atlas --resume runs/clip-atlas-20261129-120000 fit.iterations=4000
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import base_config, edit_parser, run_cli


def build_parser() -> argparse.ArgumentParser:
    return edit_parser(
        description="Fit a layered atlas to a clip: per-frame maps of a foreground and a background layer onto "
                    "two textures plus a foreground alpha, from the frames alone (OpenCV optical flow, masks "
                    "from a folder or from motion; no downloaded weights). The run folder holds the atlas "
                    "(run_video.py atlas.checkpoint=RUN_DIR edits with it), fit_summary.json and previews.",
        epilog="Config keys are documented in docs/atlas_fitting.md and text2live_geo/config.py (AtlasRunConfig, "
               "FitConfig). Common: video.frames (folder of frames or .mp4/.mov), video.max_frames, "
               "video.long_side (frames downscaled so their long side is at most this), video.frame_limit "
               "(longer clips refused; 0: no limit), fit.iterations, "
               "fit.masks (folder of foreground masks; empty: from motion), fit.layers (2, or 1: background "
               "only), output_dir, run_name, seed, device.",
        base_config="configs/atlas/base.yaml", progress_help="no progress bar")


def fit(args: argparse.Namespace) -> None:
    """Run the fit the parsed arguments describe."""
    from atlas.fitting.run import fit_atlas

    fit_atlas(args.config, args.overrides, resume=args.resume, base_config=base_config("atlas"),
              progress=not args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `t2l-atlas` and run_atlas.py; returns the exit status."""
    return run_cli(fit, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
