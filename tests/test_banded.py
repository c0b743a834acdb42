"""The banded (no-gradient, row-band) merge computes the plain generator's function."""
import copy

import pytest
import torch
import torch.nn.functional as F

import text2live_geo.banded as banded
import text2live_geo.generator as generator_module
from text2live_geo.generator import SkipGenerator, _Scale, batch_statistics_without_update, upsample_to


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of a few rows, and banding at any size: many bands even on a tiny input."""
    monkeypatch.setattr(banded, "BAND_BYTES", 1500)
    monkeypatch.setattr(_Scale, "banded_min_pixels", 0)


def plain(generator, image):
    """The plain module chain (banding off)."""
    saved = _Scale.banded_min_pixels
    _Scale.banded_min_pixels = 10 ** 12
    try:
        return generator(image)
    finally:
        _Scale.banded_min_pixels = saved


def _random_running_stats(generator, seed):
    generator_ = torch.Generator().manual_seed(seed)
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator_) * 0.3)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator_) + 0.5)
            module.weight.data.copy_(torch.randn(module.num_features, generator=generator_))
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator_) * 0.2)


@pytest.mark.parametrize("skip_channels, top_norm, size, batch", [
    (4, False, (41, 67), 1),   # the shipped shape, odd sides
    (0, True, (40, 33), 2),    # no skip branch, a batch norm after the top 1x1 conv
    (4, True, (65, 64), 1),
])
def test_banded_render_equals_the_plain_chain(small_bands, skip_channels, top_norm, size, batch):
    torch.manual_seed(0)
    generator = SkipGenerator(num_scales=3, channels=8, skip_channels=skip_channels, top_norm=top_norm)
    _random_running_stats(generator, 1)
    image = torch.rand(batch, 3, *size)
    with torch.no_grad():
        # a render: batch statistics, buffers untouched
        with batch_statistics_without_update(generator):
            expected, got = plain(generator, image), generator(image)
        assert got.shape == expected.shape == (batch, 4, *size)
        assert (got - expected).abs().max() < 1e-5
        # eval mode: the running statistics
        generator.eval()
        expected, got = plain(generator, image), generator(image)
        assert (got - expected).abs().max() < 1e-5
        # the plain render's values differ between the two modes, so both paths were exercised
        assert (got - generator.train()(image)).abs().max() > 1e-3


def test_banded_training_mode_updates_running_buffers_as_batch_norm_does(small_bands):
    torch.manual_seed(0)
    reference = SkipGenerator(num_scales=3, channels=8)
    banded_copy = copy.deepcopy(reference)
    image = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        expected, got = plain(reference, image), banded_copy(image)
    assert (got - expected).abs().max() < 1e-5
    for (name, want), have in zip(reference.state_dict().items(), banded_copy.state_dict().values()):
        if "running" in name or "num_batches" in name:
            assert torch.allclose(want.double(), have.double(), atol=1e-6), name
    # and they did move: the update is not vacuous
    assert not torch.allclose(reference.body.merge_norm.running_mean, torch.zeros(12))


def test_the_banded_path_is_taken_only_without_gradients(small_bands, monkeypatch):
    calls = []
    real = generator_module.banded_merge
    monkeypatch.setattr(generator_module, "banded_merge", lambda *a: calls.append(tuple(a[3])) or real(*a))
    generator = SkipGenerator(num_scales=3, channels=8)
    image = torch.rand(1, 3, 33, 40)
    generator(image).sum().backward()  # training step: the plain (or fused) chain
    assert calls == []
    with torch.no_grad():
        generator(image)
    assert calls == [(9, 10), (17, 20), (33, 40)]  # every level, the deepest first


def test_large_threshold_keeps_small_renders_on_the_plain_chain(monkeypatch):
    calls = []
    monkeypatch.setattr(generator_module, "banded_merge", lambda *a: calls.append(a))
    with torch.no_grad():
        SkipGenerator(num_scales=3, channels=8)(torch.rand(1, 3, 33, 40))
    assert calls == []


@pytest.mark.parametrize("deep_size, size", [((5, 7), (9, 13)), ((6, 4), (12, 8)), ((1, 3), (2, 5))])
def test_upsampled_rows_equal_the_whole_upsample(deep_size, size):
    deep = torch.rand(2, 3, *deep_size)
    whole = upsample_to(deep, size)
    for top in range(size[0]):
        for bottom in range(top + 1, size[0] + 1):
            assert torch.equal(banded.upsampled_rows(deep, size, top, bottom), whole[:, :, top:bottom])


def test_moments_combine_exactly():
    torch.manual_seed(0)
    pieces = [torch.randn(2, 3, rows, 5, dtype=torch.float64) * 3 + 7 for rows in (1, 4, 2, 7)]
    moments = banded._Moments()
    for piece in pieces:
        moments.add(piece)
    mean, var, count = moments.result()
    whole = torch.cat(pieces, dim=2)
    assert count == whole.numel() // 3
    assert torch.allclose(mean, whole.mean(dim=(0, 2, 3)), atol=1e-9)
    assert torch.allclose(var, whole.var(dim=(0, 2, 3), correction=0), atol=1e-9)
    # and batch norm's own normalisation agrees with the affine map built from them
    norm = torch.nn.BatchNorm2d(3).train()
    norm.momentum = 0.0
    scale, shift = banded.norm_affine(norm, moments, torch.float64)
    expected = F.batch_norm(whole, None, None, training=True, eps=norm.eps)
    assert torch.allclose(whole * scale + shift, expected, atol=1e-9)
