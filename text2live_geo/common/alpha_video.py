"""Writing RGBA frames (straight, not premultiplied, alpha) as videos that keep the alpha, and
asking the ffmpeg in use which encoders it has.

The ffmpeg is ``imageio-ffmpeg``'s binary (the one :class:`~.video_io.VideoWriter` uses). Two
alpha-carrying formats are spelled out in :data:`ALPHA_FORMATS`:

- ``prores``: ProRes 4444 in a QuickTime ``.mov`` (``prores_ks``, ``yuva444p10le``, 16-bit alpha
  plane, so an 8-bit alpha comes back exactly), what editing and compositing suites take in;
- ``webm``: VP9 with alpha in a WebM (``libvpx-vp9``, ``yuva420p``), small, for the web; its alpha
  is lossy like its colour, and ffmpeg decodes it only through the ``libvpx-vp9`` decoder (the
  built-in ``vp9`` decoder drops the alpha), see :data:`WEBM_ALPHA_DECODER`.

The writer is a :class:`~.video_io.PipedVideoWriter` like the mp4s' :class:`~.video_io.VideoWriter`:
files are written under a temporary name and moved into place on a clean close
(:class:`~.atomic.AtomicTarget`).
"""
from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .video_io import PipedVideoWriter

__all__ = ["ALPHA_FORMATS", "AlphaFormat", "AlphaVideoWriter", "WEBM_ALPHA_DECODER", "ffmpeg_encoders",
           "missing_encoder_note"]


#: colour conversion and tags of the alpha videos: Rec. 709 matrix, limited range, tagged as such,
#: so a compositor reads the colour as it was written (ffmpeg's untagged default is the BT.601 matrix)
REC709 = ("-vf", "scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709", "-color_primaries", "bt709",
          "-color_trc", "bt709")


@dataclass(frozen=True)
class AlphaFormat:
    """One video format that stores an alpha plane: the encoder, its pixel format and options."""

    suffix: str
    encoder: str
    pix_fmt: str
    options: tuple[str, ...]
    description: str


ALPHA_FORMATS: dict[str, AlphaFormat] = {
    "prores": AlphaFormat(".mov", "prores_ks", "yuva444p10le",
                          ("-profile:v", "4444", "-alpha_bits", "16", "-vendor", "apl0", *REC709),
                          "ProRes 4444 with alpha"),
    "webm": AlphaFormat(".webm", "libvpx-vp9", "yuva420p",
                        ("-b:v", "0", "-crf", "4", "-deadline", "good", "-cpu-used", "4", "-row-mt", "1",
                         "-auto-alt-ref", "0", *REC709),
                        "VP9 with alpha"),
}

#: input options that make ffmpeg decode a VP9 WebM's alpha (its own vp9 decoder ignores it)
WEBM_ALPHA_DECODER = ("-c:v", "libvpx-vp9")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=4)
def _encoders_of(exe: str) -> frozenset[str]:
    try:
        listing = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    # lines such as " V....D libx264   libx264 H.264 / AVC ..." after the legend's "------" line
    _, _, table = listing.partition("------")
    return frozenset(match.group(1) for match in re.finditer(r"^\s*[VAS][A-Z.]{5}\s+(\S+)", table, re.MULTILINE))


def ffmpeg_encoders() -> frozenset[str]:
    """The encoder names the ffmpeg in use lists (``ffmpeg -encoders``), asked once per process."""
    return _encoders_of(ffmpeg_exe())


def missing_encoder_note(name: str, path: Path) -> str:
    """The one line said when the ffmpeg in use cannot write ``name`` (a key of ALPHA_FORMATS)."""
    spec = ALPHA_FORMATS[name]
    return (f"note: {path.name} ({spec.description}) not written: the ffmpeg in use ({ffmpeg_exe()}) has no "
            f"{spec.encoder} encoder")


class AlphaVideoWriter(PipedVideoWriter):
    """Write RGBA frames one batch at a time to a video that keeps the alpha (``ALPHA_FORMATS[name]``).

    ``write(frames)`` takes ``(4, H, W)`` or ``(B, 4, H, W)`` floats in [0, 1], colour not
    premultiplied by the alpha. Use as a context manager, or ``close()`` / ``abort()``; the file
    appears under its name only on a clean close. Raises ``RuntimeError`` when the ffmpeg in use has
    no encoder for the format (check :func:`ffmpeg_encoders` first to skip it instead).
    """

    channels = 4
    pix_fmt_in = "rgba"
    mismatch = "frames {shape} are not RGBA frames of the video size {size}"

    def __init__(self, path: str | Path, name: str, width: int, height: int, fps: float):
        self.spec = ALPHA_FORMATS[name]
        if self.spec.encoder not in ffmpeg_encoders():
            raise RuntimeError(missing_encoder_note(name, Path(path)))
        super().__init__(path, width, height, fps, codec=self.spec.encoder, pix_fmt_out=self.spec.pix_fmt,
                         output_params=self.spec.options)
