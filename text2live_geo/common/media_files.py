"""Which files are images, videos and frames of a clip, without torch: what lists files (the batch
driver, `text2live_geo.common.video_io`) imports from here, so listing a folder costs no torch import."""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "list_frame_files", "natural_key"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".gif")


def natural_key(path: Path) -> list:
    """Sort key that orders frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_frame_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural name order (hidden files skipped)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    return sorted(files, key=natural_key)
