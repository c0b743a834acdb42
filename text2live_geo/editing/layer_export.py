"""The edit layer of a video edit as files a compositor can use (`export.layers`, docs/compositing.md).

Besides the composite, a video edit can write its edit layer (the colour the edit paints, and the
opacity with which it shows in each frame, straight alpha) as

- ``layer/00000.png ...``: RGBA PNGs, lossless (``png``);
- ``layer.mov``: ProRes 4444 with alpha (``prores``);
- ``layer.webm``: VP9 with alpha (``webm``);
- ``alpha_matte.mp4``: the alpha alone as a grayscale H.264 video, a luma matte (``matte``).

The composite the run writes is ``(1 - alpha) * input + alpha * colour`` with exactly these layers
(up to 8-bit rounding), so laying the layer over the input in a compositor (a normal / "over"
merge, straight alpha) gives the edited video back. A format whose encoder the ffmpeg in use lacks
is skipped, with one note line naming the encoder, before any frame is rendered.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..common.alpha_video import ALPHA_FORMATS, AlphaVideoWriter, ffmpeg_encoders, missing_encoder_note
from ..common.io import save_png
from ..common.video_io import VideoWriter
from ..config import LayerFormat

logger = logging.getLogger(__name__)

__all__ = ["LAYER_FILES", "LayerExport"]

#: where each format goes in the run folder
LAYER_FILES = {LayerFormat.png: "layer", LayerFormat.prores: "layer.mov", LayerFormat.webm: "layer.webm",
               LayerFormat.matte: "alpha_matte.mp4"}


class LayerExport:
    """Writers for the chosen formats, fed the edit layer a batch of frames at a time.

    ``write(first, colour, alpha)`` takes the frames' colour ``(B, 3, H, W)`` and alpha
    ``(B, 1, H, W)`` in [0, 1] (``first``: the index of the batch's first frame); ``close()``
    moves every file into place, ``abort()`` removes them. Formats the ffmpeg in use cannot
    write are left out at construction, each with one note line (``notes``).
    """

    def __init__(self, run_dir: Path, formats: Sequence[LayerFormat], width: int, height: int, fps: float,
                 crf: int = 18):
        self.run_dir = Path(run_dir)
        self.notes: list[str] = []
        self.written: dict[LayerFormat, Path] = {}
        self.png = LayerFormat.png in formats
        self._videos: list[tuple[LayerFormat, AlphaVideoWriter | VideoWriter]] = []
        encoders = ffmpeg_encoders() if {LayerFormat.prores, LayerFormat.webm} & set(formats) else frozenset()
        try:
            for layer_format in dict.fromkeys(formats):  # each once, in the order given
                path = self.run_dir / LAYER_FILES[layer_format]
                if layer_format == LayerFormat.png:
                    self.written[layer_format] = path
                elif layer_format == LayerFormat.matte:
                    self._videos.append((layer_format, VideoWriter(path, width, height, fps, crf)))
                elif ALPHA_FORMATS[str(layer_format)].encoder not in encoders:
                    self.notes.append(missing_encoder_note(str(layer_format), path))
                    logger.warning(self.notes[-1])
                else:
                    self._videos.append((layer_format, AlphaVideoWriter(path, str(layer_format), width, height, fps)))
        except BaseException:
            self.abort()
            raise

    def write(self, first: int, colour: torch.Tensor, alpha: torch.Tensor) -> None:
        rgba = torch.cat([colour, alpha], dim=1).clamp(0, 1)
        if self.png:
            for index, frame in enumerate(rgba, start=first):
                save_png(frame, self.run_dir / LAYER_FILES[LayerFormat.png] / f"{index:05d}.png")
        for layer_format, writer in self._videos:
            writer.write(alpha.expand(-1, 3, -1, -1) if layer_format == LayerFormat.matte else rgba)

    def close(self) -> dict[LayerFormat, Path]:
        for layer_format, writer in self._videos:
            self.written[layer_format] = writer.close()
        return self.written

    def abort(self) -> None:
        for _, writer in self._videos:
            writer.abort()
