#!/usr/bin/env python
"""Edit one video through its neural layered atlas from the command line (thin shell over
text2live_geo.editing.video.edit_video).

Examples:
  python run_video.py --config configs/video/blackswan_golden.yaml
  python run_video.py --config configs/video/car_turn_winter.yaml video.frames=clip.mp4 video.max_frames=70
  python run_video.py --resume runs/blackswan-foreground-20261129-120000 steps=4000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BASE_CONFIG = ROOT / "configs" / "video" / "base.yaml"


def build_parser() -> argparse.ArgumentParser:
    from text2live_geo.cli import edit_parser

    return edit_parser(
        description="Text-driven layered editing of a video: trains a small generator on one layer of the "
                    "video's neural layered atlas (foreground or background) to predict an RGBA edit of that "
                    "atlas, guided by CLIP, and maps the edit back to every frame.",
        epilog="Config keys are documented in docs/video.md and text2live_geo/config.py (VideoEditConfig). "
               "Common: video.frames (folder of frames or .mp4/.mov), video.max_frames, video.fps, "
               "atlas.checkpoint (NLA folder), layer (foreground|background), text.src, text.comp, text.screen, "
               "steps, seed, device, output_dir, clip.model, loss.guidance (directional|geodesic).",
        base_config="configs/video/base.yaml", progress_help="no progress bars")


def register_errors() -> None:
    """Atlas checkpoint problems are the user's to fix: one line, not a traceback."""
    from atlas import AtlasCheckpointError
    from text2live_geo import cli

    if AtlasCheckpointError not in cli.USER_ERRORS:
        cli.register_user_error(AtlasCheckpointError)


def main(args: argparse.Namespace) -> None:
    from text2live_geo.editing.video import edit_video

    register_errors()
    edit_video(args.config, args.overrides, resume=args.resume,
               base_config=BASE_CONFIG if BASE_CONFIG.is_file() else None, progress=not args.quiet)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from text2live_geo.cli import run_cli

    sys.exit(run_cli(main, build_parser()))
