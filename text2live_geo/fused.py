"""Autograd functions that keep fewer activations for the backward pass (same values, same
gradients as the plain module chains they replace).

Why: at 512 px the generator's saved activations are the largest part of a step's memory, and
the plain chains keep up to three full-size copies per block. The tricks (in the spirit of
In-Place Activated BatchNorm, Rota Bulo et al. 2018):

- `reflect_pad_conv`: reflection pad + conv saves the *unpadded* input (which the previous
  block keeps anyway) and re-pads it in the backward, instead of keeping a padded copy.
- `batch_norm_act`: batch norm (batch statistics) + LeakyReLU saves only its output `y`; the
  backward recovers the normalised input x_hat = (leaky^-1(y) - beta) / gamma. Its input (the
  conv output) is not kept at all. |gamma| is kept >= `GAMMA_MIN` so that inversion is exact.
- `upsample_norm_conv`: the skip net's merge (upsample x2 and cut, concatenate the skip, batch
  norm, pad, conv) keeps only its two inputs and recomputes the full-resolution normalised
  tensor in the backward (an upsample and an affine map: no convolution is recomputed).
- `quick_gelu_linear`: CLIP's MLP tail, quick-GELU then the second linear layer, saves only
  the GELU input and recomputes the GELU (elementwise) in the backward.

They are used when gradients are on and the inputs are float32/float64 without autocast;
otherwise callers use the plain modules (under autocast the plain chain's own casts apply).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GAMMA_MIN = 1e-3  # |batch-norm weight| floor used by batch_norm_act (x_hat = (y - beta) / gamma)
_BLOCK_BYTES = 32 * 2 ** 20  # batch-norm backwards work in channel blocks above this tensor size


def fused_ok(*tensors: torch.Tensor) -> bool:
    """Whether the fused functions apply: gradients on, float32/64 inputs, no autocast."""
    if not torch.is_grad_enabled():
        return False
    for tensor in tensors:
        if tensor.dtype not in (torch.float32, torch.float64) or torch.is_autocast_enabled(tensor.device.type):
            return False
    return True


# --------------------------------------------------------------------------- pad + conv
class _ReflectPadConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, pad: int, stride: int):
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        ctx.save_for_backward(x, weight)
        ctx.pad, ctx.stride, ctx.has_bias = pad, stride, bias is not None
        return F.conv2d(padded, weight, bias, stride)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        pad = ctx.pad
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")  # recomputed: cheap, saves a copy
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2] and ctx.has_bias]
        grad_padded, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_out, padded, weight, [weight.shape[0]] if ctx.has_bias else None, [ctx.stride, ctx.stride],
            [0, 0], [1, 1], False, [0, 0], 1, mask)
        grad_x = None
        if mask[0]:
            grad_x = torch.ops.aten.reflection_pad2d_backward(grad_padded, x, [pad, pad, pad, pad])
        return grad_x, grad_weight, grad_bias if mask[2] else None, None, None


def reflect_pad_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, pad: int,
                     stride: int = 1) -> torch.Tensor:
    """conv2d(reflection_pad(x, pad), weight, bias, stride) for `(B, C, H, W)` x, keeping only
    the unpadded `x` for the backward."""
    return _ReflectPadConv.apply(x, weight, bias, pad, stride)


# --------------------------------------------------------------------------- batch norm + act
def _safe_gamma(weight: torch.Tensor) -> torch.Tensor:
    return torch.where(weight >= 0, weight.clamp(min=GAMMA_MIN), weight.clamp(max=-GAMMA_MIN))


def _running_stats_momentum(norm: torch.nn.BatchNorm2d) -> float | None:
    """Counts the batch as nn.BatchNorm2d does and returns the running-stats momentum to use."""
    momentum = norm.momentum
    if norm.track_running_stats and norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        if momentum is None:  # cumulative moving average, as nn.BatchNorm2d
            momentum = 1.0 / float(norm.num_batches_tracked)
    return momentum


def _channel_block(tensor: torch.Tensor) -> int:
    """Channels per block for a per-channel backward: all of them for small tensors, else 1/8.
    Batch norm is per channel, so its backward can run on channel blocks: the temporaries then
    exist for one block at a time -- the generator's backward at full resolution sets the peak."""
    channels = tensor.shape[1]
    return channels if tensor.numel() * tensor.element_size() <= _BLOCK_BYTES else max(1, channels // 8)


def _batch_norm_backward_from_output(grad, normalised, gamma, beta, invstd, mask):
    """Batch-norm gradients from its output `normalised` = gamma * x_hat + beta (one channel
    block: `gamma`, `beta`, `invstd` are that block's). The native backward computes
    x_hat = (input - save_mean) * save_invstd and scales by weight * save_invstd: fed
    (gamma x_hat + beta, beta, 1 / gamma, gamma^2 invstd) it computes exactly the gradients of
    the forward, without its input."""
    return torch.ops.aten.native_batch_norm_backward(
        grad, normalised, gamma * gamma * invstd, None, None, beta, gamma.reciprocal(), True, 0.0, mask)


class _BatchNormAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, weight, bias, running_mean, running_var, momentum: float, eps: float, slope: float):
        gamma = _safe_gamma(weight)
        out, _, invstd = torch.ops.aten.native_batch_norm(z, gamma, bias, running_mean, running_var, True,
                                                          momentum, eps)
        if slope != 1.0:
            F.leaky_relu_(out, slope)
        ctx.save_for_backward(out, gamma, bias, invstd)
        ctx.slope = slope
        return out

    @staticmethod
    def backward(ctx, grad_out):
        out, gamma, bias, invstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        channels, block = out.shape[1], _channel_block(out)
        grad_z = torch.empty_like(out) if mask[0] else None
        grad_weight, grad_bias = [], []
        for start in range(0, channels, block):
            rows = slice(start, min(channels, start + block))
            out_b, grad_b = out[:, rows], grad_out[:, rows]
            normalised = out_b  # gamma * x_hat + beta
            if ctx.slope != 1.0:
                grad_b = torch.ops.aten.leaky_relu_backward(grad_b, out_b, ctx.slope, True)
                normalised = F.leaky_relu(out_b, 1.0 / ctx.slope)  # the inverse of the activation
            grads = _batch_norm_backward_from_output(grad_b, normalised, gamma[rows], bias[rows], invstd[rows], mask)
            if mask[0]:
                grad_z[:, rows] = grads[0]
            grad_weight.append(grads[1])
            grad_bias.append(grads[2])
        grad_weight = torch.cat(grad_weight) if mask[1] else None
        grad_bias = torch.cat(grad_bias) if mask[2] else None
        return grad_z, grad_weight, grad_bias, None, None, None, None, None


