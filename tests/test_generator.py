import pytest
import torch

from text2live_geo.generator import PixelParameterization, SkipGenerator, batch_statistics_without_update
from text2live_geo.layers import GREEN_SCREEN, composite_layers


def test_rgba_shape_range_any_size():
    torch.manual_seed(0)
    generator = SkipGenerator(num_scales=3, channels=8)
    for size in ((9, 9), (33, 47), (64, 40)):
        rgba = generator(torch.rand(1, 3, *size))
        assert rgba.shape == (1, 4, *size)
        assert rgba.min() >= 0 and rgba.max() <= 1


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="minimum"):
        SkipGenerator(num_scales=4, channels=8)(torch.rand(1, 3, 16, 40))


def test_reference_architecture_defaults():
    generator = SkipGenerator()
    assert generator.num_scales == 7 and generator.min_size == 129
    assert generator.head.out_channels == 4


def test_inference_context_leaves_batchnorm_buffers_untouched():
    generator = SkipGenerator(num_scales=2, channels=4)
    before = {k: v.clone() for k, v in generator.state_dict().items() if "running" in k}
    with batch_statistics_without_update(generator):
        generator(torch.rand(1, 3, 16, 16))
    after = generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_compositing_formulas():
    background = torch.rand(1, 3, 4, 4)
    rgba = torch.rand(1, 4, 4, 4)
    layers = composite_layers(rgba, background)
    a, edit = rgba[:, 3:], rgba[:, :3]
    torch.testing.assert_close(layers.composite, (1 - a) * background + a * edit)
    green = torch.tensor(GREEN_SCREEN).view(1, 3, 1, 1)
    torch.testing.assert_close(layers.greenscreen, a * edit + (1 - a) * green)
    clear = composite_layers(torch.cat([rgba[:, :3], torch.zeros_like(a)], 1), background)
    assert torch.equal(clear.composite, background)  # zero alpha keeps the input exactly


def test_pixel_parameterization_starts_at_input():
    image = torch.rand(1, 3, 8, 8) * 0.9 + 0.05
    rgba = PixelParameterization(image)(image)
    torch.testing.assert_close(rgba[:, :3], image, atol=0.01, rtol=0)
    assert torch.equal(rgba[:, 3:], torch.ones(1, 1, 8, 8))


def test_alpha_bias_init_starts_nearly_transparent():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    reference = SkipGenerator(num_scales=3, channels=8)(image)[:, 3]
    transparent = SkipGenerator(num_scales=3, channels=8, alpha_bias_init=-4.0)(image)[:, 3]
    assert 0.3 < reference.mean() < 0.7
    assert transparent.mean() < 0.1


def test_checkpointed_levels_give_the_same_values_and_gradients():
    torch.manual_seed(0)
    plain = SkipGenerator(num_scales=3, channels=8)
    checkpointed = SkipGenerator(num_scales=3, channels=8, checkpoint_levels=2)
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.body.checkpointed and checkpointed.body.deeper.checkpointed
    image = torch.rand(1, 3, 24, 30)
    outputs = []
    for generator in (plain, checkpointed):
        rgba = generator(image)
        (rgba * torch.linspace(0, 1, 30)).sum().backward()
        outputs.append((rgba.detach(), [p.grad.clone() for p in generator.parameters()]))
    torch.testing.assert_close(outputs[0][0], outputs[1][0])
    for plain_grad, checkpointed_grad in zip(outputs[0][1], outputs[1][1]):
        torch.testing.assert_close(plain_grad, checkpointed_grad, atol=1e-5, rtol=1e-4)


def test_reference_parameter_count_and_batch_norms():
    # the reference skip network at its default sizes: 41 batch norms (none after the top
    # level's final 1x1 conv), 3,115,548 parameters
    generator = SkipGenerator()
    assert sum(p.numel() for p in generator.parameters()) == 3_115_548
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules()) == 41
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in generator.body.merge[1].modules())
    assert isinstance(generator.body.deeper.merge[1][1], torch.nn.BatchNorm2d)
    # generator.top_norm: the former generator, one batch norm more
    former = SkipGenerator(top_norm=True)
    assert sum(p.numel() for p in former.parameters()) == 3_115_804
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in former.modules()) == 42


