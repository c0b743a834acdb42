"""CLIP view augmentations (kornia), produced in one batch and shared between paired images.

`ViewAugmenter(images...)` samples ONE set of view parameters (crop boxes, flip, affine,
perspective, colour jitter, grayscale) and applies it to every image passed, so view i of the
input and view i of the composite show the same region under the same warp: the difference of
their embeddings is the edit, not augmentation noise.
"""
from __future__ import annotations

import math

import kornia.augmentation as K
import kornia.enhance as KE
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.geometry.transform import crop_and_resize


def view_shape(height: int, width: int, short: int, max_ratio: float) -> tuple[int, int]:
    """Output (h, w) with short side `short` and long side <= max_ratio * short, aspect kept."""
    scale = short / min(height, width)
    long_side = round(max(height, width) * scale)
    if math.isfinite(max_ratio):
        long_side = min(long_side, round(max_ratio * short))
    return (short, long_side) if height <= width else (long_side, short)


def resize_short(images: torch.Tensor, short: int, max_ratio: float) -> torch.Tensor:
    """Resize `(B, C, H, W)` so the short side is `short` (long side capped by max_ratio)."""
    size = view_shape(images.shape[-2], images.shape[-1], short, max_ratio)
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def colour_jitter(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation and hue shifts `factors` (4,) in [-j, j] applied to
    `(B, 3, h, w)` in [0, 1] (hue shift in turns) -> `(B, 3, h, w)` clamped to [0, 1]."""
    images = KE.adjust_brightness(images, float(factors[0]))
    images = KE.adjust_contrast(images, 1 + float(factors[1]))
    images = KE.adjust_saturation(images, 1 + float(factors[2]))
    images = KE.adjust_hue(images, float(factors[3]) * 2 * math.pi)
    return images.clamp(0, 1)


class ViewAugmenter:
    """The Text2LIVE CLIP view recipe (DESIGN.md §4.1), batched and paired.

    View 0 is the whole image resized; views 1.. are random crops of `crop_min`-1 of each side
    resized to the same size. Then hflip p .5; affine (15 deg, translate .1) p .8; perspective
    (distortion .4) p .5; colour jitter .1 p .7; grayscale p .15; regions revealed by the warps
    are filled with `fill` (1.0 white, 0.0 black). Randomness comes from torch's global RNG.
    """

    def __init__(self, n_views: int = 16, short: int = 224, max_ratio: float = 320 / 224,
                 crop_min: float = 0.6, fill: float = 1.0, flip_p: float = 0.5, affine_p: float = 0.8,
                 degrees: float = 15.0, translate: float = 0.1, perspective_p: float = 0.5,
                 distortion: float = 0.4, jitter: float = 0.1, jitter_p: float = 0.7, gray_p: float = 0.15):
        if n_views < 1:
            raise ValueError("n_views must be >= 1")
        self.n_views, self.short, self.max_ratio, self.crop_min = n_views, short, max_ratio, crop_min
        self.fill, self.jitter, self.jitter_p, self.gray_p = fill, jitter, jitter_p, gray_p
        # Geometric ops are channel-agnostic: all paired images go through them stacked along
        # channels, so one parameter draw covers them all by construction.
        self.geometric = K.AugmentationSequential(
            K.RandomHorizontalFlip(p=flip_p),
            K.RandomAffine(degrees=degrees, translate=(translate, translate), p=affine_p),
            K.RandomPerspective(distortion_scale=distortion, p=perspective_p),
        )

    def crop_boxes(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """`(V, 4, 2)` corner boxes (x, y) in pixels; box 0 is the whole image."""
        fraction = torch.empty(self.n_views, device=device).uniform_(self.crop_min, 1.0)
        fraction[0] = 1.0
        box_w, box_h = fraction * (width - 1), fraction * (height - 1)
        x0 = torch.rand(self.n_views, device=device) * (width - 1 - box_w)
        y0 = torch.rand(self.n_views, device=device) * (height - 1 - box_h)
        x1, y1 = x0 + box_w, y0 + box_h
        return torch.stack([torch.stack([x0, y0], -1), torch.stack([x1, y0], -1),
                            torch.stack([x1, y1], -1), torch.stack([x0, y1], -1)], dim=1)

    def _colour(self, views: torch.Tensor, groups: int) -> torch.Tensor:
        """Per-view colour jitter + grayscale, the same draw for each of `groups` images."""
        n, device, dtype = self.n_views, views.device, views.dtype
        apply = (torch.rand(n, device=device) < self.jitter_p).to(dtype)

        def factor(low: float, high: float, identity: float) -> torch.Tensor:
            value = torch.empty(n, device=device, dtype=dtype).uniform_(low, high)
            return (apply * value + (1 - apply) * identity).repeat(groups)

        j = self.jitter
        brightness, contrast = factor(-j, j, 0.0), factor(1 - j, 1 + j, 1.0)
        saturation, hue = factor(1 - j, 1 + j, 1.0), factor(-j, j, 0.0) * 2 * math.pi
        gray = (torch.rand(n, device=device) < self.gray_p).repeat(groups).view(-1, 1, 1, 1)
        views = KE.adjust_brightness(views, brightness, clip_output=False)
        views = KE.adjust_contrast(views, contrast, clip_output=False)
        views = KE.adjust_saturation(views.clamp(0, 1), saturation)
        views = KE.adjust_hue(views, hue)
        grayscale = rgb_to_grayscale(views).expand_as(views)
        return torch.where(gray, grayscale, views).clamp(0, 1)

    def __call__(self, *images: torch.Tensor, size: tuple[int, int] | None = None) -> list[torch.Tensor]:
        """Paired views. Each image `(1, 3, H, W)` in [0, 1] (all the same size) ->
        a list with one `(V, 3, h, w)` tensor per image, view i sharing parameters across images.
        `size` forces the view size (h, w); default: `view_shape` of the images."""
        first = images[0]
        height, width = first.shape[-2:]
        for image in images:
            if image.shape[0] != 1 or tuple(image.shape[-2:]) != (height, width):
                raise ValueError("paired images must all be (1, 3, H, W) of one size")
        groups = len(images)
        stacked = torch.cat(images, dim=1)  # (1, 3G, H, W)
        # Antialiased downscale first, so that even the smallest crop is resampled at about
        # the view resolution: no aliasing from a bilinear warp of a large image, and less work.
        prescaled_short = math.ceil(self.short / self.crop_min)
        if min(height, width) > prescaled_short:
            stacked = resize_short(stacked, prescaled_short, max_ratio=float("inf"))
            height, width = stacked.shape[-2:]
        size = size or view_shape(first.shape[-2], first.shape[-1], self.short, self.max_ratio)
        boxes = self.crop_boxes(height, width, first.device).to(stacked.dtype)
        views = crop_and_resize(stacked.expand(self.n_views, -1, -1, -1), boxes, size, mode="bilinear")
        # zero padding of (x - fill) reveals `fill` where the warps leave the image
        views = self.geometric(views - self.fill) + self.fill
        # (V, 3G, h, w) -> (G*V, 3, h, w), image-major
        views = views.view(self.n_views, groups, 3, *size).transpose(0, 1).reshape(groups * self.n_views, 3, *size)
        views = self._colour(views, groups)
        return list(views.view(groups, self.n_views, 3, *size).unbind(0))
