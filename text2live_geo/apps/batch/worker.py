"""One clip of a batch, run where the executor puts it (a local worker process or a Ray task):
its folder made ready (resume, reuse or move aside), its log, the edit, the done marker and the
report's preview images. Every exception of the clip becomes a failed outcome here, so one clip
never stops the others.
"""
from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path

from ...common.atomic import atomic_write, atomic_write_json
from ...common.console import PACKAGES
from ...common.errors import UserError
from .jobs import (
    DONE_NAME,
    LOG_NAME,
    REPORT_ASSETS_FOLDER,
    SETTINGS_NAME,
    SUPERSEDED_FOLDER,
    ClipJob,
    ClipOutcome,
    ClipStatus,
)

__all__ = ["read_done", "run_clip", "write_json_atomic"]

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"  # what the edits write (text2live_geo.editing.run), without importing torch here
CHECKPOINT_NAME = "checkpoint.pt"
PREVIEW_WIDTH = 240


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON atomically and durably (settings and done markers): readers never see half a file."""
    atomic_write_json(path, data, durable=True)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_done(run_dir: Path, settings_hash: str) -> ClipOutcome | None:
    """The outcome a finished clip recorded, when it finished with these settings; else None."""
    done = _read_json(Path(run_dir) / DONE_NAME)
    if not done or done.get("settings_hash") != settings_hash or not isinstance(done.get("outcome"), dict):
        return None
    try:
        return ClipOutcome(**done["outcome"])
    except TypeError:  # a marker of another version
        return None


# ------------------------------------------------------------------------ the clip folder
def _move_aside(run_dir: Path, why: str) -> Path:
    """Move a clip folder to <batch>/.superseded/<name>-<time> (never deleted, never mixed)."""
    aside_root = run_dir.parent / SUPERSEDED_FOLDER
    aside_root.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, index = aside_root / f"{run_dir.name}-{stamp}", 1
    while target.exists():
        index += 1
        target = aside_root / f"{run_dir.name}-{stamp}-{index}"
    os.replace(run_dir, target)
    logger.info(f"moved the earlier outputs of {run_dir.name} ({why}) to {target}")
    return target


def prepare_folder(job: ClipJob) -> tuple[str, str | None]:
    """Make the clip's folder ready and say how to run it: ("done", None) when it finished with
    these settings, ("resume", None) when an unfinished run with these settings has a
    checkpoint, else ("run", note) with the folder holding nothing of an edit (earlier outputs
    moved aside; the note says so)."""
    run_dir = Path(job.run_dir)
    if not run_dir.exists():
        return "run", None
    if read_done(run_dir, job.settings_hash) is not None:
        return "done", None
    started = _read_json(run_dir / SETTINGS_NAME) or {}
    same = started.get("settings_hash") == job.settings_hash and not (run_dir / DONE_NAME).exists()
    holds_run = (run_dir / CONFIG_NAME).exists() or (run_dir / CHECKPOINT_NAME).exists()
    if same and (run_dir / CONFIG_NAME).is_file() and (run_dir / CHECKPOINT_NAME).is_file():
        return "resume", None
    own_files = {LOG_NAME, SETTINGS_NAME}
    if same and not holds_run and all(p.name in own_files for p in run_dir.iterdir()):
        return "run", None  # an attempt that stopped before the edit wrote anything: continue its log
    why = "made with other settings or another clip" if not same else "an unfinished run without a checkpoint"
    return "run", str(_move_aside(run_dir, why))


@contextlib.contextmanager
def clip_log(path: Path, redirect_output: bool):
    """The package loggers (debug too: the training progress) into the clip's log file for the
    duration; with `redirect_output`, this process's stdout and stderr as well (warnings,
    ffmpeg, a crash's last words)."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in (*PACKAGES, "py.warnings")]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.addHandler(handler)
        each.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    saved: list[int] = []
    if redirect_output:
        with contextlib.suppress(OSError, ValueError):
            import sys

            sys.stdout.flush()
            sys.stderr.flush()
            target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            saved = [os.dup(1), os.dup(2)]
            os.dup2(target, 1)
            os.dup2(target, 2)
            os.close(target)
    try:
        yield
    finally:
        if saved:
            import sys

            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        logging.captureWarnings(False)
        for each, level in zip(loggers, levels):
            each.removeHandler(handler)
            each.setLevel(level)
        handler.close()


# ----------------------------------------------------------------------------- the edit
def _edit(job: ClipJob, how: str) -> None:
    run_dir = Path(job.run_dir)
    if job.kind == "video":
        from ...editing import edit_video as edit
    else:
        from ...editing import edit_image as edit
    if how == "resume":
        edit(None, (), resume=run_dir, progress=False)
        return
    with tempfile.TemporaryDirectory(prefix="t2l-batch-") as folder:
        settings = Path(folder) / "config.yaml"
        settings.write_text(job.settings_yaml)
        edit(settings, (), progress=False, run_dir=run_dir)


