"""The web app's own settings (`t2l-app`): where it listens and what it accepts. Every other
`key=value` given to `t2l-app` is a default for the jobs, with the keys of the image, video and
batch configs (`clip.model=...`, `device=...`, `output_dir=...`)."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AppConfig"]


@dataclass
class AppConfig:
    """`t2l-app` settings, as `app.<key>=value` (or `--host`, `--port`, `--allow-dir`)."""

    host: str = "127.0.0.1"  # loopback: only this machine; another host warns (the app has no login)
    port: int = 7860  # 0: a free port
    max_upload_mb: float = 500.0  # one uploaded file (an image, a clip, a zip of frames) at most this big
    max_zip_frames: int = 5000  # a zip of frames holds at most this many images
    max_batch_files: int = 50  # the Batch tab takes at most this many uploaded clips at once
    queue_size: int = 32  # jobs waiting for the device at most (one runs at a time)
    poll_seconds: float = 0.25  # how often a running job's folder is read for snapshots and losses
    # snapshot_every of the edits the page starts (the Advanced section can change it): often enough that the
    # first snapshot shows within seconds
    snapshot_every: int = 5
    allow_dirs: list[str] = field(default_factory=list)  # server folders the Batch tab may read (empty: none)
