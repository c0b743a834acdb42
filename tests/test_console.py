"""CLI console logging: the library logs, the CLI shows info on stdout and warnings on stderr."""
import logging

from text2live_geo.common.console import ConsoleHandler, setup_console_logging


def test_info_goes_to_stdout_and_warnings_to_stderr_with_their_level(capsys):
    setup_console_logging()
    setup_console_logging()  # idempotent: one handler, one line per record
    logging.getLogger("text2live_geo.editing.image").info("wrote runs/x")
    logging.getLogger("atlas.model").warning("the atlas reconstructs this video poorly")
    logging.getLogger("text2live_geo").debug("hidden unless verbose")
    out, err = capsys.readouterr()
    assert out == "wrote runs/x\n"
    assert err == "warning: the atlas reconstructs this video poorly\n"
    assert sum(isinstance(h, ConsoleHandler) for h in logging.getLogger("text2live_geo").handlers) == 1