def batch_norm_act(z: torch.Tensor, norm: torch.nn.BatchNorm2d, slope: float = 1.0) -> torch.Tensor:
    """leaky_relu(batch_norm(z), slope) with batch statistics (training mode, running buffers
    updated as `norm` would), keeping only the output. `slope` 1.0 = no activation."""
    return _BatchNormAct.apply(z, norm.weight, norm.bias, norm.running_mean, norm.running_var,
                               _running_stats_momentum(norm), norm.eps, slope)


# --------------------------------------------------------------------------- skip-net merge
class _UpsampleNormConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, skip, deep, gamma, beta, running_mean, running_var, momentum: float, eps: float, weight, bias,
                pad: int):
        size = skip.shape[-2:]
        up = _upsample_x2_crop(deep, size)
        merged = torch.cat([skip, up], dim=1)
        gamma = _safe_gamma(gamma)
        normed, mean, invstd = torch.ops.aten.native_batch_norm(merged, gamma, beta, running_mean, running_var,
                                                                True, momentum, eps)
        del merged, up
        if pad:
            normed = F.pad(normed, (pad, pad, pad, pad), mode="reflect")
        ctx.save_for_backward(skip, deep, gamma, beta, mean, invstd, weight)
        ctx.pad, ctx.has_bias = pad, bias is not None
        return F.conv2d(normed, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        skip, deep, gamma, beta, mean, invstd, weight = ctx.saved_tensors
        pad, shape = ctx.pad, (1, -1, 1, 1)
        skip_channels, size = skip.shape[1], skip.shape[-2:]

        def normed_channels(rows: slice) -> torch.Tensor:
            """Channels `rows` of the normalised merge, recomputed from the saved inputs (an
            upsample of the half-resolution `deep` and an affine map: no convolution)."""
            parts = []
            if rows.start < skip_channels:
                parts.append(skip[:, rows.start:min(rows.stop, skip_channels)])
            if rows.stop > skip_channels:
                deep_rows = deep[:, max(rows.start, skip_channels) - skip_channels:rows.stop - skip_channels]
                parts.append(_upsample_x2_crop(deep_rows, size))
            if len(parts) > 1:
                merged = torch.cat(parts, dim=1)
            else:  # a fresh tensor for the in-place affine below
                merged = parts[0].clone() if rows.stop <= skip_channels else parts[0]
            scale = (invstd[rows] * gamma[rows]).view(shape)
            return merged.sub_(mean[rows].view(shape)).mul_(scale).add_(beta[rows].view(shape))

        # The full-resolution backward sets a 512 px step's peak memory, so: weight gradient
        # first (the padded input freed right after), input gradient from the weights alone,
        # the padding's gradient folded in place, and the batch norm's backward in channel
        # blocks written back into the same buffer.
        channels = gamma.shape[0]
        normed = normed_channels(slice(0, channels))
        padded = F.pad(normed, (pad, pad, pad, pad), mode="reflect") if pad else normed
        del normed
        mask = [False, ctx.needs_input_grad[8], ctx.needs_input_grad[9] and ctx.has_bias]
        _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_out, padded, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], [0, 0], [1, 1], False,
            [0, 0], 1, mask)
        padded_shape = padded.shape
        del padded
        grad = torch.ops.aten.convolution_backward(
            grad_out, grad_out.new_empty(1).expand(padded_shape), weight, None, [1, 1], [0, 0], [1, 1], False,
            [0, 0], 1, [True, False, False])[0]
        grad = _fold_reflection_pad_grad(grad, pad)  # (B, C, H, W) view of the same buffer
        block = _channel_block(grad)
        grad_gamma, grad_beta = [], []
        for start in range(0, channels, block):
            rows = slice(start, min(channels, start + block))
            grad_rows, grad_g, grad_b = _batch_norm_backward_from_output(
                grad[:, rows].contiguous(), normed_channels(rows), gamma[rows], beta[rows], invstd[rows],
                [True, ctx.needs_input_grad[2], ctx.needs_input_grad[3]])
            grad[:, rows] = grad_rows
            grad_gamma.append(grad_g)
            grad_beta.append(grad_b)
        grad_skip, grad_up = grad[:, :skip_channels], grad[:, skip_channels:]
        doubled = (2 * deep.shape[-2], 2 * deep.shape[-1])
        if tuple(size) != doubled:  # the rows / columns the crop dropped get no gradient
            grad_up = F.pad(grad_up, (0, doubled[1] - size[1], 0, doubled[0] - size[0]))
        grad_deep = torch.ops.aten.upsample_bilinear2d_backward(
            grad_up.contiguous(), list(doubled), list(deep.shape), False, None, None)
        return (grad_skip, grad_deep, torch.cat(grad_gamma) if ctx.needs_input_grad[2] else None,
                torch.cat(grad_beta) if ctx.needs_input_grad[3] else None, None, None, None, None, grad_weight,
                grad_bias if mask[2] else None, None)


