"""Batch editing: a folder or manifest of clips edited with one command, unattended, resumable and
failure-isolated, on this machine (worker processes) or a Ray cluster (docs/batch.md).

Modules, in the order a batch uses them: `discover` (input -> clips), `settings` (each clip's
whole config), `run` (`run_batch`, the driver), `executors` (local processes, Ray), `worker`
(one clip: its folder, log, edit, done marker, previews), `report` (report.json / report.html),
`jobs` (what the driver and the workers hand each other).
"""
from __future__ import annotations

from .jobs import BatchError
from .run import BatchResult, run_batch

__all__ = ["BatchError", "BatchResult", "run_batch"]
