"""Reading videos (a folder of frames or a video file) and writing mp4 files.

Reading is bounded: :class:`VideoStream` probes a clip before decoding anything (a folder's file
list and its first frame's header; a video file's size, frame rate and duration from ffmpeg's
metadata) and refuses one whose kept frames would exceed ``frame_limit`` or whose frames are over
``max_frame_pixels``, with one line naming the key to set. It then decodes one frame at a time
(8-bit as decoded) and :meth:`VideoStream.read` resizes each frame to the size asked for as it
arrives, so a read holds the clip only at that size (``video.long_side``, or the atlas's), plus
one frame at the source size, never the whole clip at the source size. The values equal those of
decoding everything and then resizing (the same antialiased bilinear resize, frame by frame).

Video files are decoded and encoded by the ffmpeg binary that ships with ``imageio-ffmpeg``
(no system ffmpeg needed). mp4 outputs are H.264 at the frames' exact size: ``imageio``'s usual
rounding of the size up to a multiple of 16 is switched off, and odd sizes (which the common
``yuv420p`` chroma layout cannot hold) are written as ``yuv444p`` instead of being resized.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch.nn import functional as F

from ..common.io import InputError, check_image_size, probe_image, read_frame_image
from ..common.media_files import (  # noqa: F401 (re-exported)
    DEFAULT_FRAME_LIMIT,
    DEFAULT_MAX_IMAGE_PIXELS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    list_frame_files,
)
from .atomic import AtomicTarget

#: Output frame rate when the input is a folder of frames (which has none).
FOLDER_FPS = 10.0

#: the config keys the limits' messages name (VideoInputConfig's)
FRAME_LIMIT_KEY = "video.frame_limit"
MAX_FRAMES_KEY = "video.max_frames"
FRAME_PIXELS_KEY = "video.max_frame_pixels"


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
        frames: ``(N, 3, H, W)`` float32 in [0, 1] (uint8 0..255 when read with ``eight_bit``), on
            the CPU, at the size it was read at.
        fps: frame rate of a video file; None for a frames folder.
        source: the path it was read from.
        names: per frame, the file name (folder) or ``frame_00000`` style names (video file).
        source_size: (height, width) of the frames as stored (before any resize); None: ``frames``'s.
        truncated: the source holds more frames than the ``max_frames`` kept.
    """

    frames: torch.Tensor
    fps: float | None
    source: Path
    names: list[str]
    source_size: tuple[int, int] | None = None
    truncated: bool = False

    def __post_init__(self) -> None:
        if self.source_size is None:
            self.source_size = (self.height, self.width)


class FrameLimitError(InputError):
    """A clip that would keep more frames than ``video.frame_limit``; the message says what to set."""


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, C, H, W)`` in [0, 1] -> ``(N, C, h, w)``: bilinear with antialiasing (an area-like
    average when shrinking), a few frames at a time; the frames themselves when already that size."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    out = [F.interpolate(chunk.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
           for chunk in frames.split(8)]
    return torch.cat(out).clamp_(0.0, 1.0)


def _as_float(frame: torch.Tensor) -> torch.Tensor:
    """A decoded frame (uint8, or float32 in [0, 1]) as float32 in [0, 1]."""
    return frame.float().div_(255.0) if frame.dtype == torch.uint8 else frame.float()


def frames_as_float(frames: torch.Tensor) -> torch.Tensor:
    """Frames stored as uint8 (0..255) or float (in [0, 1]) as float32 in [0, 1] (a new tensor
    for uint8, ``frames`` itself when already float32)."""
    return frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames.float()