def test_colour_map_is_the_reference_formula():
    # closed form: columns of the correlation square root C, the first divided by s = 1.6, the
    # matrix divided by its largest column norm (the first's, |c0| / s): M = C diag(1, s, s) / |c0|
    from text2live_geo.generator import COLOUR_TO_RGB, colour_to_rgb

    c = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64)
    s = 1.6
    expected = c * torch.tensor([1.0, s, s], dtype=torch.float64) / c[:, 0].norm()
    torch.testing.assert_close(COLOUR_TO_RGB.double(), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(colour_to_rgb(1.0).double(), c / c[:, 0].norm(), rtol=1e-6, atol=1e-7)
    generator = SkipGenerator(num_scales=2, channels=4)
    torch.testing.assert_close(generator.colour_to_rgb.double(), expected, rtol=1e-6, atol=1e-7)
    # what the output applies: sigmoid(M @ logits) on the colour channels, sigmoid on alpha
    image = torch.rand(1, 3, 9, 11)
    logits = generator.head(generator.body(image)).double()
    colour = torch.einsum("ij,bjhw->bihw", expected, logits[:, :3])
    torch.testing.assert_close(generator(image).double(), torch.sigmoid(torch.cat([colour, logits[:, 3:]], 1)),
                               rtol=1e-5, atol=1e-6)


def _reference_skip_net(levels: int, channels: int, skip: int) -> torch.nn.Module:
    """The reference skip network's function, written independently of generator.py: per level
    a skip branch and a down branch whose deeper result is upsampled x2 (bilinear) and cut to
    the skip's size, both concatenated, batch norm, 3x3 conv-bn-act, 1x1 conv-(bn)-act (no bn
    at the top level); modules in the reference's parameter order."""
    from torch import nn

    def conv(cin, cout, kernel, stride=1):
        pad = (kernel - 1) // 2
        padding = [nn.ReflectionPad2d(pad)] if pad else []
        return [*padding, nn.Conv2d(cin, cout, kernel, stride)]

    def act():
        return nn.LeakyReLU(0.2)

    class Level(nn.Module):
        def __init__(self, cin, top, deeper):
            super().__init__()
            self.skip = nn.Sequential(*conv(cin, skip, 1), nn.BatchNorm2d(skip), act())
            self.down = nn.Sequential(*conv(cin, channels, 3, 2), nn.BatchNorm2d(channels), act(),
                                      *conv(channels, channels, 3), nn.BatchNorm2d(channels), act())
            self.deeper = deeper
            tail = [] if top else [nn.BatchNorm2d(channels)]
            self.up = nn.Sequential(nn.BatchNorm2d(skip + channels), *conv(skip + channels, channels, 3),
                                    nn.BatchNorm2d(channels), act(), *conv(channels, channels, 1), *tail, act())

        def forward(self, x):
            deep = self.down(x)
            if self.deeper is not None:
                deep = self.deeper(deep)
            deep = torch.nn.functional.interpolate(deep, scale_factor=2, mode="bilinear")
            a = self.skip(x)
            return self.up(torch.cat([a, deep[..., :a.shape[-2], :a.shape[-1]]], 1))

    deeper = None
    for level in reversed(range(levels)):
        deeper = Level(3 if level == 0 else channels, level == 0, deeper)
    return torch.nn.Sequential(deeper, torch.nn.Conv2d(channels, 4, 1))


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_same_function_as_the_reference_skip_network(memory_efficient):
    torch.manual_seed(8)
    ours = SkipGenerator(num_scales=3, channels=6, skip_channels=2, memory_efficient=memory_efficient).double()
    reference = _reference_skip_net(3, 6, 2).double()
    ours_params, reference_params = list(ours.parameters()), list(reference.parameters())
    assert [p.shape for p in ours_params] == [p.shape for p in reference_params]
    with torch.no_grad():
        for a, b in zip(ours_params, reference_params):
            b.copy_(a)
    image = torch.rand(2, 3, 19, 26, dtype=torch.float64)  # odd and even sides at several levels
    logits = reference(image)
    colour = torch.einsum("ij,bjhw->bihw", ours.colour_to_rgb.double(), logits[:, :3])
    expected = torch.sigmoid(torch.cat([colour, logits[:, 3:]], 1))
    upstream = torch.rand_like(expected)
    output = ours(image)
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-12)
    (output * upstream).sum().backward()
    (expected * upstream).sum().backward()
    for (name, a), b in zip(ours.named_parameters(), reference_params):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-11, msg=name)