def _upsample_x2_crop(deep: torch.Tensor, size) -> torch.Tensor:
    """Bilinear x2 upsampling of `deep`, cut to its first `size` = (H, W) rows and columns (the
    generator's `upsample_to`)."""
    up = F.interpolate(deep, size=(2 * deep.shape[-2], 2 * deep.shape[-1]), mode="bilinear", align_corners=False)
    return up[..., :size[0], :size[1]]


def _fold_reflection_pad_grad(grad_padded: torch.Tensor, pad: int) -> torch.Tensor:
    """Gradient of reflection padding by `pad`, computed in place: the pad rows / columns are
    added onto the interior positions they reflect, and the interior view is returned."""
    if not pad:
        return grad_padded
    height, width = grad_padded.shape[-2] - 2 * pad, grad_padded.shape[-1] - 2 * pad
    for i in range(pad):  # padded row i reflects row pad - i; padded row height + pad + i, row height - 2 - i
        grad_padded[..., 2 * pad - i, :] += grad_padded[..., i, :]
        grad_padded[..., height - 2 - i + pad, :] += grad_padded[..., height + pad + i, :]
    rows = grad_padded[..., pad:pad + height, :]
    for i in range(pad):
        rows[..., 2 * pad - i] += rows[..., i]
        rows[..., width - 2 - i + pad] += rows[..., width + pad + i]
    return rows[..., pad:pad + width]


def upsample_norm_conv(skip: torch.Tensor, deep: torch.Tensor, norm: torch.nn.BatchNorm2d, weight: torch.Tensor,
                       bias: torch.Tensor | None, pad: int) -> torch.Tensor:
    """The skip network's merge: conv(reflect_pad(batch_norm(cat(skip, upsample(deep))), pad)).

    skip `(B, Cs, H, W)`, deep `(B, Cd, ceil(H / 2), ceil(W / 2))` (bilinearly upsampled x2 and
    cut to H x W, as `generator.upsample_to`), batch norm with batch statistics over the
    Cs + Cd channels (running buffers updated as `norm` would).
    Keeps only `skip` and `deep` for the backward (which both neighbours keep anyway) and
    recomputes the full-resolution normalised input there."""
    return _UpsampleNormConv.apply(skip, deep, norm.weight, norm.bias, norm.running_mean, norm.running_var,
                                   _running_stats_momentum(norm), norm.eps, weight, bias, pad)


# --------------------------------------------------------------------------- CLIP MLP tail
class _QuickGeluLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias):
        ctx.save_for_backward(hidden, weight)
        ctx.has_bias = bias is not None
        return F.linear(hidden * torch.sigmoid(1.702 * hidden), weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight = ctx.saved_tensors
        gate = torch.sigmoid(1.702 * hidden)
        activated = hidden * gate  # recomputed: elementwise, instead of keeping two (.., 4d) tensors
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_activated = grad_out @ weight
            grad_hidden = grad_activated * (gate + 1.702 * activated * (1 - gate))
        if ctx.needs_input_grad[1]:
            grad_weight = grad_out.reshape(-1, grad_out.shape[-1]).T @ activated.reshape(-1, activated.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        return grad_hidden, grad_weight, grad_bias


def quick_gelu_linear(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """linear(quick_gelu(hidden)) for `(..., D)` hidden, keeping only `hidden` for the backward
    (quick_gelu(x) = x * sigmoid(1.702 x), CLIP's activation)."""
    return _QuickGeluLinear.apply(hidden, weight, bias)
