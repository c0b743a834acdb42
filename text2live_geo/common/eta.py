"""Durations and ETAs as people read them, from measured seconds (torch-free: the batch driver uses
them too)."""
from __future__ import annotations

__all__ = ["duration_text", "eta_text"]


def duration_text(seconds: float) -> str:
    """``1 h 05 min``, ``3 min 07 s`` or ``42 s``."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def eta_text(seconds: float, steps_done: int, steps_left: int) -> str:
    """``0.41 s/step, ETA 3 min 07 s``: the measured seconds per step of the steps done so far times
    the steps left."""
    if steps_done <= 0:
        return "ETA unknown yet"
    per_step = seconds / steps_done
    return f"{per_step:.2f} s/step, ETA {duration_text(per_step * steps_left)}"
