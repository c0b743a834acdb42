"""Command-line plumbing shared by run_image.py and run_video.py: user mistakes become one
clear line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .clip import ClipLoadError
from .config import ConfigError
from .editing.run import RunError
from .io import InputError

USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, InputError, ClipLoadError, RunError)


def register_user_error(kind: type[BaseException]) -> None:
    global USER_ERRORS
    USER_ERRORS = USER_ERRORS + (kind,)


def run_cli(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser, argv=None) -> int:
    args = parser.parse_intermixed_args(argv)  # options may come between key=value overrides
    try:
        main(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint in the run folder can be resumed with --resume", file=sys.stderr)
        return 130
    return 0
