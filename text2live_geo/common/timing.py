"""Timing work on a device: a clock that waits for the device's queued kernels first, and the seconds
of repeated calls after a warm-up (``t2l-video --estimate`` and the benchmarks time steps with it)."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["device_clock", "synchronize", "time_calls"]


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
