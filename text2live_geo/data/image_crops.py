"""The internal dataset of an image edit: random crops of the one input image (`CropSampler`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..augment import colour_jitter
from ..config import CropConfig

__all__ = ["CropSampler"]


class CropSampler:
    """The internal dataset: each step a random crop of the input (docs/text2live.md, "Internal dataset").

    `source` is `(1, C, H, W)`: RGB plus optional extra channels (the relevancy map) that
    follow every geometric change; colour jitter touches RGB only. Every `full_image_every`
    steps (and at step 0) the whole image is returned. Crops never go below `min_size`.
    """

    def __init__(self, source: torch.Tensor, cfg: CropConfig, min_size: int, enabled: bool = True):
        self.source, self.cfg, self.min_size, self.enabled = source, cfg, min_size, enabled

    def sample(self, step: int) -> torch.Tensor:
        cfg, source = self.cfg, self.source
        if not self.enabled or (cfg.full_image_every > 0 and step % cfg.full_image_every == 0):
            return source
        sample = source
        if torch.rand(()) < cfg.jitter_p:
            factors = torch.empty(4).uniform_(-1, 1) * cfg.jitter
            sample = torch.cat([colour_jitter(sample[:, :3], factors), sample[:, 3:]], dim=1)
        if torch.rand(()) < cfg.flip_p:
            sample = sample.flip(-1)
        height, width = sample.shape[-2:]
        scale = float(torch.empty(()).uniform_(cfg.scale_min, cfg.scale_max))
        scale = max(scale, self.min_size / (cfg.crop_min * min(height, width)))
        size = (max(round(height * scale), self.min_size), max(round(width * scale), self.min_size))
        if size != (height, width):
            sample = F.interpolate(sample, size=size, mode="bilinear", align_corners=False)
        crop_h = max(round(size[0] * float(torch.empty(()).uniform_(cfg.crop_min, 1))), self.min_size)
        crop_w = max(round(size[1] * float(torch.empty(()).uniform_(cfg.crop_min, 1))), self.min_size)
        top = int(torch.randint(0, size[0] - crop_h + 1, ()))
        left = int(torch.randint(0, size[1] - crop_w + 1, ()))
        return sample[..., top:top + crop_h, left:left + crop_w]
