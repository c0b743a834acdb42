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
