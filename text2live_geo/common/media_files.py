"""Which files are images, videos and frames of a clip, without torch: what lists files (the batch
driver, `text2live_geo.common.video_io`) imports from here, so listing a folder costs no torch import."""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["DEFAULT_FRAME_LIMIT", "DEFAULT_MAX_IMAGE_PIXELS", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS",
           "list_frame_files", "natural_key"]

#: The largest image (or frame) read unless a config says otherwise, in pixels (width x height):
#: 200 megapixels admits the largest photos cameras take (a 200-megapixel phone sensor at full
#: resolution is 16320 x 12240, medium format 150 MP at 14204 x 10652, 102 MP at 11648 x 8736,
#: which a 100 MP limit would refuse) and costs at most ~0.6 GB as 8-bit RGB plus ~2.4 GB as
#: float32 while it is read; anything larger is a scan, a panorama or a decompression bomb, and the
#: edit downsizes it anyway (crops.resize_short, video.long_side). Torch-free, so the settings can
#: name it without importing torch.
DEFAULT_MAX_IMAGE_PIXELS = 200_000_000

#: The most frames a clip may keep unless a config says otherwise (video.frame_limit): ~67 s at
#: 30 fps (NLA fits 70 frames). An edit's memory grows with the frames kept (at the 768 px
#: fitting size, see docs/video.md "Inputs and limits"), so a whole feature film is refused up front
#: rather than decoded until memory runs out.
DEFAULT_FRAME_LIMIT = 2000

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
