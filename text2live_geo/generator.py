"""The skip encoder-decoder (Deep Image Prior "skip" network) that predicts the RGBA edit layer."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .banded import banded_merge
from .config import GeneratorConfig
from .fused import batch_norm_act, fused_ok, reflect_pad_conv, upsample_norm_conv

# Colour decorrelation (square root of the ImageNet colour covariance, normalised): the network
# predicts decorrelated colour, mapped linearly to RGB before the sigmoid.
_COLOUR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
INV_COLOUR_SCALE = 1.6  # the reference's "saturate" factor (its `inv_color_scale`)


def colour_to_rgb(inv_colour_scale: float = INV_COLOUR_SCALE) -> torch.Tensor:
    """The fixed `(3, 3)` map from decorrelated colour to RGB: the first column (the grey axis)
    of the correlation square root divided by `inv_colour_scale`, then the matrix divided by its
    largest column norm. With the grey column the longest, that is the map for scale 1 times
    diag(1, s, s): the two chroma channels weigh `inv_colour_scale` times more (more saturated
    colours for the same logits)."""
    matrix = _COLOUR_CORRELATION_SQRT / torch.tensor([inv_colour_scale, 1.0, 1.0])
    return matrix / matrix.norm(dim=0).max()


COLOUR_TO_RGB = colour_to_rgb()


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Module:
    pad = (kernel - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    layers.append(nn.Conv2d(in_channels, out_channels, kernel, stride=stride))
    return nn.Sequential(*layers)


def min_input_size(num_scales: int) -> int:
    """The smallest side a `SkipGenerator` of `num_scales` scales runs on: 2^num_scales + 1 pixels
    (each scale halves the size, and the coarsest level needs at least 2 pixels)."""
    return 2 ** num_scales + 1


class ConvBNAct(nn.Sequential):
    """(reflection pad +) conv -> batch norm -> LeakyReLU(0.2).

    With `memory_efficient` (and gradients on, fp32, training mode) the same function runs
    through `fused.reflect_pad_conv` + `fused.batch_norm_act`, which keep one activation per
    block for the backward instead of three (padded input, conv output, activation)."""

    memory_efficient = False
    slope = 0.2

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        conv_block, norm = self[0], self[1]
        if not (self.memory_efficient and norm.training and fused_ok(features)):
            return super().forward(features)
        conv = conv_block[-1]
        if len(conv_block) > 1:  # reflection pad first
            hidden = reflect_pad_conv(features, conv.weight, conv.bias, conv_block[0].padding[0], conv.stride[0])
        else:
            hidden = conv(features)
        return batch_norm_act(hidden, norm, self.slope)


def _conv_bn_act(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> ConvBNAct:
    return ConvBNAct(_conv(in_channels, out_channels, kernel, stride), nn.BatchNorm2d(out_channels),
                     nn.LeakyReLU(ConvBNAct.slope, inplace=True))


def _conv_act(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    """(reflection pad +) conv -> LeakyReLU(0.2), no batch norm."""
    return nn.Sequential(_conv(in_channels, out_channels, kernel), nn.LeakyReLU(ConvBNAct.slope, inplace=True))


def upsample_to(deep: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The deeper level's output at this level's size `(H, W)`: bilinear x2 upsampling, then the
    first H rows and W columns. The stride-2 conv made `deep` ceil(H / 2) x ceil(W / 2), so for an
    odd side the x2 result has one row (column) more, and the last is dropped (the reference's
    `Upsample(scale_factor=2)` + `Concat` crop)."""
    height, width = deep.shape[-2:]
    up = F.interpolate(deep, size=(2 * height, 2 * width), mode="bilinear", align_corners=False)
    return up[..., :size[0], :size[1]]