def _reason(error: BaseException) -> str:
    """One line saying why a clip failed."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, UserError):
        reason = first
    elif isinstance(error, MemoryError):
        reason = f"out of memory (host RAM){': ' + first if first else ''}"
    elif "out of memory" in text.lower():
        reason = f"out of GPU memory: {first}"
    else:
        reason = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return reason[:400]


def _final_losses(run_dir: Path) -> tuple[dict[str, float], int | None]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").is_file() else []
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            losses = {k: round(float(v), 5) for k, v in record.items()
                      if k not in ("step", "lr", "seconds", "renders") and isinstance(v, int | float)}
            return losses, int(record.get("step", 0))
    return {}, None


def _thumbnail(source, target: Path) -> str:
    """Save a small copy of an image (a path or a PIL image); returns its path relative to the batch."""
    from PIL import Image

    image = Image.open(source) if isinstance(source, str | Path) else source
    with image:
        image = image.convert("RGB")
        if image.width > PREVIEW_WIDTH:
            image = image.resize((PREVIEW_WIDTH, max(1, round(image.height * PREVIEW_WIDTH / image.width))))
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda temporary: image.save(temporary, format="PNG"))
    return str(target.relative_to(target.parents[2]))


def _previews(job: ClipJob, run_dir: Path) -> dict[str, str]:
    """Before / after images for the report: the input and the result (a video's middle frame)."""
    assets = run_dir.parent / REPORT_ASSETS_FOLDER / job.name
    if job.kind == "image":
        return {"before": _thumbnail(run_dir / "input.png", assets / "before.png"),
                "after": _thumbnail(run_dir / "composite.png", assets / "after.png")}
    frames = sorted((run_dir / "frames").glob("*.png"))
    if not frames:
        return {}
    index = len(frames) // 2
    return {"before": _thumbnail(_input_frame(Path(job.source), index), assets / "before.png"),
            "after": _thumbnail(frames[index], assets / "after.png")}


def _input_frame(source: Path, index: int):
    """Frame `index` of a clip as a PIL image, holding one frame in memory at a time."""
    from PIL import Image

    from ...common.media_files import list_frame_files

    if source.is_dir():
        return Image.open(list_frame_files(source)[index])
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(source), pix_fmt="rgb24")
    try:
        size = next(reader)["size"]
        for number, data in enumerate(reader):
            if number == index:
                return Image.frombytes("RGB", size, data)
    finally:
        reader.close()
    raise ValueError(f"'{source}' has no frame {index}")


def _outcome(job: ClipJob, run_dir: Path, seconds: float) -> ClipOutcome:
    summary = _read_json(run_dir / "summary.json") or {}
    losses, steps = _final_losses(run_dir)
    try:
        previews = _previews(job, run_dir)
    except Exception as error:  # a preview is not worth failing a finished edit for
        logger.warning(f"no preview images for {job.name}: {_reason(error)}")
        previews = {}
    return ClipOutcome(name=job.name, status=ClipStatus.done.value, seconds=round(seconds, 2),
                       psnr_db=summary.get("reconstruction_psnr_db"), losses=losses, previews=previews,
                       steps=steps, host=socket.gethostname())


def run_clip(job: ClipJob, redirect_output: bool = False) -> ClipOutcome:
    """Run one clip to the end (or reuse it) and return its outcome; never raises for the clip's
    own failures (KeyboardInterrupt passes: the batch is being stopped)."""
    start = time.perf_counter()
    run_dir = Path(job.run_dir)
    try:
        how, note = prepare_folder(job)
        if how == "done":
            outcome = read_done(run_dir, job.settings_hash)
            return outcome
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return ClipOutcome(name=job.name, status=ClipStatus.failed.value, error=_reason(error),
                           host=socket.gethostname())
    with clip_log(run_dir / LOG_NAME, redirect_output):
        try:
            if note:
                logger.info(f"earlier outputs moved to {note}")
            write_json_atomic(run_dir / SETTINGS_NAME, {"settings_hash": job.settings_hash, "source": job.source,
                                                        "kind": job.kind, "name": job.name})
            logger.info(f"batch clip {job.name}: {job.kind} edit of {job.source} "
                        f"({'resuming its checkpoint' if how == 'resume' else 'from the start'}) "
                        f"on {socket.gethostname()}, process {os.getpid()}")
            edit_start = time.perf_counter()
            _edit(job, how)
            edit_seconds = time.perf_counter() - edit_start
            seconds = time.perf_counter() - start
            outcome = _outcome(job, run_dir, seconds)
            write_json_atomic(run_dir / DONE_NAME, {"settings_hash": job.settings_hash,
                                                    "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                    "outcome": outcome.__dict__})
            logger.info(f"batch clip {job.name}: done in {seconds:.2f} s (the edit itself: {edit_seconds:.2f} s)")
            return outcome
        except KeyboardInterrupt:
            logger.info(f"batch clip {job.name}: interrupted (rerun the batch to resume it)")
            raise
        except Exception as error:
            reason = _reason(error)
            if isinstance(error, UserError):
                logger.error(f"batch clip {job.name} failed: {reason}")
            else:
                logger.error(f"batch clip {job.name} failed: {reason}\n{traceback.format_exc()}")
            return ClipOutcome(name=job.name, status=ClipStatus.failed.value, error=reason,
                               seconds=round(time.perf_counter() - start, 2), host=socket.gethostname(),
                               recycle_worker=not isinstance(error, UserError))
        finally:
            gc.collect()
            with contextlib.suppress(Exception):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
