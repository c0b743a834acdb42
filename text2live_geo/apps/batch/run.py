"""`run_batch`: a folder or manifest of clips edited unattended, resumably, one clip's failure
isolated from the others (docs/batch.md).

The driver (this module) checks everything it can before it writes anything: the settings, the
clips, each clip's config, the executor (Ray installed, its cluster reachable). Then it takes the
batch folder (a lock: one batch process per folder), reuses the clips a run of the same batch
finished with the same settings, hands the others to the executor, and keeps the report
current. A clip's outputs are in ``<output_dir>/<run_name>/<clip name>/`` exactly as the
single-clip tools write them, with its log (``log.txt``) and, once finished, ``done.json``.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ...common.eta import duration_text
from .discover import check_name, discover_clips, input_name
from .executors import make_executor
from .jobs import BATCH_META_FOLDER, BatchError, ClipOutcome, ClipStatus
from .report import REPORT_HTML, REPORT_JSON, BatchReport, ClipRow, summary_line
from .settings import compose_jobs, load_batch_settings
from .worker import read_done

__all__ = ["BatchResult", "run_batch"]

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """What a batch ended with: its folder, a row per clip (as in report.json) and the summary line."""

    batch_dir: Path
    clips: list[ClipRow]
    summary: str

    @property
    def ok(self) -> bool:
        """True when every clip is done."""
        return all(row.status == ClipStatus.done for row in self.clips)

    @property
    def report(self) -> Path:
        return self.batch_dir / REPORT_HTML


class _Progress:
    """The executor's events -> the report rows, the report files, the overall bar and the console."""

    def __init__(self, report: BatchReport, bar: tqdm):
        self.report, self.bar = report, bar
        self.start = time.perf_counter()

    def eta(self) -> tuple[float, int, float] | None:
        """(seconds left, clips left, wall seconds per step) from this run's finished clips: the batch's
        wall time so far over the steps of the clips it finished (workers running side by side,
        fits and renders included), times the steps left (clips left x their mean step count);
        None before a clip finished here or once none is left."""
        rows = self.report.rows
        ran = [row for row in rows if row.status == ClipStatus.done and not row.reused and row.steps]
        left = sum(row.status in (ClipStatus.pending, ClipStatus.running) for row in rows)
        if not ran or not left:
            return None
        steps = sum(row.steps for row in ran)
        per_step = (time.perf_counter() - self.start) / steps
        return per_step * left * steps / len(ran), left, per_step

    def counts(self) -> dict[str, int]:
        rows = self.report.rows
        return {status: sum(row.status == status for row in rows) for status in ("done", "failed", "running")}

    def refresh(self) -> None:
        eta = self.eta()
        self.bar.set_postfix({**self.counts(), **({"ETA": duration_text(eta[0])} if eta else {})}, refresh=True)
        self.report.write()

    def started(self, name: str, where: str) -> None:
        row = self.report.row(name)
        if row.status in (ClipStatus.done, ClipStatus.failed):
            return  # a late notice of a clip that has finished
        row.status, row.host = ClipStatus.running.value, where
        logger.debug(f"{row.label}: started ({where})")
        self.refresh()

    def finished(self, outcome: ClipOutcome) -> None:
        row = self.report.row(outcome.name)
        row.record(outcome)
        if row.status == ClipStatus.done:
            logger.info(f"{row.label}: done in {row.seconds or 0:.1f} s ({row.run_dir})")
            eta = self.eta()
            if eta is not None:
                logger.info(f"batch ETA {duration_text(eta[0])}: {eta[1]} clip(s) left at {eta[2]:.2f} s per step "
                            f"(measured on this batch so far, fits and renders included)")
        else:
            logger.warning(f"{row.label} failed: {row.error}")
        self.bar.update(1)
        self.refresh()


