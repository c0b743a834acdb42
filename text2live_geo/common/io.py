"""Reading and writing images (and, for video, frames and mp4 files).

Every image is probed before it is decoded: Pillow's lazy ``Image.open`` reads the size from the
file's header, and an image over ``max_pixels`` is refused with one line naming the key to raise
(:class:`ImageTooLargeError`). The limit is ours alone: Pillow's own decompression-bomb check (a
warning above 89 megapixels, an error above 179, set process-wide by ``PIL.Image.MAX_IMAGE_PIXELS``)
is switched off while we read, so neither ever surfaces. Pixels are decoded as 8-bit values and
turned into float32, never float64.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..common.errors import UserError
from .atomic import atomic_write
from .media_files import DEFAULT_MAX_IMAGE_PIXELS

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "ImageTooLargeError", "InputError", "check_image_size", "probe_image",
           "read_frame_image", "read_image", "save_png", "side_by_side", "to_uint8"]


class InputError(UserError, ValueError):
    """A user-supplied file is missing or unreadable; the message says which and why."""


class ImageTooLargeError(InputError):
    """An image (or a frame of a clip) with more pixels than the limit; the message names the key."""


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}" if pixels < 10_000_000 else f"{pixels / 1e6:.0f}"


def check_image_size(path: str | Path, width: int, height: int, max_pixels: int, key: str) -> None:
    """ImageTooLargeError when ``width x height`` is over ``max_pixels`` (0: no limit); the message
    says what the file is and which ``key`` to raise."""
    pixels = int(width) * int(height)
    if max_pixels > 0 and pixels > max_pixels:
        raise ImageTooLargeError(
            f"'{path}' is {width}x{height} pixels ({_megapixels(pixels)} megapixels), more than {key}={max_pixels} "
            f"({_megapixels(max_pixels)} megapixels) allows: downscale it, or raise {key} (0: no limit)")


_PILLOW_CHECK = threading.Lock()


@contextlib.contextmanager
def _our_size_check() -> Iterator[None]:
    """Pillow's decompression-bomb check off while we open and decode (we check the size
    ourselves first), under a lock so that concurrent reads put it back as it was."""
    with _PILLOW_CHECK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_path(path: Path) -> None:
    if not str(path) or not path.exists():
        raise InputError(f"image not found: '{path}'")
    if path.is_dir():
        raise InputError(f"'{path}' is a folder, expected an image file")


@contextlib.contextmanager
def _opened(path: Path, max_pixels: int, key: str) -> Iterator[Image.Image]:
    """The image opened lazily (header read, nothing decoded) and its size checked; the errors of
    :func:`read_image`."""
    _check_path(path)
    try:
        with _our_size_check(), Image.open(path) as img:
            check_image_size(path, *img.size, max_pixels, key)
            yield img
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"'{path}' is not an image file PIL can read") from None
    except Image.DecompressionBombError as error:  # not with the check off; never a traceback all the same
        raise ImageTooLargeError(f"'{path}' is too large to decode ({error}); downscale it") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"could not decode image '{path}' (corrupt or truncated?): {error}") from None


def probe_image(path: str | Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                key: str = "max_image_pixels") -> tuple[int, int]:
    """(width, height) of an image file from its header, nothing decoded. Raises what
    :func:`read_image` raises for a missing, non-image or too large file."""
    path = Path(path)
    with _opened(path, max_pixels, key) as img:
        return img.size


def _decode(path: Path, max_pixels: int, key: str) -> tuple[np.ndarray, list[str]]:
    """``(H, W, 3)`` RGB: uint8 for 8-bit images, float32 in [0, 1] for 16/32-bit grayscale and for
    transparent pixels composited over white (8 bits cannot hold those exactly)."""
    notes: list[str] = []
    with _opened(path, max_pixels, key) as img:
        try:
            img.load()  # decode fully now, so truncated files fail here
        except (OSError, SyntaxError, ValueError) as error:
            raise InputError(f"could not decode image '{path}' (corrupt or truncated?): {error}") from None
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(img).astype(np.float32)
            array /= np.float32(65535.0 if array.max() > 255 or mode.startswith("I;16") else 255.0)
            notes.append(f"{path.name}: {mode} grayscale image converted to RGB")
            return np.repeat(array.clip(0, 1)[..., None], 3, axis=-1), notes
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
            rgba = np.array(img.convert("RGBA"))
        else:
            if mode != "RGB":
                notes.append(f"{path.name}: {mode} image converted to RGB")
            # np.array: a writable copy (np.asarray's is read-only); no convert() copy for RGB
            return np.array(img if mode == "RGB" else img.convert("RGB")), notes
    # transparency: composited over white, in float32 and in place (a large image is not copied twice)
    alpha = rgba[..., 3:]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3]), notes
    notes.append(f"{path.name}: transparent pixels were composited over white (the alpha channel is not used further)")
    rgb = rgba[..., :3].astype(np.float32)
    opacity = alpha.astype(np.float32)
    del rgba, alpha
    np.divide(rgb, np.float32(255.0), out=rgb)
    np.divide(opacity, np.float32(255.0), out=opacity)
    rgb *= opacity
    rgb += 1 - opacity
    return rgb, notes


def _as_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 or float32 -> ``(3, H, W)`` of the same dtype (a view, not a copy)."""
    return torch.from_numpy(rgb).permute(2, 0, 1)


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               key: str = "max_image_pixels") -> tuple[torch.Tensor, list[str]]:
    """Read an image file -> (`(1, 3, H, W)` float32 in [0, 1], notes for the user).

    Grayscale, palette, 16-bit and RGBA inputs are converted to RGB; an alpha channel is
    composited over white (said in the notes). The size is checked from the header before
    anything is decoded: over ``max_pixels`` (0: no limit) raises ImageTooLargeError naming
    ``key``. Raises InputError for a missing, non-image or corrupt/truncated file.
    """
    rgb, notes = _decode(Path(path), max_pixels, key)
    image = _as_tensor(rgb)
    if image.dtype == torch.uint8:  # one float32 copy, divided in place
        image = image.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
    return image[None], notes