class _Scale(nn.Module):
    """One level: a skip branch at this resolution and a down -> deeper -> up branch.

    `last_norm`: batch norm after the merge's final 1x1 conv (every level but the top one: the
    reference skip network has none there)."""

    def __init__(self, in_channels: int, channels: int, skip_channels: int, deeper: nn.Module | None,
                 last_norm: bool = True):
        super().__init__()
        self.skip = _conv_bn_act(in_channels, skip_channels, 1) if skip_channels else None
        self.down = nn.Sequential(_conv_bn_act(in_channels, channels, 3, stride=2), _conv_bn_act(channels, channels, 3))
        self.deeper = deeper
        merged = channels + skip_channels
        self.merge_norm = nn.BatchNorm2d(merged)
        last = _conv_bn_act(channels, channels, 1) if last_norm else _conv_act(channels, channels, 1)
        self.merge = nn.Sequential(_conv_bn_act(merged, channels, 3), last)

    checkpointed = False  # recompute this level's full-resolution blocks in the backward
    memory_efficient = False  # fused merge (`fused.upsample_norm_conv`): keeps no full-size tensor of its own
    #: without gradients, merges of at least this many pixels run in row bands (`banded.banded_merge`):
    #: the same values with one full-size tensor instead of about four (renders of whole atlases)
    banded_min_pixels = 2 ** 18

    def _banded(self, features: torch.Tensor) -> bool:
        height, width = features.shape[-2:]
        return (not torch.is_grad_enabled() and height * width >= self.banded_min_pixels
                and features.dtype in (torch.float32, torch.float64)
                and not torch.is_autocast_enabled(features.device.type))

    def _merge(self, features: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        skip = self.skip(features) if self.skip is not None else None
        if (self.memory_efficient and skip is not None and self.merge_norm.training
                and fused_ok(skip, deep)):
            first = self.merge[0]
            conv_block = first[0]
            pad = conv_block[0].padding[0] if len(conv_block) > 1 else 0
            hidden = upsample_norm_conv(skip, deep, self.merge_norm, conv_block[-1].weight, conv_block[-1].bias, pad)
            return self.merge[1](batch_norm_act(hidden, first[1], first.slope))
        deep = upsample_to(deep, features.shape[-2:])
        if skip is not None:
            deep = torch.cat([skip, deep], dim=1)
        return self.merge(self.merge_norm(deep))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        deep = self.down(features)
        if self.deeper is not None:
            deep = self.deeper(deep)
        if self._banded(features):
            skip = self.skip(features) if self.skip is not None else None
            return banded_merge(self, skip, deep, features.shape[-2:])
        if self.checkpointed and torch.is_grad_enabled() and features.requires_grad | deep.requires_grad:
            # the merge at full resolution holds most of the generator's activation memory;
            # recomputing it costs one extra forward of these few convolutions
            return checkpoint(self._merge, features, deep, use_reentrant=False)
        return self._merge(features, deep)


class SkipGenerator(nn.Module):
    """Skip U-Net: `(B, 3, H, W)` image in [0, 1] -> RGBA `(B, 4, H, W)` in [0, 1].

    `num_scales` stride-2 levels of `channels` channels with `skip_channels` skips, reflection
    padding, batch norm, LeakyReLU, bilinear upsampling; a 1x1 conv to 4 channels, the fixed
    decorrelated-colour-to-RGB map on the colour channels, then a sigmoid.
    The top level's final 1x1 conv has no batch norm, as the reference's (`top_norm` adds one:
    42 batch norms, this project's former generator). H and W must be at least `min_size`
    (2 ** num_scales + 1). `memory_efficient` (default)
    computes the same function with fused blocks that keep about a third of the activations
    for the backward (see `fused`); `checkpoint_levels` recomputes the top levels' merges instead.
    """

    def __init__(self, num_scales: int = 7, channels: int = 128, skip_channels: int = 4,
                 in_channels: int = 3, decorrelated_rgb: bool = True, alpha_bias_init: float = 0.0,
                 checkpoint_levels: int = 0, memory_efficient: bool = True,
                 inv_colour_scale: float = INV_COLOUR_SCALE, top_norm: bool = False):
        super().__init__()
        self.num_scales = num_scales
        deeper = None
        for level in reversed(range(num_scales)):
            deeper = _Scale(in_channels if level == 0 else channels, channels, skip_channels, deeper,
                            last_norm=level > 0 or top_norm)
        self.body = deeper
        level = self.body
        for _ in range(checkpoint_levels):  # activation checkpointing of the top levels' merges
            if level is None:
                break
            level.checkpointed = True
            level = level.deeper
        for module in self.body.modules():
            if isinstance(module, (ConvBNAct, _Scale)):
                module.memory_efficient = memory_efficient
        self.head = nn.Conv2d(channels, 4, 1)
        if alpha_bias_init:
            # a negative alpha bias starts the edit layer nearly transparent: the composite
            # starts close to the input instead of half-covered by random colour
            with torch.no_grad():
                self.head.bias[3] = alpha_bias_init
        self.decorrelated_rgb = decorrelated_rgb
        self.register_buffer("colour_to_rgb", colour_to_rgb(inv_colour_scale), persistent=False)

    @classmethod
    def from_config(cls, cfg: GeneratorConfig) -> SkipGenerator:
        """From a `config.GeneratorConfig`."""
        return cls(cfg.num_scales, cfg.channels, cfg.skip_channels, decorrelated_rgb=cfg.decorrelated_rgb,
                   alpha_bias_init=cfg.alpha_bias_init, checkpoint_levels=cfg.checkpoint_levels,
                   memory_efficient=cfg.memory_efficient, inv_colour_scale=cfg.inv_colour_scale,
                   top_norm=cfg.top_norm)

    @property
    def min_size(self) -> int:
        return min_input_size(self.num_scales)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if min(image.shape[-2:]) < self.min_size:
            raise ValueError(f"input {tuple(image.shape[-2:])} is smaller than the generator's minimum "
                             f"side {self.min_size} (2^num_scales + 1)")
        logits = self.head(self.body(image))
        colour, alpha = logits[:, :3], logits[:, 3:]
        if self.decorrelated_rgb:
            colour = torch.einsum("ij,bjhw->bihw", self.colour_to_rgb.to(colour.dtype), colour)
        return torch.sigmoid(torch.cat([colour, alpha], dim=1))


@contextlib.contextmanager
def batch_statistics_without_update(module: nn.Module):
    """Run batch norm on the batch's own statistics (as in training) without changing the
    running buffers: inference renders the same function the losses trained, and is pure."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:
        m.train()
        m.momentum = 0.0
    try:
        yield module
    finally:
        for m, (training, momentum) in zip(norms, saved):
            m.train(training)
            m.momentum = momentum


class PixelParameterization(nn.Module):
    """CLIP inversion: the output image itself, kept in [0, 1] as sigmoid(logit(input) + residual).

    forward(image `(1, 3, H, W)`) ignores its input's content beyond the size check and returns
    RGBA `(1, 4, H, W)` with alpha 1, so the same compositing and losses apply.
    """

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.register_buffer("base_logit", torch.logit(image.clamp(1e-3, 1 - 1e-3)))
        # a tiny random start: at exactly the input, the image direction of the directional and
        # IMC losses is the zero vector, whose normalisation has huge gradients
        self.residual = nn.Parameter(torch.randn_like(image) * 1e-2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        rgb = torch.sigmoid(self.base_logit + self.residual)
        return torch.cat([rgb, torch.ones_like(rgb[:, :1])], dim=1)