@contextlib.contextmanager
def _batch_folder(batch_dir: Path, allow_unlocked: bool = False):
    """Create (or take back) the batch folder and hold its lock for the batch's lifetime: a second
    batch process on the same folder is a BatchError. The lock goes with the process, however it
    ends (flock), so a killed batch never blocks its rerun. Where the file system has no locks
    (some network mounts) the batch stops with one line, unless `allow_unlocked`."""
    meta = batch_dir / BATCH_META_FOLDER
    if batch_dir.exists() and not meta.is_dir() and any(batch_dir.iterdir()):
        raise BatchError(f"'{batch_dir}' exists and is not a batch folder: give another run_name= (or output_dir=)")
    meta.mkdir(parents=True, exist_ok=True)
    handle = (meta / "lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise BatchError(f"another batch ({owner}) is running in '{batch_dir}': wait for it, or give another "
                         f"run_name=") from None
    except OSError as error:  # a file system without locks (some network mounts)
        if not allow_unlocked:
            handle.close()
            raise BatchError(f"cannot lock the batch folder '{batch_dir}' ({error.strerror or error}): put the batch "
                             f"on a local file system (output_dir=...), or set allow_unlocked=true and start only "
                             f"one batch on this folder") from None
        logger.warning(f"running without the lock of {meta / 'lock'} (allow_unlocked=true): start no second batch "
                       f"on this folder")
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def run_batch(input_path: str | Path, config_path: str | Path | None = None, overrides: Sequence[str] = (),
              base_configs: dict[str, str | Path | None] | None = None, progress: bool = True) -> BatchResult:
    """Edit every clip of a folder or manifest (docs/batch.md) and return the result.

    Args:
        input_path: a folder of clips (video files, folders of frames, images) or a manifest YAML.
        config_path: a YAML of batch keys (BatchConfig: executor, workers, ray.*, output_dir,
            run_name) and edit keys for every clip (those of the video and image configs).
        overrides: ``key=value`` entries of the same keys, over `config_path`.
        base_configs: the base YAMLs by kind ("batch", "video", "image"); missing: the
            dataclass defaults (which they equal).
        progress: the overall progress bar (the clips' own progress is in their logs).

    Returns:
        The result; `result.ok` is False when a clip failed (or the batch was stopped).

    Raises:
        ConfigError, BatchError: bad settings or input, Ray missing or unreachable, the batch
            folder in use; raised before anything is written.
        KeyboardInterrupt: after the report is written with the interrupted clips back to pending.
    """
    batch_cfg, edit = load_batch_settings(config_path, overrides, base_configs)
    input_path = Path(input_path).expanduser()
    run_name = check_name(batch_cfg.run_name or f"{input_name(input_path)}-batch", "run_name")
    batch_dir = Path(batch_cfg.output_dir).expanduser().resolve() / run_name
    specs = discover_clips(input_path, exclude=batch_dir)
    jobs = compose_jobs(specs, edit, batch_dir)
    executor = make_executor(batch_cfg)
    executor.open()  # Ray: installed, reachable, connected, before anything is written
    rows = [ClipRow.of(job) for job in jobs]
    report = BatchReport(batch_dir, rows, title=f"t2l-batch: {run_name}", details={
        "input": str(input_path.resolve()), "batch folder": str(batch_dir),
        "config": str(config_path) if config_path else "", "overrides": " ".join(overrides),
        "executor": executor.describe(len(jobs)), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    bar = None
    try:
        with _batch_folder(batch_dir, batch_cfg.allow_unlocked):
            todo = []
            for job, row in zip(jobs, rows):
                outcome = read_done(Path(job.run_dir), job.settings_hash)
                if outcome is not None:
                    row.record(outcome, reused=True)
                else:
                    todo.append(job)
            reused = len(jobs) - len(todo)
            logger.info(f"batch of {len(jobs)} clips in {batch_dir}" + (
                f" ({reused} finished before with the same settings)" if reused else "")
                + (f"; {executor.describe(len(todo))}" if todo else ""))
            bar = tqdm(total=len(jobs), initial=reused, desc="clips", unit="clip", disable=not progress,
                       dynamic_ncols=True)
            events = _Progress(report, bar)
            events.refresh()
            try:
                executor.run(todo, events)
            except BaseException:
                for row in rows:
                    if row.status == ClipStatus.running:
                        row.status = ClipStatus.pending.value  # its checkpoint is resumed by the next run
                raise
            finally:
                report.finished = True
                report.write()
    finally:
        if bar is not None:
            bar.close()
        executor.close()
    summary = summary_line(rows)
    logger.info(f"report: {batch_dir / REPORT_HTML} ({REPORT_JSON} next to it)")
    return BatchResult(batch_dir=batch_dir, clips=rows, summary=summary)
