"""Reading and writing images (and, for video, frames and mp4 files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..common.errors import UserError
from .atomic import atomic_write


class InputError(UserError, ValueError):
    """A user-supplied file is missing or unreadable; the message says which and why."""


def read_image(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """Read an image file -> (`(1, 3, H, W)` float32 in [0, 1], notes for the user).

    Grayscale, palette, 16-bit and RGBA inputs are converted to RGB; an alpha channel is
    composited over white (said in the notes). Raises InputError for a missing, non-image or
    corrupt/truncated file.
    """
    path = Path(path)
    if not str(path) or not path.exists():
        raise InputError(f"image not found: '{path}'")
    if path.is_dir():
        raise InputError(f"'{path}' is a folder, expected an image file")
    notes: list[str] = []
    try:
        with Image.open(path) as img:
            img.load()  # decode fully now, so truncated files fail here
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(img, dtype=np.float64)
                array = array / (65535.0 if array.max() > 255 or mode.startswith("I;16") else 255.0)
                rgb = np.repeat(array[..., None], 3, axis=-1).clip(0, 1)
                notes.append(f"{path.name}: {mode} grayscale image converted to RGB")
            else:
                has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info)
                if has_alpha:
                    rgba = np.asarray(img.convert("RGBA"), dtype=np.float64) / 255.0
                    alpha = rgba[..., 3:]
                    rgb = rgba[..., :3] * alpha + (1 - alpha)
                    if alpha.min() < 1:
                        notes.append(f"{path.name}: transparent pixels were composited over white "
                                     "(the alpha channel is not used further)")
                else:
                    if mode != "RGB":
                        notes.append(f"{path.name}: {mode} image converted to RGB")
                    rgb = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    except UnidentifiedImageError:
        raise InputError(f"'{path}' is not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"could not decode image '{path}' (corrupt or truncated?): {error}") from None
    tensor = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    return tensor, notes


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
