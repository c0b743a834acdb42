"""The fused autograd functions compute exactly what the plain module chains compute, and keep
fewer activations for the backward."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from text2live_geo.fused import batch_norm_act, quick_gelu_linear, reflect_pad_conv
from text2live_geo.generator import SkipGenerator


def _grads(output, inputs, weights):
    return torch.autograd.grad(output, inputs, weights)


def _saved_bytes(function) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of `function()`."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return sum(storages.values())


@pytest.mark.parametrize("stride", [1, 2])
def test_reflect_pad_conv_matches_pad_then_conv(stride):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 11, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    fused = reflect_pad_conv(x, weight, bias, 1, stride)
    plain = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias, stride)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-12)
    upstream = torch.randn_like(plain)
    for got, want in zip(_grads(fused, (x, weight, bias), upstream), _grads(plain, (x, weight, bias), upstream)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, w, b: reflect_pad_conv(a, w, b, 1, stride), (x, weight, bias))


@pytest.mark.parametrize("slope", [0.2, 1.0])
def test_batch_norm_act_matches_batch_norm_then_leaky_relu(slope):
    torch.manual_seed(1)
    norm = nn.BatchNorm2d(6).double()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(6) * 2)  # both signs, as training can produce
        norm.bias.copy_(torch.randn(6))
    reference = copy.deepcopy(norm)
    z = torch.randn(3, 6, 7, 8, dtype=torch.float64, requires_grad=True)
    fused = batch_norm_act(z, norm, slope)
    plain = F.leaky_relu(reference(z), slope)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-12)
    upstream = torch.randn_like(plain)
    got = _grads(fused, (z, norm.weight, norm.bias), upstream)
    want = _grads(plain, (z, reference.weight, reference.bias), upstream)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    # running statistics move exactly as nn.BatchNorm2d moves them
    torch.testing.assert_close(norm.running_mean, reference.running_mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(norm.running_var, reference.running_var, rtol=0, atol=1e-12)
    assert int(norm.num_batches_tracked) == int(reference.num_batches_tracked) == 1


def test_quick_gelu_linear_matches_the_plain_mlp_tail():
    torch.manual_seed(2)
    hidden = torch.randn(4, 7, 10, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 10, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(quick_gelu_linear, (hidden, weight, bias))
    plain = F.linear(hidden * torch.sigmoid(1.702 * hidden), weight, bias)
    torch.testing.assert_close(quick_gelu_linear(hidden, weight, bias), plain, rtol=0, atol=1e-12)


def test_memory_efficient_generator_same_function_about_half_the_saved_activations():
    torch.manual_seed(3)
    fused = SkipGenerator(num_scales=4, channels=16, memory_efficient=True).double()
    plain = SkipGenerator(num_scales=4, channels=16, memory_efficient=False).double()
    plain.load_state_dict(fused.state_dict())
    image = torch.rand(2, 3, 40, 48, dtype=torch.float64)
    upstream = torch.rand(2, 4, 40, 48, dtype=torch.float64)
    outputs = [generator(image) for generator in (fused, plain)]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-12)
    for output in outputs:
        (output * upstream).sum().backward()
    scale = max(p.grad.abs().max().item() for p in plain.parameters())
    for (name, a), b in zip(fused.named_parameters(), plain.parameters()):
        assert (a.grad - b.grad).abs().max().item() <= 1e-9 * scale, name
    for a, b in zip(fused.buffers(), plain.buffers()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # a float32 graph at a size where activations dominate the weights
    fused_f32, plain_f32 = fused.float(), plain.float()
    big = torch.rand(1, 3, 128, 128)
    fused_bytes = _saved_bytes(lambda: fused_f32(big))
    plain_bytes = _saved_bytes(lambda: plain_f32(big))
    assert fused_bytes < 0.55 * plain_bytes, (fused_bytes, plain_bytes)


def test_blocked_backward_and_folded_padding_match_the_plain_generator(monkeypatch):
    # above a size threshold the backward works in channel blocks; force it on a small net
    # whose channel counts do not divide evenly into the 8 blocks
    import text2live_geo.fused as fused_module

    monkeypatch.setattr(fused_module, "_BLOCK_BYTES", 0)
    torch.manual_seed(6)
    fused = SkipGenerator(num_scales=3, channels=12, skip_channels=3, memory_efficient=True).double()
    plain = SkipGenerator(num_scales=3, channels=12, skip_channels=3, memory_efficient=False).double()
    plain.load_state_dict(fused.state_dict())
    image = torch.rand(1, 3, 21, 26, dtype=torch.float64)
    upstream = torch.rand(1, 4, 21, 26, dtype=torch.float64)
    for generator in (fused, plain):
        (generator(image) * upstream).sum().backward()
    scale = max(p.grad.abs().max().item() for p in plain.parameters())
    for (name, a), b in zip(fused.named_parameters(), plain.parameters()):
        assert (a.grad - b.grad).abs().max().item() <= 1e-9 * scale, name


@pytest.mark.parametrize("pad", [1, 2])
def test_fold_reflection_pad_grad_is_the_padding_backward(pad):
    from text2live_geo.fused import _fold_reflection_pad_grad

    torch.manual_seed(7)
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    grad_padded = torch.rand(2, 3, 7 + 2 * pad, 9 + 2 * pad, dtype=torch.float64)
    expected = torch.ops.aten.reflection_pad2d_backward(grad_padded, x, [pad] * 4)
    torch.testing.assert_close(_fold_reflection_pad_grad(grad_padded.clone(), pad), expected, rtol=0, atol=1e-12)


def test_memory_efficient_generator_falls_back_without_gradients_or_under_autocast():
    torch.manual_seed(4)
    fused = SkipGenerator(num_scales=3, channels=8, memory_efficient=True)
    plain = SkipGenerator(num_scales=3, channels=8, memory_efficient=False)
    plain.load_state_dict(fused.state_dict())
    image = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(fused(image), plain(image))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(fused(image)).all()


def test_clip_fused_mlp_tail_same_embeddings_and_gradients(tiny_clip):
    torch.manual_seed(5)
    images = torch.rand(3, 3, 32, 32, requires_grad=True)
    results = []
    for memory_efficient in (True, False):
        embeds = tiny_clip.encode_images(images, memory_efficient=memory_efficient)
        (grad,) = torch.autograd.grad((embeds * torch.linspace(-1, 1, embeds.numel()).view_as(embeds)).sum(), images)
        results.append((embeds.detach(), grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=1e-6)
    assert tiny_clip._lean_mlps and not any(mlp.fused_tail for mlp in tiny_clip._lean_mlps)
    lean = _saved_bytes(lambda: tiny_clip.encode_images(images, memory_efficient=True))
    plain = _saved_bytes(lambda: tiny_clip.encode_images(images, memory_efficient=False))
    assert lean < plain
