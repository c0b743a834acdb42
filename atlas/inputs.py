"""The input of an atlas fit: a clip's frames at the fitting size and, when given, its masks.

:func:`load_clip` reads a video file or a folder of frames (``text2live_geo.common.video_io``: grayscale,
palette, RGBA and 16-bit frames work, odd sizes too; missing or corrupt inputs and folders mixing
frame sizes raise its ``InputError``), keeps at most ``max_frames`` frames (saying so when there
were more), resizes the frames so that their long side is ``long_side`` (downscaling only, unless
asked) and loads a masks folder at that size (:func:`atlas.masks.load_mask_folder`). The clip is
probed first and refused when it would keep more than ``frame_limit`` frames or has frames over
``max_frame_pixels``; then it is decoded one frame at a time, each frame resized as it arrives, so
only the fitting size is ever held for the whole clip. Everything worth telling the user is in
``notes``, one line each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from text2live_geo.common.errors import UserError
from text2live_geo.common.media_files import DEFAULT_MAX_IMAGE_PIXELS
from text2live_geo.common.video_io import FrameShape, VideoStream, resize_frames

from .masks import load_mask_folder

__all__ = ["ClipInput", "ClipInputError", "fitting_size", "load_clip", "resize_frames"]

#: NLA's frames are 768 x 432; its atlas sizes belong to that long side.
DEFAULT_LONG_SIDE = 768


class ClipInputError(UserError, ValueError):
    """A clip that cannot be fitted (e.g. a single frame); the message says why in one line."""


@dataclass
class ClipInput(FrameShape):
    """A clip ready for fitting.

    Attributes:
        frames: ``(N, 3, H, W)`` uint8 (0..255) at the fitting size (a clip built in memory may hold
            float32 in [0, 1]; every reader accepts both).
        names: per frame, its file name (frames folder) or ``frame_00000``-style (video file).
        fps: the video file's frame rate; None for a frames folder.
        source: the path the frames came from.
        source_size: (height, width) of the frames as read.
        masks: ``(N, 1, H, W)`` bool foreground masks from the masks folder, or None.
        notes: lines for the user (conversions, frames dropped, resizing).
    """

    frames: torch.Tensor
    names: list[str]
    fps: float | None
    source: Path
    source_size: tuple[int, int]
    masks: torch.Tensor | None = None
    notes: list[str] = field(default_factory=list)


def fitting_size(height: int, width: int, long_side: int, upscale: bool = False) -> tuple[int, int]:
    """(height, width) with the long side ``long_side`` and the aspect ratio kept (rounded, at
    least 1 pixel); the size itself when ``long_side`` is 0 or, without ``upscale``, when the
    frames are already smaller."""
    longest = max(height, width)
    if long_side <= 0 or longest == long_side or (longest < long_side and not upscale):
        return height, width
    scale = long_side / longest
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def load_clip(
    path: str | Path,
    max_frames: int = 0,
    long_side: int = DEFAULT_LONG_SIDE,
    upscale: bool = False,
    masks: str | Path | None = None,
    frame_limit: int = 0,
    max_frame_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> ClipInput:
    """Read a clip for fitting (see the module docstring).

    Args:
        path: a video file or a folder of frames.
        max_frames: keep at most this many frames (the first ones); 0 keeps all.
        long_side: resize the frames so their long side is this (aspect ratio kept); 0 keeps the
            size.
        upscale: also enlarge frames smaller than ``long_side`` (off: small clips stay small).
        masks: a folder of per-frame masks (:func:`atlas.masks.load_mask_folder`), or None. When
            the clip was cut to ``max_frames``, the masks of the first frames are used.
        frame_limit: refuse a clip that would keep more frames than this (0: no limit).
        max_frame_pixels: refuse frames with more pixels than this (0: no limit).

    Raises:
        text2live_geo.common.io.InputError: missing / unreadable video or frames, mixed frame sizes,
            a clip over ``frame_limit`` or frames over ``max_frame_pixels`` (its subclasses say which
            key to set).
        ClipInputError: fewer than 2 frames.
        atlas.masks.MaskError: a masks folder that does not fit the frames.
    """
    path = Path(path)
    stream = VideoStream(path, max_frames, frame_limit, max_frame_pixels)
    height, width = stream.size
    size = fitting_size(height, width, long_side, upscale)
    # resized frame by frame as decoded (never held at the source size) and kept in 8 bits: a quarter
    # of float32's memory (0.28 instead of 1.1 GiB for 300 frames of 768 x 432), the values decoded
    video = stream.read(size, eight_bit=True)
    notes = stream.notes
    if video.truncated:
        of = f" of {stream.source_frames}" if stream.files is not None else ""
        notes.append(f"the clip has more than {max_frames} frames: kept the first {max_frames}{of} "
                     f"(video.max_frames)")
    if video.num_frames < 2:
        raise ClipInputError(f"clip '{path}' has {video.num_frames} frame; fitting an atlas needs at least 2 frames")
    if size != (height, width):
        notes.append(f"frames resized from {width}x{height} to {size[1]}x{size[0]} (video.long_side={long_side})")
    clip = ClipInput(frames=video.frames.contiguous(), names=list(video.names), fps=video.fps, source=path,
                     source_size=(height, width), notes=notes)
    if masks is not None:
        clip.masks = _load_masks(Path(masks), clip, cut=video.truncated)
    return clip


def _load_masks(folder: Path, clip: ClipInput, cut: bool) -> torch.Tensor:
    """Masks for the clip's frames (the first masks when the clip was cut to max_frames)."""
    names = clip.names if clip.source.is_dir() else None
    return load_mask_folder(folder, clip.num_frames, (clip.height, clip.width), frame_names=names, extra=cut)
