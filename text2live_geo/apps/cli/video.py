"""`t2l-video`: edit one video through its neural layered atlas from the command line (thin
shell over text2live_geo.edit_video).

Examples:
  t2l-video --config configs/video/blackswan_gold.yaml
  t2l-video --config configs/video/car_turn_winter.yaml video.frames=clip.mp4 video.max_frames=70
  t2l-video --resume runs/blackswan-foreground-20261129-120000 steps=4000
  t2l-video video.frames=clip.mp4 text.src=car text.comp="red car" text.screen="red car"  # fits an atlas first
  t2l-video --estimate --config configs/video/blackswan_gold.yaml   # expected time and peak memory, no edit
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from ...common.runs import RunError
from . import base_config, edit_parser, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = edit_parser(
        description="Text-driven layered editing of a video: trains a small generator on one layer of the "
                    "video's neural layered atlas (foreground or background) to predict an RGBA edit of that "
                    "atlas, guided by CLIP, and maps the edit back to every frame.",
        epilog="Config keys are documented in docs/video.md and text2live_geo/config.py (VideoEditConfig). "
               "Common: video.frames (folder of frames or .mp4/.mov), video.max_frames, video.fps, "
               "video.frame_limit (longer clips refused; 0: no limit), "
               "atlas.checkpoint (a run_atlas.py run folder or an NLA folder; empty: fit an atlas first with the "
               "fit.* keys, cached in atlas.cache_dir), layer (foreground|background), text.src, text.comp, "
               "text.screen, steps, seed, device, output_dir, clip.model, loss.guidance (directional|geodesic).",
        base_config="configs/video/base.yaml", progress_help="no progress bars")
    parser.add_argument("--estimate", action="store_true",
                        help="print the expected time and peak memory of this edit, measured from a few real "
                             "training steps on its device and config (and a short fit of the first frames when "
                             "there is no atlas yet), without editing or writing anything")
    parser.add_argument("--estimate-steps", type=int, default=3, metavar="N",
                        help="training steps --estimate times (after one warm-up step; default 3)")
    return parser


def edit(args: argparse.Namespace) -> None:
    """Run the edit the parsed arguments describe (or, with --estimate, measure what it will take)."""
    if args.estimate:
        if args.resume:
            raise RunError("--estimate measures a new edit: give its config and overrides, not --resume")
        from ...editing.estimate import estimate_video_edit, format_estimate

        for line in format_estimate(estimate_video_edit(args.config, args.overrides, base_config("video"),
                                                        timed_steps=args.estimate_steps)):
            print(line)
        return
    from ...editing import edit_video

    edit_video(args.config, args.overrides, resume=args.resume, base_config=base_config("video"),
               progress=not args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `t2l-video` and run_video.py; returns the exit status."""
    return run_cli(edit, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
