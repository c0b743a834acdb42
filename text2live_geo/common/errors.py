"""The one base class of the errors a user can fix.

A leaf module (imports nothing else of the project), so any package, `atlas` included, can
raise a `UserError` without pulling in the rest of text2live_geo. The command-line tools turn
every `UserError` into one line on stderr (`error: ...`) and exit status 2; any other
exception is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake the user can fix; the message says what was wrong and what to do."""
