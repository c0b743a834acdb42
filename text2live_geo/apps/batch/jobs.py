"""What the batch driver and its workers hand each other: a clip's job and its outcome (plain,
picklable dataclasses: they cross process boundaries and Ray), the batch's error type and the
names of the files a batch writes."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ...common.errors import UserError

__all__ = ["BatchError", "ClipJob", "ClipOutcome", "ClipStatus", "DONE_NAME", "LOG_NAME", "SETTINGS_NAME",
           "BATCH_META_FOLDER", "REPORT_ASSETS_FOLDER", "SUPERSEDED_FOLDER"]

#: in each clip's folder, next to the edit's own outputs: its log, the settings it runs with, and
#: the marker that it finished (with the hash of those settings)
LOG_NAME = "log.txt"
SETTINGS_NAME = "batch_settings.json"
DONE_NAME = "done.json"
#: in the batch folder (names starting with a dot: no clip can have them)
BATCH_META_FOLDER = ".batch"  # the lock of the running batch
REPORT_ASSETS_FOLDER = ".report"  # the report's preview images
SUPERSEDED_FOLDER = ".superseded"  # outputs of clips rerun with other settings, moved aside


class BatchError(UserError):
    """A batch cannot start: its input, manifest, settings or executor is wrong (one line says what)."""


class ClipStatus(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


@dataclass
class ClipJob:
    """One clip of a batch, fully resolved by the driver.

    Attributes:
        name: the clip's folder name in the batch folder (unique in the batch).
        label: how messages name the clip (its file name, or its manifest name).
        source: the clip (absolute path): a video file, a folder of frames or an image.
        kind: "video" or "image": which editor runs it.
        settings_yaml: the clip's whole edit config (what the edit saves as config.yaml).
        settings_hash: hash of the settings and of the clip's files (size, modification time);
            a finished clip is reused only when it matches.
        run_dir: the clip's folder, ``<output_dir>/<run_name>/<name>`` (absolute).
        group: clips of one group never run at once (two edits of one clip that fit its atlas
            into the same cache folder); None: no constraint.
    """

    name: str
    label: str
    source: str
    kind: str
    settings_yaml: str
    settings_hash: str
    run_dir: str
    group: str | None = None


@dataclass
class ClipOutcome:
    """What running (or reusing) a clip gave: the report's row for it, less what the job says."""

    name: str
    status: str  # a ClipStatus value: done or failed
    error: str | None = None  # one line: why it failed
    seconds: float | None = None  # wall time of the clip in the run that finished it
    psnr_db: float | None = None  # the atlas's reconstruction PSNR (videos)
    losses: dict[str, float] = field(default_factory=dict)  # the last step's loss values
    previews: dict[str, str] = field(default_factory=dict)  # before / after: paths relative to the batch folder
    steps: int | None = None
    host: str = ""  # where it ran
    recycle_worker: bool = False  # local executor: start a fresh worker process after this clip
