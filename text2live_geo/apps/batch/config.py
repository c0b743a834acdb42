"""The batch's own settings (`t2l-batch`): how the clips are run and where the batch folder is.
Every other key of a batch's config is a key of the video or image edit config
(`text2live_geo.config`) and applies to each clip it is a key of."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...common.config import Choice

__all__ = ["BatchConfig", "Executor", "RayConfig"]


class Executor(Choice):
    local = "local"  # worker processes on this machine
    ray = "ray"  # one Ray task per clip, on a local Ray instance or a cluster (ray.address)


@dataclass
class RayConfig:
    """The Ray executor (executor=ray; Ray is the optional extra `text2live_geo[distributed]`)."""

    address: str = ""  # a running cluster: host:port of its head, ray://host:port or auto; empty: a local instance
    num_gpus: float | None = None  # GPUs per clip task; None: 1 when the cluster has GPUs, else 0
    num_cpus: float = 1.0  # CPUs per clip task (its torch threads)
    max_retries: int = 2  # reruns of a clip whose worker process crashed (it resumes from its checkpoint)
    connect_timeout: float = 5.0  # seconds to reach ray.address before giving up
    local_cpus: int = 0  # a local instance: CPUs it offers (0: every CPU of this machine)


@dataclass
class BatchConfig:
    """A batch (run_batch.py / t2l-batch): how the clips are run and where the batch folder is.
    Every other key of a batch's config and overrides is a key of the video or image config and
    applies to each clip it is a key of (docs/batch.md)."""

    executor: Executor = Executor.local  # local (worker processes) | ray (one Ray task per clip)
    workers: int = 0  # local executor: clips edited at once; 0: one per visible GPU (1 without GPUs)
    threads: int = 0  # local executor: torch CPU threads per worker; 0: this machine's CPUs divided between them
    ray: RayConfig = field(default_factory=RayConfig)
    output_dir: str = "runs"
    run_name: str = ""  # the batch folder under output_dir; empty: <input folder or manifest name>-batch
    # false: where the file system has no locks a batch stops with one line; true: it runs unlocked
    # (a second batch on the same folder is then not refused: start only one)
    allow_unlocked: bool = False  # run without the batch folder's lock where the file system has none


