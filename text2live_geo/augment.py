"""CLIP view augmentations (kornia), produced in one batch and shared between paired images.

`ViewAugmenter(images...)` samples ONE set of view parameters (crop boxes, flip, affine,
perspective, colour jitter, grayscale) and applies it to every image passed, so view i of the
input and view i of the composite show the same region under the same warp: the difference of
their embeddings is the edit, not augmentation noise.
"""
from __future__ import annotations

import math

import kornia.enhance as KE
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.geometry import create_meshgrid
from kornia.geometry.linalg import transform_points
from kornia.geometry.transform import get_perspective_transform, get_rotation_matrix2d
from torch.utils.checkpoint import checkpoint


def view_shape(height: int, width: int, short: int, max_ratio: float) -> tuple[int, int]:
    """Output (h, w) of an aspect-keeping resize: short side `short`, long side
    int(short * long / short_in); when that exceeds max_size = round(max_ratio * short), the long
    side is max_size and the short side int(max_size * short / long) instead (it then falls below
    `short`). This is torchvision's `Resize(short, max_size=...)` (the reference's
    `Resize(224, max_size=320)` for CLIP views, 380 for structure tokens)."""
    short_in, long_in = min(height, width), max(height, width)
    new_short, new_long = short, int(short * long_in / short_in)
    if math.isfinite(max_ratio):
        max_size = round(max_ratio * short)
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if height <= width else (new_long, new_short)


