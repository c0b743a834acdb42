"""The training views of the toy CLIP: one random view per scene of a batch, drawn from a
seeded generator, whose parameters can be applied again to other images of the same scenes.

Why not the editor's `text2live_geo.augment.ViewAugmenter`: that one makes many views of ONE
image (pair) from torch's global RNG and applies its colour jitter and grayscale itself. Training
needs, per batch of different scenes, one view each that is a pure function of (seed, step) (the
batches are rendered in a worker process), the same geometric warp applied again to the objects'
masks (`data.patch_cover`) and to the binding negatives, the grayscale draw known to the batch
maker (no colour contrast on gray images), a hue range much smaller than the other jitters,
and a colour jitter that is linear in the pixels up to the final clamp (the colour-mix term
blends views). The shipped model (`data/toy_clip`) was trained with these views.
"""
from __future__ import annotations

import math

import torch


class TrainingViews:
    """Random views of a batch, one per image, in one perspective warp per image (kornia).

    A random crop of `crop_min`-1 of the side (aspect 0.8-1.25), hflip p 0.5, affine (rotation
    `degrees`, translation `translate`) p 0.8, perspective (`distortion`) p 0.5, all composed into
    one homography and applied with a single `warp_perspective` (white fill); then colour jitter
    p 0.7 (brightness, contrast, saturation `jitter`; hue only `hue` of the circle so colour names
    stay learnable: 0.1 would turn red into orange or pink).

    The defaults are milder than the editor's views (crop 0.6-1, 15 degrees, 0.1, 0.4) so the
    object stays whole: under the editor's crops many training views cut the object and its shape
    label turns to noise.
    """

    def __init__(self, size: int, crop_min: float = 0.85, degrees: float = 10.0, translate: float = 0.05,
                 distortion: float = 0.2, jitter: float = 0.1, hue: float = 0.02):
        self.size, self.crop_min, self.degrees, self.translate = size, crop_min, degrees, translate
        self.distortion, self.jitter, self.hue = distortion, jitter, hue

    def homographies(self, n: int, src_size: int, g: torch.Generator) -> torch.Tensor:
        from kornia.geometry.transform import get_perspective_transform

        def u(*shape, lo=0.0, hi=1.0):
            return lo + (hi - lo) * torch.rand(*shape, generator=g)

        corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]).expand(n, 4, 2).clone()
        # perspective: each corner moves inwards by up to distortion / 2 of the side
        persp = (u(n) < 0.5).float().view(n, 1, 1)
        inward = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
        quad = corners + persp * inward * u(n, 4, 2, hi=self.distortion / 2)
        # affine: rotate about the centre and translate
        aff = (u(n) < 0.8).float()
        theta = aff * u(n, lo=-1, hi=1) * math.radians(self.degrees)
        shift = aff.view(n, 1) * u(n, 2, lo=-self.translate, hi=self.translate)
        c, s = torch.cos(theta).view(n, 1), torch.sin(theta).view(n, 1)
        x, y = quad[..., 0] - 0.5, quad[..., 1] - 0.5
        quad = torch.stack([c * x - s * y + 0.5, s * x + c * y + 0.5], -1) + shift.view(n, 1, 2)
        # hflip
        flip = u(n) < 0.5
        quad[flip, :, 0] = 1 - quad[flip, :, 0]
        # crop window of the source
        side = u(n, lo=self.crop_min, hi=1.0)
        ratio = torch.exp(u(n, lo=math.log(0.8), hi=math.log(1.25)))
        w = (side * ratio.sqrt()).clamp(max=1.0)
        h = (side / ratio.sqrt()).clamp(max=1.0)
        x0, y0 = u(n) * (1 - w), u(n) * (1 - h)
        src = torch.stack([x0.view(n, 1) + w.view(n, 1) * quad[..., 0],
                           y0.view(n, 1) + h.view(n, 1) * quad[..., 1]], -1) * src_size - 0.5
        dst = corners * self.size - 0.5
        return get_perspective_transform(src, dst)

    def colour_matrices(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (3x3 matrix, contrast factor) of the colour jitter."""
        def u(*shape, a=1.0):
            return (2 * torch.rand(*shape, generator=g) - 1) * a

        on = (torch.rand(n, generator=g) < 0.7).float()
        bright = 1 + on * u(n, a=self.jitter)
        contrast = 1 + on * u(n, a=self.jitter)
        sat = 1 + on * u(n, a=self.jitter)
        hue = on * u(n, a=self.hue) * 2 * math.pi
        lum = torch.tensor([0.299, 0.587, 0.114])
        eye = torch.eye(3)
        sat_m = sat.view(n, 1, 1) * eye + (1 - sat.view(n, 1, 1)) * lum.view(1, 1, 3).expand(n, 3, 3)
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        rot = torch.zeros(n, 3, 3)
        rot[:, 0, 0] = 1
        rot[:, 1, 1] = torch.cos(hue)
        rot[:, 1, 2] = -torch.sin(hue)
        rot[:, 2, 1] = torch.sin(hue)
        rot[:, 2, 2] = torch.cos(hue)
        hue_m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
        return bright.view(n, 1, 1) * (hue_m @ sat_m), contrast

    def draw(self, n: int, src_size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The random parameters of `n` views: (homographies (n, 3, 3), colour matrices
        (n, 3, 3), contrast factors (n,))."""
        homographies = self.homographies(n, src_size, g)
        return (homographies, *self.colour_matrices(n, g))

    def apply(self, images: torch.Tensor, params: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The views of `images` (n, 3, s, s) under drawn `params`."""
        from kornia.geometry.transform import warp_perspective

        H, m, contrast = params
        n = images.shape[0]
        out = warp_perspective(images - 1.0, H, (self.size, self.size), padding_mode="zeros") + 1.0
        out = torch.einsum("nij,njhw->nihw", m, out)
        mean = out.mean((1, 2, 3), keepdim=True)
        out = contrast.view(n, 1, 1, 1) * out + (1 - contrast.view(n, 1, 1, 1)) * mean
        return out.clamp(0, 1)

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.apply(images, self.draw(images.shape[0], images.shape[-1], g))


def make_views(size: int) -> TrainingViews:
    """The training views of images of `size` pixels."""
    return TrainingViews(size)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True).expand_as(images)
