"""Run folders and devices, shared by atlas fitting and edits: the device and precision of a
run, a new or claimed run folder, its config and checkpoint files, and its metrics log."""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write, atomic_write_text, remove_stale_temporaries
from .config import Precision, load_config
from .errors import UserError

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "MetricsLog", "RunError", "autocast_context", "claim_run_dir",
           "load_checkpoint", "load_run_config", "make_run_dir", "save_checkpoint", "select_device", "timestamped"]


class RunError(UserError, RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


def select_device(name: str) -> torch.device:
    """'auto' -> cuda when present else cpu; 'cuda' without a GPU is a RunError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RunError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"device '{name}' requested but no CUDA GPU is available (use device=cpu or device=auto)")
    return device


def autocast_context(device: torch.device, precision: str):
    """Autocast for `precision` bf16/fp16 (CUDA; bf16 also on CPU); a no-op for fp32."""
    if precision == Precision.fp32:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == Precision.bf16 else torch.float16
    if device.type == "cpu" and dtype == torch.float16:
        return contextlib.nullcontext()  # fp16 autocast on CPU is slower and less accurate than fp32
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_run_dir(output_dir: str | Path, name: str) -> Path:
    """Create a new run folder `output_dir/name` (suffix -2, -3 ... if taken); never reuses one."""
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    candidate, index = root / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            index += 1
            candidate = root / f"{name}-{index}"


def claim_run_dir(path: str | Path) -> Path:
    """Use `path` as a new run's folder (created if missing), for a caller that owns the folder
    (a batch keeps the clip's log in it before the edit starts). RunError if it holds a run
    already: a run folder is never written over."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    taken = [name for name in (CONFIG_NAME, CHECKPOINT_NAME) if (path / name).exists()]
    if taken:
        raise RunError(f"'{path}' already holds a run ({', '.join(taken)}): resume it, or give another folder")
    return path


def timestamped(stem: str) -> str:
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"


def save_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    """Atomically write `run_dir/checkpoint.pt` (tensors and plain values only)."""
    return atomic_write(Path(run_dir) / CHECKPOINT_NAME, lambda temporary: torch.save(payload, temporary),
                        durable=True)


def load_checkpoint(run_dir: Path, device: torch.device) -> dict[str, Any]:
    """Load `run_dir/checkpoint.pt` with weights_only=True; RunError if it is not a run."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_NAME
    if not run_dir.is_dir() or not (run_dir / CONFIG_NAME).is_file() or not path.is_file():
        raise RunError(f"'{run_dir}' is not a run folder to resume (it needs {CONFIG_NAME} and {CHECKPOINT_NAME})")
    # a run killed mid-write left a temporary file: its writer is gone, so nothing will finish it
    remove_stale_temporaries(run_dir)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # corrupt or foreign file
        raise RunError(f"could not read checkpoint '{path}': {str(error).splitlines()[0]}") from None


class MetricsLog:
    """Append one JSON object per line to `metrics.jsonl`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate(self, last_step: int, key: str = "step") -> None:
        """Keep the lines of steps up to `last_step` (and drop a torn last line).

        A run killed after its last checkpoint has written lines past it; the resumed run
        continues from the checkpoint's step, so without this those steps would appear twice.
        With it the file reads as one uninterrupted run. Rewritten atomically.
        """
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # the torn line of a killed write
                continue
            if isinstance(record, dict) and isinstance(record.get(key), int) and record[key] <= last_step:
                kept.append(line + "\n")
        atomic_write_text(self.path, "".join(kept))


def load_run_config(schema: type, config_path, overrides, resume, base_config):
    """A run's config: the run folder's saved config when resuming (overrides on top), else
    base config, then `config_path`, then overrides. Returns (config, resume folder or None)."""
    if resume is not None:
        resume = Path(resume)
        if not (resume / CONFIG_NAME).is_file():
            raise RunError(f"'{resume}' is not a run folder to resume (no {CONFIG_NAME} in it)")
        return load_config(schema, resume / CONFIG_NAME, overrides), resume
    return load_config(schema, config_path, overrides, base_path=base_config), None
