"""`t2l-batch`: edit every clip of a folder or manifest (thin shell over text2live_geo.apps.batch.run_batch).

Examples:
  t2l-batch shoot/ text.src=swan text.comp="golden swan" text.screen="golden swan"
  t2l-batch clips.yaml --config my_edit.yaml workers=2
  t2l-batch shoot/ executor=ray ray.address=auto steps=2000

Run the same command again to continue: finished clips are skipped, unfinished ones resume from
their checkpoints, clips whose settings changed are redone (their old outputs moved aside).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import base_config, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Edit a folder of clips (every video file, folder of frames and image in it) or the clips a "
                    "manifest YAML lists, each as t2l-video / t2l-image would, into <output_dir>/<run_name>/"
                    "<clip name>/, with report.html and report.json next to them.",
        epilog="Batch keys: executor (local|ray), workers, threads, ray.address, ray.num_gpus, ray.num_cpus, "
               "ray.max_retries, output_dir, run_name. Every other key is a key of the video or image config "
               "(text.src, text.comp, text.screen, layer, steps, fit.iterations, clip.model, ...) and applies to "
               "every clip whose config has it; a manifest entry's own keys win. Exit status: 0 when every clip is "
               "done, 1 when one failed, 2 for bad input. See docs/batch.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", help="a folder of clips or a manifest .yaml")
    parser.add_argument("--config", help="YAML of batch keys and edit keys for every clip")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (omegaconf dotlist)")
    return parser


def batch(args: argparse.Namespace) -> int:
    """Run the batch the parsed arguments describe; the exit status (0: every clip done, 1: not)."""
    from ..batch import run_batch

    try:
        result = run_batch(args.input, args.config, args.overrides, progress=not args.quiet,
                           base_configs={kind: base_config(kind) for kind in ("batch", "video", "image")})
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue (finished clips are kept, unfinished ones resume "
              "from their checkpoints)", file=sys.stderr)
        return 130
    if result.ok:
        print(result.summary)
        return 0
    print(result.summary, file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `t2l-batch` and run_batch.py; returns the exit status."""
    return run_cli(batch, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
