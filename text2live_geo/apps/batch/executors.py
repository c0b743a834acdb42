"""Where a batch's clips run: `LocalExecutor` (worker processes on this machine) and `RayExecutor`
(one Ray task per clip, on a local Ray instance or a cluster). Both take the jobs the driver did
not skip, run each with :func:`text2live_geo.apps.batch.worker.run_clip`, and report through the same
two callbacks, so the outputs and the report are the same whichever runs them.

A crashed worker (killed for memory, a segfault) is the clip's failure, never the batch's: the
local executor reports it and starts a fresh worker for the next clip; Ray reruns the task up to
`ray.max_retries` times (it resumes from the clip's checkpoint) and then reports it.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .config import BatchConfig, Executor, RayConfig
from .jobs import BatchError, ClipJob, ClipOutcome, ClipStatus
from .worker import run_clip

__all__ = ["ClipEvents", "LocalExecutor", "RayExecutor", "import_ray", "visible_gpus"]

logger = logging.getLogger(__name__)

RAY_INSTALL = 'pip install "text2live_geo[distributed]"'


class ClipEvents(Protocol):
    """What an executor tells the driver (always from the driver's own thread)."""

    def started(self, name: str, where: str) -> None: ...

    def finished(self, outcome: ClipOutcome) -> None: ...


def _take(queue: list[ClipJob], busy_groups: set[str]) -> ClipJob | None:
    """The first queued job whose group has no clip running (removed from the queue), or None."""
    for index, job in enumerate(queue):
        if job.group is None or job.group not in busy_groups:
            return queue.pop(index)
    return None


def _failed(job: ClipJob, reason: str) -> ClipOutcome:
    return ClipOutcome(name=job.name, status=ClipStatus.failed.value, error=reason)


# ------------------------------------------------------------------------------- local
def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES entries. Without a GPU
    driver's device nodes (Linux) or on macOS, none, without importing torch (seconds of the
    driver's start-up that a CPU batch would pay for nothing)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() == "" or sys.platform == "darwin":
        return []
    if sys.platform.startswith("linux") and not any(
            os.path.exists(node) for node in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd")):
        return []
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [part.strip() for part in listed.split(",") if part.strip()][:count]
    return [str(index) for index in range(count)]


def _exit_with_parent() -> None:
    """End this worker the moment the batch process ends, however it ends (SIGKILL included):
    an orphaned worker would go on writing into a clip folder that a rerun resumes."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(70)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _local_worker(conn, gpu: str | None, threads: int) -> None:
    """A worker process: clips from `conn`, one at a time, until None (or the batch ends)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before anything initialises CUDA
    _exit_with_parent()
    try:
        import torch

        torch.set_num_threads(threads)
        while True:
            job = conn.recv()
            if job is None:
                return
            conn.send(run_clip(job, redirect_output=True))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return  # the batch is stopping; the clip's last checkpoint stays for the rerun


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (", out of memory?" if -code == signal.SIGKILL else "")
    return f"exit status {code}"


class _Slot:
    """One worker process of the local executor and the clip it is running."""

    def __init__(self, index: int, gpu: str | None):
        self.index, self.gpu = index, gpu
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn = None
        self.job: ClipJob | None = None

    def describe(self) -> str:
        return f"worker {self.index + 1}" + (f" (GPU {self.gpu})" if self.gpu is not None else "")

    def start(self, context, threads: int) -> None:
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_local_worker, args=(child_end, self.gpu, threads),
                                  name=f"t2l-batch-worker-{self.index + 1}", daemon=True)
        try:
            process.start()
        finally:
            child_end.close()
        self.process, self.conn = process, parent_end

    def collect(self) -> ClipOutcome | None:
        """The running clip's outcome if there is one now (its message, or its worker's death)."""
        with contextlib.suppress(EOFError, OSError):
            if self.conn.poll():
                return self.conn.recv()
        if self.process.is_alive():
            return None
        self.process.join()
        reason = (f"the worker process editing it died ({_exit_reason(self.process.exitcode)}); "
                  f"rerun the batch to resume it from its last checkpoint")
        self.process, self.conn = None, None
        return _failed(self.job, reason)

    def stop(self, interrupt: bool = False, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if interrupt and self.process.is_alive():
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGINT)  # the edit stops between two writes
        else:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(None)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        with contextlib.suppress(OSError):
            self.conn.close()
        self.process, self.conn = None, None


class LocalExecutor:
    """`workers` processes (spawned: each starts clean), each editing one clip at a time.

    With GPUs, worker i sees only GPU i (modulo their count) through CUDA_VISIBLE_DEVICES; the
    CPU threads are divided between the workers (torch.set_num_threads) in any case.
    """

    name = "local"

    def __init__(self, workers: int = 0, threads: int = 0):
        self.requested, self.threads = workers, threads
        self.gpus: list[str] = []

    def open(self) -> None:
        self.gpus = visible_gpus()

    def close(self) -> None:
        pass

    def plan(self, count: int) -> tuple[int, int]:
        """(worker processes, torch threads each) for `count` clips."""
        workers = max(1, min(self.requested or max(1, len(self.gpus)), count))
        if self.threads > 0:
            return workers, self.threads
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return workers, max(1, cpus // workers)

    def describe(self, count: int) -> str:
        workers, threads = self.plan(count)
        gpus = f", GPUs {', '.join(self.gpus)}" if self.gpus else ", CPU only"
        return f"local executor: {workers} worker process{'es' if workers > 1 else ''}{gpus}, {threads} threads each"

    def run(self, jobs: Sequence[ClipJob], events: ClipEvents) -> None:
        if not jobs:
            return
        workers, threads = self.plan(len(jobs))
        context = multiprocessing.get_context("spawn")
        slots = [_Slot(index, self.gpus[index % len(self.gpus)] if self.gpus else None) for index in range(workers)]
        queue = list(jobs)
        interrupted = False
        try:
            while queue or any(slot.job is not None for slot in slots):
                busy_groups = {slot.job.group for slot in slots if slot.job is not None and slot.job.group}
                for slot in slots:
                    if slot.job is None and queue:
                        job = _take(queue, busy_groups)
                        if job is None:
                            break
                        if slot.process is not None and not slot.process.is_alive():
                            slot.stop()  # died between two clips: a fresh one takes over
                        if slot.process is None:
                            slot.start(context, threads)
                        slot.conn.send(job)
                        slot.job = job
                        if job.group:
                            busy_groups.add(job.group)
                        events.started(job.name, slot.describe())
                busy = [slot for slot in slots if slot.job is not None]
                multiprocessing.connection.wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=2)
                for slot in busy:
                    outcome = slot.collect()
                    if outcome is None:
                        continue
                    slot.job = None
                    if outcome.recycle_worker:
                        slot.stop()
                    events.finished(outcome)
        except BaseException:
            interrupted = True
            raise
        finally:
            for slot in slots:
                slot.stop(interrupt=interrupted)


# --------------------------------------------------------------------------------- ray
def import_ray():
    """The ray module, or BatchError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BatchError(f"executor=ray needs Ray, an optional extra: {RAY_INSTALL}") from None
    return ray


def check_reachable(address: str, timeout: float) -> None:
    """BatchError unless something accepts a TCP connection at a Ray address (host:port or
    ray://host:port) within `timeout` seconds: an unreachable cluster fails in seconds."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port_text = hostport.rpartition(":")
    if not host:
        host, port_text = hostport, "6379"  # Ray's default GCS port
    try:
        port = int(port_text)
    except ValueError:
        raise BatchError(f"ray.address '{address}' is not host:port, ray://host:port or auto") from None
    host = host.strip("[]")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise BatchError(f"cannot reach the Ray cluster at ray.address={address} ({reason} after at most "
                         f"{timeout:g} s): start its head with `ray start --head` or fix the address") from None


@contextlib.contextmanager
def _loopback_only(ray):
    """A local Ray instance on 127.0.0.1 only. Ray turns `_node_ip_address="127.0.0.1"` into the
    machine's network address, and its servers listen on every interface, unless it runs as a
    single-machine instance: `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (read by the processes it
    starts, and by the driver as `ray_constants.ENABLE_RAY_CLUSTER`). Then every process of the
    instance registers and listens on 127.0.0.1 alone (checked with `ss -ltnp`, Ray 2.60)."""
    variable = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    saved_env = os.environ.get(variable)
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    saved_constant = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[variable] = "0"
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:  # a later ray.init(address=...) in this process joins clusters as usual
        if saved_env is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved_env
        if constants is not None and saved_constant is not None:
            constants.ENABLE_RAY_CLUSTER = saved_constant


def _ray_task(job: ClipJob, started) -> ClipOutcome:
    """One clip as a Ray task (run in a Ray worker process)."""
    import ray
    import torch

    with contextlib.suppress(Exception):
        started.put_nowait((job.name, socket.gethostname()))
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))
    return run_clip(job)


