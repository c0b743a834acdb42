"""What a command-line run prints: the library logs through the standard `logging` module
(`logging.getLogger(__name__)` in each module) and the CLIs route those records to the console
here, so a script or notebook that uses the Python API decides for itself what to show."""
from __future__ import annotations

import logging
import sys

#: loggers of the packages whose messages a CLI shows
PACKAGES = ("text2live_geo", "atlas", "toyworld")


class ConsoleHandler(logging.Handler):
    """Info to stdout as is ("note: ...", "wrote ..."), warnings and errors to stderr with their
    level ("warning: ..."). Looks up sys.stdout / sys.stderr at each record, so output that is
    redirected after setup (pytest's capture, a notebook) still gets it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                print(f"{record.levelname.lower()}: {message}", file=sys.stderr, flush=True)
            else:
                print(message, file=sys.stdout, flush=True)
        except Exception:  # a broken console must not stop a run
            self.handleError(record)


def setup_console_logging(verbose: bool = False) -> None:
    """Show the packages' info messages (debug too with `verbose`) on the console; idempotent."""
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
            logger.addHandler(ConsoleHandler())
        # records still propagate: a CLI process has no root handlers, and tests' capture sees them
