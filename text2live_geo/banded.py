"""The skip generator's merge evaluated in row bands, without gradients: the same function as the
plain module chain, holding one full-size tensor per level instead of about four.

Why: a render runs the generator on a whole image or atlas region at once (no gradient, batch
statistics). The plain chain of a level's merge (upsample x2, concatenate the skip, batch norm,
reflection pad, 3x3 conv, batch norm, LeakyReLU, 1x1 conv, ...) keeps the concatenation, its
normalised copy, the padded copy and the conv output alive together: at 128 channels in float32
about 2.7 GB per megapixel (measured, the shipped generator on the CPU). Here the merge's input is
rebuilt band by band from the level's two small inputs (the half-resolution deeper output and the
4-channel skip), and the only full-size tensor is the level's output, which every later step
(batch norm, activation, the 1x1 conv) updates in place.

Batch norm needs statistics over the whole image before any band can be normalised, so the
statistics of the merge's input are gathered in a first pass over the bands, and those of each
conv output while it is written (per band: ``torch.var_mean``, combined exactly by Chan's
parallel formula in float64). In training mode the running buffers are updated as
``nn.BatchNorm2d`` would (momentum, unbiased variance); in eval mode the running statistics are
used. Results equal the plain chain's up to float rounding of the statistics.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

#: about this many bytes per band tensor
BAND_BYTES = 32 * 2 ** 20


class _Moments:
    """Per-channel mean and biased variance over (batch, height, width) of tensors added in pieces."""

    def __init__(self):
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None  # sum of squared deviations from the mean

    def add(self, piece: torch.Tensor) -> None:
        count = piece.shape[0] * piece.shape[2] * piece.shape[3]
        if count == 0:
            return
        var, mean = torch.var_mean(piece, dim=(0, 2, 3), correction=0)
        mean, m2 = mean.double(), var.double() * count
        if self.mean is None:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * count / total)
        self.count = total

    def result(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(mean, biased variance, count)."""
        return self.mean, self.m2 / self.count, self.count


