"""Command-line plumbing shared by run_image.py and run_video.py: user mistakes become one
clear line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .clip import ClipLoadError
from .config import ConfigError
from .console import setup_console_logging
from .editing.run import RunError
from .io import InputError

USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, InputError, ClipLoadError, RunError)


def register_user_error(kind: type[BaseException]) -> None:
    global USER_ERRORS
    USER_ERRORS = USER_ERRORS + (kind,)


def edit_parser(description: str, epilog: str, base_config: str, progress_help: str) -> argparse.ArgumentParser:
    """The parser both run scripts share: --config, --resume, --quiet and key=value overrides."""
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help=f"YAML config merged over {base_config}")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run folder from its checkpoint")
    parser.add_argument("--quiet", action="store_true", help=progress_help)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (omegaconf dotlist)")
    return parser


def run_cli(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser, argv=None) -> int:
    args = parser.parse_intermixed_args(argv)  # options may come between key=value overrides
    setup_console_logging()
    try:
        main(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint in the run folder can be resumed with --resume", file=sys.stderr)
        return 130
    return 0