def resize_short(images: torch.Tensor, short: int, max_ratio: float) -> torch.Tensor:
    """Resize `(B, C, H, W)` keeping the aspect: short side `short`, unless the long side would
    exceed max_ratio * short (then the long side is that and the short side smaller; `view_shape`)."""
    size = view_shape(images.shape[-2], images.shape[-1], short, max_ratio)
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def colour_jitter(images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """torchvision ColorJitter semantics (the reference's), as one fixed-order pass.

    images `(B, 3, h, w)` in [0, 1]; offsets `(4,)` or `(B, 4)`, each in [-j, j]: brightness
    multiplies by 1 + o0, contrast blends with the mean grey level by 1 + o1, saturation blends
    with the grayscale image by 1 + o2 (all three linear, so cheap to differentiate), and the
    HSV hue shifts by o3 turns (kornia). Returns `(B, 3, h, w)` clamped to [0, 1].
    """
    offsets = torch.as_tensor(offsets, dtype=images.dtype, device=images.device)
    offsets = offsets.expand(images.shape[0], 4).view(-1, 4, 1, 1, 1)
    brightness, contrast, saturation, hue = (offsets[:, i] for i in range(4))
    images = images * (1 + brightness)
    grey_level = rgb_to_grayscale(images).mean((-2, -1), keepdim=True)
    images = (1 + contrast) * images - contrast * grey_level
    images = (1 + saturation) * images - saturation * rgb_to_grayscale(images)
    images, angles = images.clamp(0, 1), hue.view(-1) * 2 * math.pi
    if torch.is_grad_enabled() and images.requires_grad:
        # the HSV round trip keeps ~8 full-size intermediates for the backward; recomputing it
        # there (elementwise, cheap) keeps only its input
        images = checkpoint(KE.adjust_hue, images, angles, use_reentrant=False)
    else:
        images = KE.adjust_hue(images, angles)
    return images.clamp(0, 1)


class ViewAugmenter:
    """The Text2LIVE CLIP view recipe (docs/text2live.md, "CLIP views"), batched and paired.

    View 0 is the whole image resized; views 1.. are random crops of `crop_min`-1 of each side
    resized to the same size. Then hflip p .5; affine (15 deg, translate .1) p .8; perspective
    (distortion .4) p .5 -- composed into one homography per view and applied in ONE bilinear
    resampling of all paired images at once; regions revealed by the warps are filled with
    `fill` (1.0 white, 0.0 black). Then colour jitter .1 p .7 (`colour_jitter`) and grayscale
    p .15. Randomness comes from torch's global RNG.
    """

    def __init__(self, n_views: int = 16, short: int = 224, max_ratio: float = 320 / 224,
                 crop_min: float = 0.6, fill: float = 1.0, flip_p: float = 0.5, affine_p: float = 0.8,
                 degrees: float = 15.0, translate: float = 0.1, perspective_p: float = 0.5,
                 distortion: float = 0.4, jitter: float = 0.1, jitter_p: float = 0.7, gray_p: float = 0.15):
        if n_views < 1:
            raise ValueError("n_views must be >= 1")
        self.n_views, self.short, self.max_ratio, self.crop_min = n_views, short, max_ratio, crop_min
        self.fill, self.jitter, self.jitter_p, self.gray_p = fill, jitter, jitter_p, gray_p
        self.flip_p, self.affine_p, self.degrees, self.translate = flip_p, affine_p, degrees, translate
        self.perspective_p, self.distortion = perspective_p, distortion

    def crop_boxes(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """`(V, 4, 2)` corner boxes (x, y) in pixels (top-left, top-right, bottom-right,
        bottom-left); box 0 is the whole image."""
        fraction = torch.empty(self.n_views, device=device).uniform_(self.crop_min, 1.0)
        fraction[0] = 1.0
        box_w, box_h = fraction * (width - 1), fraction * (height - 1)
        x0 = torch.rand(self.n_views, device=device) * (width - 1 - box_w)
        y0 = torch.rand(self.n_views, device=device) * (height - 1 - box_h)
        x1, y1 = x0 + box_w, y0 + box_h
        return torch.stack([torch.stack([x0, y0], -1), torch.stack([x1, y0], -1),
                            torch.stack([x1, y1], -1), torch.stack([x0, y1], -1)], dim=1)

    def view_transforms(self, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """`(V, 3, 3)` homographies from source pixels to view pixels: crop `boxes` resized to
        `size`, then hflip, affine (rotation about the centre + translation), perspective (each
        corner moved inwards by up to `distortion` / 2 of the side), each with its probability."""
        n, device, dtype = boxes.shape[0], boxes.device, boxes.dtype
        h, w = size
        corners = torch.tensor([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]],
                               device=device, dtype=dtype).expand(n, 4, 2)
        crop = get_perspective_transform(boxes, corners)
        flip = torch.eye(3, device=device, dtype=dtype).repeat(n, 1, 1)
        flipped = torch.rand(n, device=device) < self.flip_p
        flip[flipped, 0, 0], flip[flipped, 0, 2] = -1.0, w - 1.0
        affine_on = (torch.rand(n, device=device) < self.affine_p).to(dtype)
        angle = affine_on * torch.empty(n, device=device, dtype=dtype).uniform_(-self.degrees, self.degrees)
        centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=device, dtype=dtype).expand(n, 2)
        affine = torch.eye(3, device=device, dtype=dtype).repeat(n, 1, 1)
        affine[:, :2] = get_rotation_matrix2d(centre, angle, torch.ones(n, 2, device=device, dtype=dtype))
        shift = torch.empty(n, 2, device=device, dtype=dtype).uniform_(-self.translate, self.translate)
        affine[:, :2, 2] += affine_on[:, None] * shift * torch.tensor([w, h], device=device, dtype=dtype)
        inward = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], device=device, dtype=dtype)
        perspective_on = (torch.rand(n, device=device) < self.perspective_p).to(dtype).view(n, 1, 1)
        moved = torch.rand(n, 4, 2, device=device, dtype=dtype) * self.distortion / 2
        moved = moved * torch.tensor([w - 1.0, h - 1.0], device=device, dtype=dtype)
        perspective = get_perspective_transform(corners, corners + perspective_on * inward * moved)
        return perspective @ affine @ flip @ crop

    def _warp(self, stacked: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """All views of `stacked` `(1, C, H, W)` in ONE bilinear resampling -> `(V, C, h, w)`.

        Every view's composed transform is inverted into its sampling grid, and one
        `grid_sample` reads the one source image for all views. Outside the crop box, `fill`
        shows, as after a crop followed by warps with constant fill."""
        n, (h, w) = boxes.shape[0], size
        height, width = stacked.shape[-2:]
        pixels = create_meshgrid(h, w, normalized_coordinates=False, device=stacked.device, dtype=stacked.dtype)
        source = transform_points(torch.linalg.inv(self.view_transforms(boxes, size)),
                                  pixels.reshape(1, -1, 2).expand(n, -1, -1))
        source = source.view(n, h, w, 2)
        lower, upper = boxes.amin(1).view(n, 1, 1, 2), boxes.amax(1).view(n, 1, 1, 2)
        inside = ((source >= lower - 0.5) & (source <= upper + 0.5)).all(-1)  # (V, h, w)
        scale = torch.tensor([2 / max(width - 1, 1), 2 / max(height - 1, 1)], device=stacked.device,
                             dtype=stacked.dtype)
        grid = source * scale - 1
        # the source expanded (not copied) to one per view: the CPU kernel parallelises over views
        views = F.grid_sample((stacked - self.fill).expand(n, -1, -1, -1), grid, mode="bilinear",
                              padding_mode="zeros", align_corners=True)
        views = views * inside[:, None].to(views.dtype)
        return views + self.fill

    def _colour(self, views: torch.Tensor, groups: int) -> torch.Tensor:
        """Per-view colour jitter (p `jitter_p`) + grayscale (p `gray_p`), the same draw for
        each of the `groups` images; only the jittered views go through the jitter."""
        n, device, dtype = self.n_views, views.device, views.dtype
        jittered = (torch.rand(n, device=device) < self.jitter_p).nonzero().squeeze(1)
        offsets = torch.empty(len(jittered), 4, device=device, dtype=dtype).uniform_(-self.jitter, self.jitter)
        gray = (torch.rand(n, device=device) < self.gray_p).repeat(groups).view(-1, 1, 1, 1)
        if len(jittered):
            rows = (jittered[None] + n * torch.arange(groups, device=device)[:, None]).reshape(-1)
            views = views.index_copy(0, rows, colour_jitter(views[rows], offsets.repeat(groups, 1)))
        return torch.where(gray, rgb_to_grayscale(views).expand_as(views), views)

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
        views = self._warp(stacked, boxes, size)  # crop + resize + flip + affine + perspective
        # (V, 3G, h, w) -> (G*V, 3, h, w), image-major
        views = views.view(self.n_views, groups, 3, *size).transpose(0, 1).reshape(groups * self.n_views, 3, *size)
        views = self._colour(views, groups)
        return list(views.view(groups, self.n_views, 3, *size).unbind(0))