def frames_as_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Frames in [0, 1] rounded to 8 bits (0..255, uint8): a quarter of float32's memory, within
    half a level (0.002) of the values; uint8 frames are returned as they are."""
    if frames.dtype == torch.uint8:
        return frames
    return (frames.clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class VideoStream:
    """A clip (a frames folder or a video file) opened for reading, frame by frame.

    Creating one probes the clip, decoding nothing: a folder's image files are listed and the first
    one's header read; a video file's size, frame rate and duration come from ffmpeg's metadata
    (its frame count is duration x frame rate, an estimate). It raises InputError (one line) for a
    missing or unreadable clip, FrameLimitError when the frames kept (the first ``max_frames``; 0:
    all) would be more than ``frame_limit`` (0: no limit), and ImageTooLargeError for frames over
    ``max_frame_pixels`` (0: no limit). A clip whose length the metadata does not give is held to
    ``frame_limit`` while it is decoded.

    Iterating decodes the kept frames in order, one at a time, as ``(3, H, W)`` tensors at the
    source size: uint8 as decoded (float32 in [0, 1] only for 16-bit or transparent frames of a
    folder). :meth:`read` collects them resized; :meth:`batches` gives them as float batches. Each
    iteration decodes the clip again (a video file: a new ffmpeg process, stopped early when left).

    Attributes:
        path: the clip.
        width, height: the frames' size as stored.
        fps: a video file's frame rate (None when unknown, and for a folder).
        source_frames: frames in the clip: exact for a folder, duration x fps for a video file
            (None when the metadata has no duration).
        truncated: the clip holds more frames than ``max_frames`` (known for a folder at once, for
            a file once the kept frames have been decoded).
    """

    def __init__(self, path: str | Path, max_frames: int = 0, frame_limit: int = 0,
                 max_frame_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
        self.path = Path(path)
        self.max_frames, self.frame_limit = int(max_frames), int(frame_limit)
        self.max_frame_pixels = int(max_frame_pixels)
        self.truncated = False
        self.fps: float | None = None
        self.source_frames: int | None = None
        self.files: list[Path] | None = None
        self._duration: float | None = None
        self._probe_notes: list[str] = []
        self._conversions: dict[str, int] = {}
        path = self.path
        if not str(path) or not path.exists():
            raise InputError(f"video not found: '{path}' (video.frames must be a folder of frames or a video file)")
        if path.is_dir():
            self._probe_folder()
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            raise InputError(f"'{path}' is a single image; video.frames must be a folder of frames or a video file")
        else:
            self._probe_file()
        if self.source_frames is not None:
            kept = min(self.source_frames, self.max_frames) if self.max_frames > 0 else self.source_frames
            # a file's count is duration x fps, which can be one off: at the limit, decoding decides
            slack = 0 if self.files is not None else 1
            if self.frame_limit > 0 and kept > self.frame_limit + slack:
                raise self._too_long(kept)

    # ---------------------------------------------------------------------- probing
    def _probe_folder(self) -> None:
        files = list_frame_files(self.path)
        if not files:
            raise InputError(f"frames folder '{self.path}' holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        self.files = files
        self.source_frames = len(files)
        self.truncated = 0 < self.max_frames < len(files)
        self.width, self.height = probe_image(files[0], self.max_frame_pixels, FRAME_PIXELS_KEY)

    def _probe_file(self) -> None:
        import imageio_ffmpeg

        try:
            reader = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24")
            try:
                meta = next(reader)
            finally:
                reader.close()
            self.width, self.height = (int(side) for side in meta["size"])
        except (OSError, RuntimeError, StopIteration, KeyError, ValueError, TypeError) as error:
            raise InputError(f"could not decode video file '{self.path}' (not a video, or corrupt?): "
                             f"{_reason(error)}") from None
        fps = meta.get("fps")
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
        if self.fps is None:
            self._probe_notes.append(f"'{self.path.name}' has no frame rate; the outputs use {FOLDER_FPS:g} fps")
        duration = meta.get("duration")
        if self.fps and duration and np.isfinite(duration) and duration > 0:
            self._duration = float(duration)
            self.source_frames = max(1, round(self._duration * self.fps))
        check_image_size(self.path, self.width, self.height, self.max_frame_pixels, FRAME_PIXELS_KEY)

    def _too_long(self, kept: int | None) -> FrameLimitError:
        limit = self.frame_limit
        if kept is None:
            count = f"more than {limit} frames"
        elif self.files is None and self._duration is not None:
            count = f"about {kept} frames ({self._duration:.0f} s at {self.fps:g} fps)"
        else:
            count = f"{kept} frames"
        return FrameLimitError(
            f"clip '{self.path}' has {count}, more than {FRAME_LIMIT_KEY}={limit} allows: pass "
            f"{MAX_FRAMES_KEY}={limit} (or fewer) to use its first frames, or raise {FRAME_LIMIT_KEY} (0: no limit)")

    # ------------------------------------------------------------------------ facts
    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames as stored."""
        return self.height, self.width

    @property
    def expected_frames(self) -> int | None:
        """The frames a read keeps, as far as the probe knows (None: not known before decoding)."""
        if self.source_frames is None:
            return self.max_frames or None
        return min(self.source_frames, self.max_frames) if self.max_frames > 0 else self.source_frames

    def frame_names(self, count: int) -> list[str]:
        """The names of the first ``count`` frames: file names (folder) or ``frame_00000`` ... (file)."""
        if self.files is not None:
            return [p.name for p in self.files[:count]]
        return [f"frame_{i:05d}" for i in range(count)]

    @property
    def notes(self) -> list[str]:
        """Lines for the user: the probe's (a file without a frame rate) and, once frames have been
        read, one per kind of conversion (a count of the frames, not a line per frame)."""
        conversions = [f"{count} frame(s) of '{self.path}': {kind}" for kind, count in self._conversions.items()]
        return self._probe_notes + conversions

    # ---------------------------------------------------------------------- decoding
    def __iter__(self) -> Iterator[torch.Tensor]:
        return self._folder_frames() if self.files is not None else self._file_frames()

    def _folder_frames(self) -> Iterator[torch.Tensor]:
        files = self.files[: self.max_frames] if self.max_frames > 0 else self.files
        self._conversions = {}
        for path in files:
            frame, notes = read_frame_image(path, self.max_frame_pixels, FRAME_PIXELS_KEY)
            height, width = frame.shape[-2:]
            if (height, width) != (self.height, self.width):
                raise InputError(f"frames folder '{self.path}' mixes frame sizes: '{self.files[0].name}' is "
                                 f"{self.width}x{self.height} but '{path.name}' is {width}x{height} "
                                 "(all frames must have one size)")
            for note in notes:  # one line per kind of note, not per frame
                kind = note.split(": ", 1)[-1]
                self._conversions[kind] = self._conversions.get(kind, 0) + 1
            yield frame

    def _file_frames(self) -> Iterator[torch.Tensor]:
        import imageio_ffmpeg

        width, height = self.width, self.height
        count = 0
        self.truncated = False
        try:
            reader = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24")
            try:
                meta = next(reader)
                if tuple(meta["size"]) != (width, height):
                    raise InputError(f"video file '{self.path}' changed while it was read "
                                     f"({width}x{height}, now {meta['size'][0]}x{meta['size'][1]})")
                for data in reader:
                    if 0 < self.max_frames <= count:
                        self.truncated = True
                        break
                    if 0 < self.frame_limit <= count:
                        raise self._too_long(None)
                    # a writable copy of ffmpeg's bytes, so torch may own it
                    frame = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(height, width, 3)
                    count += 1
                    yield frame.permute(2, 0, 1)
            finally:
                reader.close()  # stops ffmpeg when we leave early
        except InputError:
            raise
        except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as error:
            raise InputError(f"could not decode video file '{self.path}' (not a video, or corrupt?): "
                             f"{_reason(error)}") from None
        if count == 0:
            raise InputError(f"video file '{self.path}' holds no frames")

    def batches(self, batch_size: int, size: tuple[int, int] | None = None) -> Iterator[torch.Tensor]:
        """The kept frames as ``(B, 3, h, w)`` float32 batches in [0, 1] (the last one shorter), at
        ``size`` (height, width; None: the source size), decoded and converted a batch at a time."""
        batch: list[torch.Tensor] = []
        for frame in self:
            batch.append(self._converted(frame, size))
            if len(batch) == batch_size:
                yield torch.stack(batch)
                batch = []
        if batch:
            yield torch.stack(batch)

    @staticmethod
    def _converted(frame: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
        """One decoded frame as float32 in [0, 1] at ``size`` (resized as :func:`resize_frames` does)."""
        frame = _as_float(frame)
        if size is not None and tuple(size) != tuple(frame.shape[-2:]):
            frame = resize_frames(frame[None], size)[0]
        return frame

    def read(self, size: tuple[int, int] | None = None, eight_bit: bool = False) -> Video:
        """Decode the kept frames into one ``(N, 3, h, w)`` float32 tensor at ``size`` (height, width;
        None: the source size), each frame resized as it arrives: the clip is held at ``size`` only.
        The values equal decoding every frame and then :func:`resize_frames`. ``eight_bit``: hold
        them as uint8 instead (:func:`frames_as_uint8` of those values; a quarter of the memory)."""
        height, width = size if size is not None else (self.height, self.width)
        dtype = torch.uint8 if eight_bit else torch.float32
        expected = self.expected_frames
        # a video file's count is an estimate: room for one more; the buffer grows if it was short
        capacity = max(1, (expected or 16) + (0 if self.files is not None else 1))
        frames = torch.empty((capacity, 3, height, width), dtype=dtype)
        count = 0
        for frame in self:
            if count == frames.shape[0]:
                grown = torch.empty((max(count + 1, math.ceil(count * 1.5)), 3, height, width), dtype=dtype)
                grown[:count] = frames
                frames = grown
            converted = self._converted(frame, size)
            frames[count] = frames_as_uint8(converted) if eight_bit else converted
            count += 1
        frames = frames[:count]  # a view: pages never written cost no memory
        return Video(frames, self.fps, self.path, self.frame_names(count), source_size=(self.height, self.width),
                     truncated=self.truncated)


def read_frames_folder(folder: str | Path, max_frames: int = 0) -> tuple[Video, list[str]]:
    """Read every image of a folder as one video -> (Video, notes for the user).

    Raises InputError for a folder without image files, an unreadable frame, or frames of
    different sizes (naming the first frame that differs and both sizes).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"frames folder not found: '{folder}'")
    return read_video(folder, max_frames)


def read_video_file(path: str | Path, max_frames: int = 0) -> tuple[Video, list[str]]:
    """Decode a video file with imageio-ffmpeg -> (Video, notes). InputError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video file not found: '{path}'")
    return read_video(path, max_frames)


def video_name(path: str | Path) -> str:
    """A run-folder stem for a video: the file stem, or the folder name (its parent's for generic
    names like ``frames/``)."""
    path = Path(path)
    path = path.resolve() if path.name in ("", ".", "..") else path
    if path.is_dir() and path.name.lower() in ("frames", "images", "rgb", "jpegimages") and path.parent.name:
        return path.parent.name
    return path.stem or "video"


def read_video(path: str | Path, max_frames: int = 0, *, size: tuple[int, int] | None = None, frame_limit: int = 0,
               max_frame_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[Video, list[str]]:
    """Read a frames folder or a video file -> (Video, notes for the user) (:class:`VideoStream`).

    ``max_frames`` > 0 keeps only the first frames; ``size`` (height, width) resizes each frame as it
    is decoded (None: the source size); ``frame_limit`` and ``max_frame_pixels`` (0: no limit) refuse
    a clip before decoding it (FrameLimitError, ImageTooLargeError, naming the keys).
    """
    stream = VideoStream(path, max_frames, frame_limit, max_frame_pixels)
    video = stream.read(size)
    return video, stream.notes


def _frame_bytes(frame: torch.Tensor) -> bytes:
    """``(C, H, W)`` float in [0, 1] -> packed bytes, the channels interleaved (rgb24 for 3, rgba for 4)."""
    array = (frame.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(array).tobytes()


def _h264_encoder() -> str:
    """libx264 when the ffmpeg binary has it (the imageio-ffmpeg wheels do), else its first H.264 encoder."""
    try:
        from imageio_ffmpeg._io import get_first_available_h264_encoder
    except ImportError:  # private helper moved: the wheels' ffmpeg has libx264
        return "libx264"
    return get_first_available_h264_encoder()


class PipedVideoWriter:
    """Write frames one batch at a time through a piped ffmpeg (imageio-ffmpeg), exact size, fixed
    frame rate; the shared part of :class:`VideoWriter` and :class:`~.alpha_video.AlphaVideoWriter`.

    A subclass sets ``channels`` and ``pix_fmt_in`` (how a ``(C, H, W)`` frame is packed into
    bytes, :func:`_frame_bytes`) and ``mismatch`` (the ValueError's message for frames of another
    shape, formatted with ``shape`` and ``size``), and passes the encoder, its pixel format and
    options. ``write(frames)`` takes ``(C, H, W)`` or ``(B, C, H, W)`` floats in [0, 1]. Use as a
    context manager, or ``close()`` / ``abort()``: the file is written under a temporary name and
    moved into place only on a clean close, so a crash never leaves a truncated video that looks
    finished.
    """

    channels = 3
    pix_fmt_in = "rgb24"
    mismatch = "frames {shape} do not match the video size {size}"

    def __init__(self, path: str | Path, width: int, height: int, fps: float, *, codec: str, pix_fmt_out: str,
                 output_params: Iterable[str] = ()):
        import imageio_ffmpeg

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.target = AtomicTarget(self.path)  # the final name only once the whole video is written
        self.temporary = self.target.temporary
        self.size = (width, height)
        self._writer = imageio_ffmpeg.write_frames(
            str(self.temporary), (width, height), pix_fmt_in=self.pix_fmt_in, pix_fmt_out=pix_fmt_out,
            fps=Fraction(fps).limit_denominator(100000), codec=codec, quality=None, macro_block_size=1,
            output_params=list(output_params), ffmpeg_log_level="error")
        self._writer.send(None)  # start ffmpeg
        self.count = 0

    def write(self, frames: torch.Tensor) -> None:
        if frames.dim() == 3:
            frames = frames[None]
        if tuple(frames.shape[-2:]) != (self.size[1], self.size[0]) or frames.shape[1] != self.channels:
            raise ValueError(self.mismatch.format(shape=tuple(frames.shape), size=self.size))
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class VideoWriter(PipedVideoWriter):
    """Write frames to an mp4 one batch at a time (H.264, exact size, fixed frame rate).

    Use as a context manager; ``write(frames)`` takes ``(3, H, W)`` or ``(B, 3, H, W)`` floats in
    [0, 1]. The file is written under a temporary name and moved into place on a clean close,
    so a crash never leaves a truncated mp4 that looks finished.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, crf: int = 18):
        codec = _h264_encoder()
        # yuv420p (what every player expects) stores chroma at half resolution, so it needs even
        # sizes; an odd size gets full-resolution chroma rather than a resize
        pix_fmt_out = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        output_params = ["-crf", str(int(crf))] if codec == "libx264" else []
        super().__init__(path, width, height, fps, codec=codec, pix_fmt_out=pix_fmt_out, output_params=output_params)


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
