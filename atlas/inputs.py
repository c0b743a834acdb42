"""The input of an atlas fit: a clip's frames at the fitting size and, when given, its masks.

:func:`load_clip` reads a video file or a folder of frames (``text2live_geo.common.video_io``: grayscale,
palette, RGBA and 16-bit frames work, odd sizes too; missing or corrupt inputs and folders mixing
frame sizes raise its ``InputError``), keeps at most ``max_frames`` frames (saying so when there
were more), resizes the frames so that their long side is ``long_side`` (downscaling only, unless
asked) and loads a masks folder at that size (:func:`atlas.masks.load_mask_folder`). Everything
worth telling the user is in ``notes``, one line each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F

from text2live_geo.common.errors import UserError
from text2live_geo.common.video_io import FrameShape

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
        frames: ``(N, 3, H, W)`` float32 in [0, 1] at the fitting size.
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


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, C, H, W)`` in [0, 1] -> ``(N, C, h, w)``: bilinear with antialiasing (an area-like
    average when shrinking), a few frames at a time."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    out = [F.interpolate(chunk.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
           for chunk in frames.split(8)]
    return torch.cat(out).clamp_(0.0, 1.0)


def load_clip(
    path: str | Path,
    max_frames: int = 0,
    long_side: int = DEFAULT_LONG_SIDE,
    upscale: bool = False,
    masks: str | Path | None = None,
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

    Raises:
        text2live_geo.common.io.InputError: missing / unreadable video or frames, mixed frame sizes.
        ClipInputError: fewer than 2 frames.
        atlas.masks.MaskError: a masks folder that does not fit the frames.
    """
    # the project's readers; imported here so that atlas/ imports without the editing package
    from text2live_geo.common.video_io import list_frame_files, read_video

    path = Path(path)
    video, notes = read_video(path, max_frames + 1 if max_frames > 0 else 0)
    frames, names = video.frames, list(video.names)
    total_known = len(list_frame_files(path)) if path.is_dir() else None
    if 0 < max_frames < frames.shape[0]:
        frames, names = frames[:max_frames], names[:max_frames]
        of = f" of {total_known}" if total_known else ""
        notes.append(f"the clip has more than {max_frames} frames: kept the first {max_frames}{of} "
                     f"(video.max_frames)")
    if frames.shape[0] < 2:
        raise ClipInputError(f"clip '{path}' has {frames.shape[0]} frame; fitting an atlas needs at least 2 frames")
    height, width = frames.shape[-2:]
    size = fitting_size(height, width, long_side, upscale)
    if size != (height, width):
        frames = resize_frames(frames, size)
        notes.append(f"frames resized from {width}x{height} to {size[1]}x{size[0]} (video.long_side={long_side})")
    clip = ClipInput(frames=frames.contiguous(), names=names, fps=video.fps, source=path,
                     source_size=(height, width), notes=notes)
    if masks is not None:
        clip.masks = _load_masks(Path(masks), clip, cut=frames.shape[0] < video.frames.shape[0])
    return clip


def _load_masks(folder: Path, clip: ClipInput, cut: bool) -> torch.Tensor:
    """Masks for the clip's frames (the first masks when the clip was cut to max_frames)."""
    names = clip.names if clip.source.is_dir() else None
    return load_mask_folder(folder, clip.num_frames, (clip.height, clip.width), frame_names=names, extra=cut)
