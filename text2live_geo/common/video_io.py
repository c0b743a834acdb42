"""Reading videos (a folder of frames or a video file) and writing mp4 files.

Video files are decoded and encoded by the ffmpeg binary that ships with ``imageio-ffmpeg``
(no system ffmpeg needed). mp4 outputs are H.264 at the frames' exact size: ``imageio``'s usual
rounding of the size up to a multiple of 16 is switched off, and odd sizes (which the common
``yuv420p`` chroma layout cannot hold) are written as ``yuv444p`` instead of being resized.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..common.io import InputError, read_image
from ..common.media_files import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_frame_files  # noqa: F401 (re-exported)
from .atomic import AtomicTarget

#: Output frame rate when the input is a folder of frames (which has none).
FOLDER_FPS = 10.0


class FrameShape:
    """``num_frames``, ``height`` and ``width`` of a ``frames`` attribute of shape ``(N, C, H, W)``
    (shared by every dataclass that carries a clip's frames)."""

    frames: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[2]

    @property
    def width(self) -> int:
        return self.frames.shape[3]


@dataclass
class Video(FrameShape):
    """A decoded video.

    Attributes:
        frames: ``(N, 3, H, W)`` float32 in [0, 1], on the CPU.
        fps: frame rate of a video file; None for a frames folder.
        source: the path it was read from.
        names: per frame, the file name (folder) or ``frame_00000`` style names (video file).
    """

    frames: torch.Tensor
    fps: float | None
    source: Path
    names: list[str]


def read_frames_folder(folder: str | Path, max_frames: int = 0) -> tuple[Video, list[str]]:
    """Read every image of a folder as one video -> (Video, notes for the user).

    Raises InputError for a folder without image files, an unreadable frame, or frames of
    different sizes (naming the first frame that differs and both sizes).
    """
    folder = Path(folder)
    files = list_frame_files(folder)
    if not files:
        raise InputError(f"frames folder '{folder}' holds no image files "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    if max_frames > 0:
        files = files[:max_frames]
    frames: list[torch.Tensor] = []
    notes: dict[str, int] = {}
    for path in files:
        image, image_notes = read_image(path)
        if frames and image.shape[1:] != frames[0].shape:
            first_height, first_width = frames[0].shape[-2:]
            height, width = image.shape[-2:]
            raise InputError(f"frames folder '{folder}' mixes frame sizes: '{files[0].name}' is "
                             f"{first_width}x{first_height} but '{path.name}' is {width}x{height} "
                             "(all frames must have one size)")
        frames.append(image[0])
        for note in image_notes:  # one line per kind of note, not per frame
            kind = note.split(": ", 1)[-1]
            notes[kind] = notes.get(kind, 0) + 1
    summary = [f"{count} frame(s) of '{folder}': {kind}" for kind, count in notes.items()]
    return Video(torch.stack(frames), None, folder, [p.name for p in files]), summary


def read_video_file(path: str | Path, max_frames: int = 0) -> tuple[Video, list[str]]:
    """Decode a video file with imageio-ffmpeg -> (Video, notes). InputError if unreadable."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise InputError(f"video file not found: '{path}'")
    frames: list[np.ndarray] = []
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        width, height = meta["size"]
        try:
            for data in reader:
                frames.append(np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3))
                if 0 < max_frames <= len(frames):
                    break
        finally:
            reader.close()  # stops ffmpeg when we leave early
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise InputError(f"could not decode video file '{path}' (not a video, or corrupt?): {reason}") from None
    if not frames:
        raise InputError(f"video file '{path}' holds no frames")
    fps = meta.get("fps")
    fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
    notes = [] if fps else [f"'{path.name}' has no frame rate; the outputs use {FOLDER_FPS:g} fps"]
    array = np.stack(frames)
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255.0)
    return Video(tensor, fps, path, [f"frame_{i:05d}" for i in range(len(frames))]), notes


def video_name(path: str | Path) -> str:
    """A run-folder stem for a video: the file stem, or the folder name (its parent's for generic
    names like ``frames/``)."""
    path = Path(path)
    path = path.resolve() if path.name in ("", ".", "..") else path
    if path.is_dir() and path.name.lower() in ("frames", "images", "rgb", "jpegimages") and path.parent.name:
        return path.parent.name
    return path.stem or "video"


def read_video(path: str | Path, max_frames: int = 0) -> tuple[Video, list[str]]:
    """Read a frames folder or a video file (see :func:`read_frames_folder`, :func:`read_video_file`).

    ``max_frames`` > 0 keeps only the first frames.
    """
    path = Path(path)
    if not str(path) or not path.exists():
        raise InputError(f"video not found: '{path}' (video.frames must be a folder of frames or a video file)")
    if path.is_dir():
        return read_frames_folder(path, max_frames)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(f"'{path}' is a single image; video.frames must be a folder of frames or a video file")
    return read_video_file(path, max_frames)


def _frame_bytes(frame: torch.Tensor) -> bytes:
    """``(3, H, W)`` float in [0, 1] -> packed rgb24 bytes."""
    array = (frame.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(array).tobytes()


def _h264_encoder() -> str:
    """libx264 when the ffmpeg binary has it (the imageio-ffmpeg wheels do), else its first H.264 encoder."""
    try:
        from imageio_ffmpeg._io import get_first_available_h264_encoder
    except ImportError:  # private helper moved: the wheels' ffmpeg has libx264
        return "libx264"
    return get_first_available_h264_encoder()


class VideoWriter:
    """Write frames to an mp4 one batch at a time (H.264, exact size, fixed frame rate).

    Use as a context manager; ``write(frames)`` takes ``(3, H, W)`` or ``(B, 3, H, W)`` floats in
    [0, 1]. The file is written under a temporary name and moved into place on a clean close,
    so a crash never leaves a truncated mp4 that looks finished.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, crf: int = 18):
        import imageio_ffmpeg

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.target = AtomicTarget(self.path)  # the final name only once the whole video is written
        self.temporary = self.target.temporary
        self.size = (width, height)
        codec = _h264_encoder()
        # yuv420p (what every player expects) stores chroma at half resolution, so it needs even
        # sizes; an odd size gets full-resolution chroma rather than a resize
        pix_fmt_out = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        output_params = ["-crf", str(int(crf))] if codec == "libx264" else []
        self._writer = imageio_ffmpeg.write_frames(
            str(self.temporary), (width, height), fps=Fraction(fps).limit_denominator(100000),
            codec=codec, pix_fmt_out=pix_fmt_out, quality=None, macro_block_size=1,
            output_params=output_params, ffmpeg_log_level="error")
        self._writer.send(None)  # start ffmpeg
        self.count = 0

    def write(self, frames: torch.Tensor) -> None:
        if frames.dim() == 3:
            frames = frames[None]
        if tuple(frames.shape[-2:]) != (self.size[1], self.size[0]) or frames.shape[1] != 3:
            raise ValueError(f"frames {tuple(frames.shape)} do not match the video size {self.size}")
        for frame in frames:
            self._writer.send(_frame_bytes(frame))
            self.count += 1

    def close(self) -> Path:
        self._writer.close()
        return self.target.commit()

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self.target.discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | Path, frames: torch.Tensor | Iterable[torch.Tensor], fps: float, crf: int = 18) -> Path:
    """Write ``(N, 3, H, W)`` frames (or an iterable of ``(B, 3, H, W)`` / ``(3, H, W)`` batches) in
    [0, 1] as an H.264 mp4 at ``fps`` frames per second. Returns the path."""
    writer: VideoWriter | None = None
    batches = [frames] if torch.is_tensor(frames) else frames
    try:
        for batch in batches:
            if writer is None:
                writer = VideoWriter(path, batch.shape[-1], batch.shape[-2], fps, crf)
            writer.write(batch)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise ValueError("write_video needs at least one frame")
    return writer.close()
