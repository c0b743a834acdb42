"""Timing work on a device: a clock that waits for the device's queued kernels first, the seconds
of repeated calls after a warm-up, and the peak memory they took (``t2l-video --estimate`` and the
benchmarks measure steps with them)."""
from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable

import torch

__all__ = ["device_clock", "peak_memory_gib", "synchronize", "time_calls"]


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on a CUDA device (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device's queued work is done, so differences time that work."""
    synchronize(device)
    return time.perf_counter()


def time_calls(function: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``function()``, in call order, after ``warmup`` untimed
    calls (lazy set-up, allocator growth); each timed on :func:`device_clock`."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = device_clock(device)
        function()
        times.append(device_clock(device) - start)
    return times


def peak_memory_gib(device: torch.device) -> float:
    """CUDA's max allocated on a CUDA device (since the last ``torch.cuda.reset_peak_memory_stats``),
    or this process's peak resident size on the CPU, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 30