def _ray_reason(error: BaseException, retries: int) -> str:
    import ray.exceptions as rex

    from .worker import _reason

    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    if isinstance(error, rex.OutOfMemoryError):
        return f"killed by Ray's memory monitor (out of host memory) after {retries} retries: {first}"
    if isinstance(error, rex.WorkerCrashedError | rex.NodeDiedError | rex.ActorDiedError):
        return f"the Ray worker running it died ({retries} retries): {first}"
    if isinstance(error, rex.RayTaskError) and getattr(error, "cause", None) is not None:
        return _reason(error.cause)
    return f"{type(error).__name__}: {first}"


class RayExecutor:
    """One Ray task per clip: `ray.num_gpus` GPUs and `ray.num_cpus` CPUs each, `ray.max_retries`
    reruns of a task whose worker crashed. Joins the cluster at `ray.address`, else starts a local
    instance bound to 127.0.0.1. The clips and the batch folder must be on a file system every
    node sees (docs/batch.md)."""

    name = "ray"

    def __init__(self, cfg: RayConfig):
        self.cfg = cfg
        self.ray = None
        self.owns_connection = False
        self.gpus_per_task = 0.0

    def open(self) -> None:
        ray = import_ray()
        cfg = self.cfg
        address = cfg.address.strip()
        if ray.is_initialized():  # a session the caller opened (a notebook, a test)
            self.ray = ray
        elif address:
            if address != "auto":
                check_reachable(address, cfg.connect_timeout)
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except Exception as error:  # ConnectionError, RuntimeError, ValueError, grpc errors ...
                first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
                raise BatchError(f"could not join the Ray cluster at ray.address={address}: {first}") from None
            self.ray, self.owns_connection = ray, True
        else:
            package_root = str(Path(__file__).resolve().parents[3])  # workers import this package from here
            paths = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            with _loopback_only(ray):
                # address="local": a new instance of our own, whatever RAY_ADDRESS or a cluster started
                # with `ray start` on this machine say (those are joined only through ray.address)
                ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
                         num_cpus=cfg.local_cpus or None, log_to_driver=False, logging_level=logging.WARNING,
                         runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}})
            self.ray, self.owns_connection = ray, True
        resources = self.ray.cluster_resources()
        if cfg.num_gpus is not None:
            self.gpus_per_task = float(cfg.num_gpus)
        else:
            self.gpus_per_task = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
        self.resources = resources

    def close(self) -> None:
        if self.ray is not None and self.owns_connection:
            self.ray.shutdown()
        self.ray = None

    def describe(self, count: int) -> str:
        where = f"cluster at {self.cfg.address}" if self.cfg.address else "local instance"
        cpus, gpus = self.resources.get("CPU", 0), self.resources.get("GPU", 0)
        return (f"ray executor: {where} ({cpus:g} CPUs, {gpus:g} GPUs), per clip {self.cfg.num_cpus:g} CPUs and "
                f"{self.gpus_per_task:g} GPUs, {self.cfg.max_retries} retries")

    def run(self, jobs: Sequence[ClipJob], events: ClipEvents) -> None:
        if not jobs:
            return
        ray = self.ray
        from ray.util.queue import Empty, Queue

        started = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(_ray_task).options(num_cpus=self.cfg.num_cpus, num_gpus=self.gpus_per_task,
                                             max_retries=self.cfg.max_retries, retry_exceptions=False,
                                             name="t2l-batch-clip")
        queue = list(jobs)
        running: dict = {}

        def drain() -> None:
            with contextlib.suppress(Empty):
                while not started.empty():
                    name, host = started.get_nowait()
                    events.started(name, f"Ray worker on {host}")

        try:
            while queue or running:
                busy_groups = {job.group for job in running.values() if job.group}
                while (job := _take(queue, busy_groups)) is not None:
                    running[task.remote(job, started)] = job
                    if job.group:
                        busy_groups.add(job.group)
                ready, waiting = ray.wait(list(running), num_returns=1, timeout=1.0)
                if ready and waiting:  # every clip that has finished, not just the first
                    ready += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
                drain()
                for ref in ready:
                    job = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        outcome = _failed(job, _ray_reason(error, self.cfg.max_retries))
                    events.finished(outcome)
        except BaseException:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        finally:
            with contextlib.suppress(Exception):
                ray.kill(started.actor)


def make_executor(cfg: BatchConfig) -> LocalExecutor | RayExecutor:
    """The executor a BatchConfig names."""
    return RayExecutor(cfg.ray) if cfg.executor == Executor.ray else LocalExecutor(cfg.workers, cfg.threads)