def norm_affine(norm: nn.BatchNorm2d, moments: _Moments, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` with ``norm(x) == x * scale + shift`` for the x whose statistics
    ``moments`` gathered, shaped ``(1, C, 1, 1)``: batch statistics in training mode (updating the
    running buffers as ``norm`` would), the running statistics in eval mode."""
    if norm.training or norm.running_mean is None:
        mean, var, count = moments.result()
        if norm.training and norm.track_running_stats and norm.running_mean is not None:
            norm.num_batches_tracked.add_(1)
            momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
            if momentum:
                unbiased = var * (count / max(count - 1, 1))
                norm.running_mean.mul_(1 - momentum).add_(mean.to(norm.running_mean.dtype), alpha=momentum)
                norm.running_var.mul_(1 - momentum).add_(unbiased.to(norm.running_var.dtype), alpha=momentum)
    else:
        mean, var = norm.running_mean.double(), norm.running_var.double()
    scale = torch.rsqrt(var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.double()
    shift = -mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias.double()
    return scale.to(dtype).view(1, -1, 1, 1), shift.to(dtype).view(1, -1, 1, 1)


def _bands(height: int, rows: int) -> Iterator[tuple[int, int]]:
    for top in range(0, height, rows):
        yield top, min(height, top + rows)


def _band_rows(batch: int, channels: int, width: int, element_size: int, at_least: int) -> int:
    return max(at_least, BAND_BYTES // max(1, batch * channels * width * element_size))


def upsampled_rows(deep: torch.Tensor, size: tuple[int, int], top: int, bottom: int) -> torch.Tensor:
    """Rows ``top:bottom`` of ``generator.upsample_to(deep, size)`` (bilinear x2, then the first H rows
    and W columns), computed from the few rows of ``deep`` they depend on: output row 2k mixes deep
    rows k - 1 and k, row 2k + 1 rows k and k + 1 (clamped at the image's edges), so a slab of
    ``deep`` one row wider on each side gives these rows exactly."""
    first = max(0, top // 2 - 1)
    last = min(deep.shape[-2], bottom // 2 + 2)
    slab = deep[:, :, first:last]
    up = F.interpolate(slab, size=(2 * slab.shape[-2], 2 * slab.shape[-1]), mode="bilinear", align_corners=False)
    return up[:, :, top - 2 * first:bottom - 2 * first, :size[1]]


def _reflected(indices: torch.Tensor, size: int) -> torch.Tensor:
    """Row indices reflected into [0, size) as ``nn.ReflectionPad2d`` reflects (edge row not repeated)."""
    indices = indices.abs()
    return torch.where(indices > size - 1, 2 * (size - 1) - indices, indices)


def _conv_parts(block: nn.Module) -> tuple[nn.Conv2d, int]:
    """The conv of a ``generator._conv`` block (optional reflection pad, then the conv) and its pad."""
    conv = block[-1]
    pad = block[0].padding[0] if len(block) > 1 else 0
    if conv.stride != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
        raise ValueError("the banded merge expects stride-1, unpadded, ungrouped merge convolutions")
    return conv, pad


def _normalise_act_in_place(output: torch.Tensor, norm: nn.BatchNorm2d | None, moments: _Moments | None,
                            slope: float) -> None:
    """batch norm (if any) then LeakyReLU(slope), in place, band by band (no full-size temporary)."""
    scale, shift = norm_affine(norm, moments, output.dtype) if norm is not None else (None, None)
    rows = _band_rows(output.shape[0], output.shape[1], output.shape[3], output.element_size(), 1)
    for top, bottom in _bands(output.shape[2], rows):
        band = output[:, :, top:bottom]
        if scale is not None:
            band.mul_(scale).add_(shift)
        F.leaky_relu_(band, slope)


def banded_merge(level: nn.Module, skip: torch.Tensor | None, deep: torch.Tensor,
                 size: tuple[int, int]) -> torch.Tensor:
    """``level.merge(level.merge_norm(cat(skip, upsample_to(deep, size))))`` of a generator level
    (``generator._Scale``), computed in row bands with no gradient.

    Args:
        level: the ``_Scale``: ``merge_norm``, then ``merge`` = (pad + 3x3 conv, batch norm,
            LeakyReLU) and (1x1 conv, [batch norm,] LeakyReLU).
        skip: ``(B, S, H, W)`` the level's skip branch output, or None (no skip channels).
        deep: ``(B, C, ceil(H / 2), ceil(W / 2))`` the deeper levels' output.
        size: ``(H, W)``.

    Returns:
        ``(B, C_out, H, W)``: the level's output, the only full-size tensor this allocates.
    """
    height, width = size
    batch = deep.shape[0]
    first, last = level.merge[0], level.merge[1]
    conv, pad = _conv_parts(first[0])
    last_conv, last_pad = _conv_parts(last[0])
    if last_pad or last_conv.out_channels != last_conv.in_channels:
        raise ValueError("the banded merge expects a 1x1 last conv that keeps the channel count")
    last_norm = last[1] if isinstance(last[1], nn.BatchNorm2d) else None
    slope = first[-1].negative_slope
    in_channels = conv.in_channels

    def merged(top: int, bottom: int) -> torch.Tensor:
        up = upsampled_rows(deep, size, top, bottom)
        return torch.cat([skip[:, :, top:bottom], up], dim=1) if skip is not None else up

    # pass 1: the statistics of the merge's input, for merge_norm
    rows = _band_rows(batch, in_channels, width, deep.element_size(), pad + 1)
    input_moments = _Moments()
    for top, bottom in _bands(height, rows):
        input_moments.add(merged(top, bottom))
    scale, shift = norm_affine(level.merge_norm, input_moments, deep.dtype)

    # pass 2: normalise, pad and convolve each band (rows reflected at the image's edges) into the output
    output = torch.empty(batch, conv.out_channels, height, width, dtype=deep.dtype, device=deep.device)
    conv_moments = _Moments()
    for top, bottom in _bands(height, rows):
        wanted = _reflected(torch.arange(top - pad, bottom + pad, device=deep.device), height)
        low, high = int(wanted.min()), int(wanted.max()) + 1
        band = merged(low, high).mul_(scale).add_(shift)
        if pad:
            band = F.pad(band.index_select(2, wanted - low), (pad, pad, 0, 0), mode="reflect")
        written = F.conv2d(band, conv.weight, conv.bias)
        output[:, :, top:bottom] = written
        conv_moments.add(written)
    _normalise_act_in_place(output, first[1], conv_moments, slope)

    # the 1x1 conv is per pixel: each band is replaced by its result
    rows = _band_rows(batch, last_conv.out_channels, width, output.element_size(), 1)
    last_moments = _Moments() if last_norm is not None else None
    for top, bottom in _bands(height, rows):
        result = F.conv2d(output[:, :, top:bottom], last_conv.weight, last_conv.bias)
        if last_moments is not None:
            last_moments.add(result)
        else:
            F.leaky_relu_(result, slope)
        output[:, :, top:bottom] = result
    if last_norm is not None:
        _normalise_act_in_place(output, last_norm, last_moments, slope)
    return output
