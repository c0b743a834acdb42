"""atlas.render / atlas.coordinates: baking, sampling back, rendering, PSNR."""

import math

import pytest
import torch

from atlas import (
    PixelBox,
    reconstruction_psnr,
    sample_atlas,
    uv_bounding_box,
    uv_to_atlas_pixels,
)
from atlas.testing import make_tiny_atlas


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas_render"), seed=5)


@pytest.mark.parametrize("layer, offset", [("foreground", 0.0), ("background", -1.0)])
def test_bake_grid_convention_and_exact_sample_back(tiny, layer, offset):
    resolution = 20
    image = tiny.atlas.bake(layer, resolution, chunk_size=37)
    assert image.shape == (3, resolution, resolution)
    rows, columns = torch.tensor([0, 3, 19, 7]), torch.tensor([0, 11, 19, 2])
    uv = torch.stack((columns / resolution + offset, rows / resolution + offset), dim=1)
    with torch.no_grad():
        direct = tiny.atlas.atlas_rgb(uv)  # (4, 3)
    assert torch.allclose(image[:, rows, columns].T, direct, atol=1e-6)
    # sampling at a baked pixel's uv returns that pixel exactly (half-pixel centre handled)
    sampled = sample_atlas(image, uv.view(1, 1, 4, 2), layer)  # (1, 3, 1, 4)
    assert torch.allclose(sampled[0, :, 0].T, image[:, rows, columns].T, atol=1e-6)
    assert torch.allclose(uv_to_atlas_pixels(uv, layer, resolution), torch.stack((columns, rows), 1).float(), atol=1e-5)


def test_baked_box_equals_crop_and_crop_sampling_matches_full(tiny):
    resolution = 32
    full = tiny.atlas.bake("foreground", resolution)
    box = PixelBox(left=5, top=9, right=21, bottom=17)
    crop = tiny.atlas.bake("foreground", resolution, box=box)
    assert torch.allclose(crop, box.crop(full), atol=1e-6)
    uv = torch.rand(2, 3, 4, 2, generator=torch.Generator().manual_seed(0))
    uv[..., 0] = (box.left + uv[..., 0] * (box.width - 1)) / resolution  # inside the box's pixel centres
    uv[..., 1] = (box.top + uv[..., 1] * (box.height - 1)) / resolution
    from_full = sample_atlas(full, uv, "foreground")
    from_crop = sample_atlas(crop, uv, "foreground", resolution=resolution, box=box)
    assert from_full.shape == (2, 3, 3, 4)
    assert torch.allclose(from_full, from_crop, atol=1e-6)


def render_frames(maps, foreground, background):
    """Frames from baked atlases: alpha x foreground + (1 - alpha) x background, sampled at the uvs."""
    return (maps.alpha * sample_atlas(foreground, maps.uv_foreground, "foreground")
            + (1 - maps.alpha) * sample_atlas(background, maps.uv_background, "background"))


def test_render_from_baked_atlases_matches_direct_reconstruction(tiny):
    maps = tiny.atlas.precompute_maps()
    resolution = 96
    foreground = tiny.atlas.bake("foreground", resolution)
    background = tiny.atlas.bake("background", resolution)
    rendered = render_frames(maps, foreground, background)
    assert rendered.shape == (6, 3, 16, 24)
    direct = tiny.atlas.reconstruct_frames()
    assert reconstruction_psnr(rendered, direct) > 30
    # an atlas edit (all-black foreground atlas) shows exactly where alpha is
    black = render_frames(maps, torch.zeros_like(foreground), background)
    expected = (1 - maps.alpha) * sample_atlas(background, maps.uv_background, "background")
    assert torch.allclose(black, expected, atol=1e-6)


def test_sampling_is_differentiable_in_the_atlas_image(tiny):
    maps = tiny.atlas.precompute_maps()
    image = torch.full((3, 16, 16), 0.5, requires_grad=True)
    sample_atlas(image, maps.uv_foreground, "foreground").sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_uv_bounding_box_floor_min_ceil_max():
    uv = torch.tensor([[0.105, 0.5], [0.2, 0.52]])  # atlas pixels (10.5, 50) and (20, 52) at R = 100
    box = uv_bounding_box(uv, "foreground", 100)
    assert box == PixelBox(left=10, top=50, right=21, bottom=53)
    background = uv_bounding_box(uv - 1.0, "background", 100)
    assert background == box
    mask = torch.tensor([True, False])
    assert uv_bounding_box(uv, "foreground", 100, mask) == PixelBox(10, 50, 12, 51)
    assert uv_bounding_box(uv, "foreground", 100, torch.zeros(2, dtype=torch.bool)) is None


def test_psnr_known_values():
    a = torch.zeros(2, 3, 4, 4)
    assert reconstruction_psnr(a, a) == math.inf
    assert reconstruction_psnr(a + 0.1, a) == pytest.approx(20.0)
    assert reconstruction_psnr(a + 25.5, a, max_value=255.0) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="shape"):
        reconstruction_psnr(a, a[0])