def read_frame_image(path: str | Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                     key: str = "max_image_pixels") -> tuple[torch.Tensor, list[str]]:
    """An image as a frame of a clip -> (`(3, H, W)`, notes): uint8 as decoded for 8-bit images
    (nothing converted yet), float32 in [0, 1] for 16-bit ones and transparent pixels over white
    (:func:`read_image`'s values either way). The errors of :func:`read_image`."""
    rgb, notes = _decode(Path(path), max_pixels, key)
    return _as_tensor(rgb), notes


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """`(C, H, W)` or `(1, C, H, W)` in [0, 1] -> `(H, W, C)` uint8 (C = 1 squeezed to (H, W))."""
    if image.dim() == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write `(C, H, W)` / `(1, C, H, W)` in [0, 1] as PNG: C = 1 gray, 3 RGB, 4 RGBA. Atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint8(image)
    return atomic_write(path, lambda temporary: Image.fromarray(array).save(temporary, format="PNG"))


def side_by_side(*images: torch.Tensor, gap: int = 4) -> torch.Tensor:
    """Concatenate `(B, C, H, W)` images (C = 1 or 3, one B and H) left to right with a white gap
    -> `(B, 3, H, W')`; gray images are shown as RGB."""
    batch, height = images[0].shape[0], images[0].shape[-2]
    spacer = torch.ones(batch, 3, height, gap, dtype=images[0].dtype, device=images[0].device)
    parts: list[torch.Tensor] = []
    for index, image in enumerate(images):
        if index:
            parts.append(spacer)
        parts.append(image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image)
    return torch.cat(parts, dim=-1)
