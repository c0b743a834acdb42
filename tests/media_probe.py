"""What the tests read back from a video file the project wrote, decoding it fully."""
from __future__ import annotations

from pathlib import Path


def probe_video(path: str | Path) -> dict:
    """Frame count, width, height and fps of a video file, decoding every frame."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    count = sum(1 for _ in reader)
    width, height = meta["size"]
    return {"frames": count, "width": width, "height": height, "fps": float(meta["fps"])}
