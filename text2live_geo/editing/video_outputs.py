"""The outputs of a video edit: the final render streamed to the run folder (videos, frames,
the edited atlas). The untouched input the edit is composited over is decoded again at its own
size, a batch of frames at a time, rather than held whole."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..common.io import InputError, save_png, side_by_side
from ..common.video_io import VideoStream, VideoWriter
from ..config import LayerFormat
from ..data.atlas_crops import AtlasVideo
from ..layers import EditLayers, green_screen_like
from .layer_export import LayerExport


class FrameRenderer(Protocol):
    """What the final render needs of a video editor (`VideoEditor` is one)."""

    device: torch.device
    video: AtlasVideo

    def render_atlas(self) -> EditLayers: ...

    def frame_edit(self, atlas_layers: EditLayers, frames: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]: ...

__all__ = ["OUTPUT_COMPARISON", "OUTPUT_GREENSCREEN", "OUTPUT_VIDEO", "write_video_outputs"]

OUTPUT_VIDEO = "edited.mp4"
OUTPUT_GREENSCREEN = "edit_on_greenscreen.mp4"
OUTPUT_COMPARISON = "comparison.mp4"


#: frame pixels composited at once in the final render: 8 frames of 768 x 432 (render_batch's
#: default at NLA's size), 1 frame of 1080p
RENDER_BATCH_PIXELS = 8 * 768 * 432


def write_video_outputs(run_dir: Path, editor: FrameRenderer, original: torch.Tensor | VideoStream, fps: float,
                        crf: int = 18, batch_size: int = 8, progress: bool = True,
                        layers: Sequence[LayerFormat] = ()) -> dict:
    """The final render, streamed to disk a batch of frames at a time.

    Writes ``edited.mp4``, ``frames/00000.png``..., ``edit_on_greenscreen.mp4``,
    ``comparison.mp4`` (input | edited), and in atlas space ``atlas.png`` (the input atlas crop),
    ``edited_atlas.png`` (RGBA: the edit layer on the atlas) and ``edited_atlas_composite.png``;
    and the edit layer in frame space in each of the formats ``layers`` (`export.layers`:
    ``layer/00000.png ...``, ``layer.mov``, ``layer.webm``, ``alpha_matte.mp4``; `LayerExport`).

    Args:
        batch_size: frames composited at once (`render_batch`), fewer where that would exceed
            ``RENDER_BATCH_PIXELS`` frame pixels.
        original: the input video at its own size: ``(N, 3, H', W')`` frames in [0, 1] (CPU is
            fine), or a :class:`VideoStream` on the input, decoded again here a batch at a time (so
            the whole clip is never held at its own size). When that size differs from the atlas's,
            the frame-space edit is resized to it and composited over the untouched input.

    Returns:
        Timing figures (seconds).
    """
    device = editor.device
    start = time.perf_counter()
    atlas_layers = editor.render_atlas()
    save_png(editor.video.atlas_image, run_dir / "atlas.png")
    save_png(torch.cat([atlas_layers.edit, atlas_layers.alpha], dim=1), run_dir / "edited_atlas.png")
    save_png(atlas_layers.composite, run_dir / "edited_atlas_composite.png")
    atlas_seconds = time.perf_counter() - start

    if torch.is_tensor(original):
        count, _, height, width = original.shape
    else:
        count, (height, width) = editor.video.num_frames, original.size
    # at most RENDER_BATCH_PIXELS frame pixels a batch: a batch's dozen full-size temporaries
    # (edit, opacity, composite, green screen, layer, comparison) are ~250 MB a 1080p frame
    batch_size = max(1, min(batch_size, RENDER_BATCH_PIXELS // (height * width)))
    if torch.is_tensor(original):
        sources = (original[first:first + batch_size] for first in range(0, count, batch_size))
    else:
        sources = original.batches(batch_size)
    resize = (height, width) != tuple(editor.video.frames.shape[-2:])
    bar = tqdm(total=count, disable=not progress, desc="render", unit="frame", dynamic_ncols=True)
    writers = [VideoWriter(run_dir / OUTPUT_VIDEO, width, height, fps, crf),
               VideoWriter(run_dir / OUTPUT_GREENSCREEN, width, height, fps, crf),
               VideoWriter(run_dir / OUTPUT_COMPARISON, 2 * width + 4, height, fps, crf)]
    try:
        export = LayerExport(run_dir, layers, width, height, fps, crf)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    try:
        for first in range(0, count, batch_size):
            frames = list(range(first, min(first + batch_size, count)))
            edit, visible = editor.frame_edit(atlas_layers, frames)
            if resize:
                edit = F.interpolate(edit, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
                visible = F.interpolate(visible, size=(height, width), mode="bilinear",
                                        align_corners=False).clamp(0, 1)
            source = next(sources, None)
            if source is None or source.shape[0] != len(frames):
                raise InputError(f"the input video changed during the edit: it no longer has the {count} frames "
                                 "the edit was trained on")
            source = source.to(device)
            edited = (1 - visible) * source + visible * edit
            greenscreen = visible * edit + (1 - visible) * green_screen_like(edit)
            writers[0].write(edited)
            writers[1].write(greenscreen)
            export.write(first, edit, visible)
            for index, frame in zip(frames, edited):
                save_png(frame, run_dir / "frames" / f"{index:05d}.png")
                writers[2].write(side_by_side(source[index - first:index - first + 1], frame[None]))
            bar.update(len(frames))
    except BaseException:
        for writer in writers:
            writer.abort()
        export.abort()
        raise
    finally:
        bar.close()
        sources.close()  # a stream stops its decoder
    for writer in writers:
        writer.close()
    written = export.close()
    return {"render_atlas_seconds": round(atlas_seconds, 3),
            "render_seconds": round(time.perf_counter() - start, 3),
            "layer_files": {str(key): path.name for key, path in written.items()},
            "layer_notes": export.notes}
