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
    steps (and at step 0) the whole image is returned instead of a crop (with `full_image_extra`
    it is a second sample besides the crop: `samples`). Crops never go below `min_size`.
    """

    def __init__(self, source: torch.Tensor, cfg: CropConfig, min_size: int, enabled: bool = True):
        self.source, self.cfg, self.min_size, self.enabled = source, cfg, min_size, enabled

    def whole_image_step(self, step: int) -> bool:
        return self.cfg.full_image_every > 0 and step % self.cfg.full_image_every == 0

    def samples(self, step: int) -> list[torch.Tensor]:
        """What step `step` trains on: one sample (`sample`), or with `full_image_extra` on a
        whole-image step the crop and then the whole image (the reference's two renders)."""
        if self.enabled and self.cfg.full_image_extra and self.whole_image_step(step):
            return [self.crop(), self.source]
        return [self.sample(step)]

    def sample(self, step: int) -> torch.Tensor:
        """The whole image on a whole-image step (or when disabled), else a random crop."""
        if not self.enabled or self.whole_image_step(step):
            return self.source
        return self.crop()

    def crop(self) -> torch.Tensor:
        """A random crop: colour jitter, flip, rescale, crop (docs/text2live.md, "Internal dataset")."""
        cfg, source = self.cfg, self.source
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
        fraction = float(torch.empty(()).uniform_(cfg.crop_min, 1))  # one for both sides: the aspect is kept
        crop_h = max(round(size[0] * fraction), self.min_size)
        crop_w = max(round(size[1] * fraction), self.min_size)
        top = int(torch.randint(0, size[0] - crop_h + 1, ()))
        left = int(torch.randint(0, size[1] - crop_w + 1, ()))
        return sample[..., top:top + crop_h, left:left + crop_w]
