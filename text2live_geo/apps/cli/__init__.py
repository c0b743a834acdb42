"""Command-line tools: `t2l-image` (`text2live_geo.apps.cli.image`), `t2l-video`
(`text2live_geo.apps.cli.video`), `t2l-atlas` (`text2live_geo.apps.cli.atlas`) and `t2l-batch`
(`text2live_geo.apps.cli.batch`), also run by the `run_image.py` / `run_video.py` / `run_atlas.py` /
`run_batch.py` wrappers.

This module holds what they share: the parser, the base config lookup, and `run_cli`, which
turns every `UserError` into one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ...common.console import setup_console_logging
from ...common.errors import UserError

# The source checkout this package runs from, when it runs from one (an editable install, or
# the run_*.py wrappers); an installed package has no configs/ folder next to it.
REPO_ROOT = Path(__file__).resolve().parents[3]


def base_config(kind: str) -> Path | None:
    """`configs/<kind>/base.yaml` of the source checkout, or None outside one.

    The base YAMLs spell out the dataclass defaults of text2live_geo/config.py, so an installed
    tool run without the repository gets the same config from the dataclasses alone.
    """
    path = REPO_ROOT / "configs" / kind / "base.yaml"
    return path if path.is_file() and (REPO_ROOT / "pyproject.toml").is_file() else None


def edit_parser(description: str, epilog: str, base_config: str, progress_help: str) -> argparse.ArgumentParser:
    """The parser the tools share: --config, --resume, --quiet and key=value overrides."""
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append",
                        help=f"YAML config merged over the defaults ({base_config} in a source checkout); "
                             "repeat it to merge several in order, e.g. a recipe then an example")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run folder from its checkpoint")
    parser.add_argument("--quiet", action="store_true", help=progress_help)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (omegaconf dotlist)")
    return parser


def run_cli(main: Callable[[argparse.Namespace], int | None], parser: argparse.ArgumentParser,
            argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), call `main`, and return the exit status (what `main`
    returns, 0 for None)."""
    args = parser.parse_intermixed_args(argv)  # options may come between key=value overrides
    setup_console_logging()
    try:
        status = main(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint in the run folder can be resumed with --resume", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)
