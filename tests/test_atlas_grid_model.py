"""GridAtlas conventions (atlas/grid_model.py): value ranges, closed-form uv of known transforms,
texture lookups, background-only alpha, reconstruction through the LayeredAtlas API, smoothness."""
import math

import pytest
import torch

from atlas.grid_model import GridAtlas, GridAtlasConfig

W, H, N = 20, 12, 4
L = max(W, H)
MARGIN = 1e-4  # a layer's uv stays this far inside its unit square (grid_model._UV_MARGIN)


def _atlas(layers: int = 2, residual_cells: int = 4, **sizes) -> GridAtlas:
    config = GridAtlasConfig(width=W, height=H, num_frames=N, layers=layers, foreground_texture=16,
                             background_texture=24, residual_cells=residual_cells, residual_frames=2, **sizes)
    return GridAtlas(config)


def _randomised(layers: int = 2, seed: int = 0) -> GridAtlas:
    """An atlas whose every parameter is perturbed (transforms stay near the identity)."""
    atlas = _atlas(layers)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in atlas.named_parameters():
            scale = 0.05 if "transform" in name else 1.0
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return atlas


def _all_pixels(atlas: GridAtlas) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t, y, x = torch.meshgrid(torch.arange(N), torch.arange(H), torch.arange(W), indexing="ij")
    return x.reshape(-1).float(), y.reshape(-1).float(), t.reshape(-1).float()


def _uv_closed_form(x: torch.Tensor, y: torch.Tensor, canvas: tuple[float, float, float],
                    shift: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """uv of an identity map plus a translation ``shift`` (normalised units) on ``canvas``."""
    xn = x / (L / 2) - 1 + shift[0]
    yn = y / (L / 2) - 1 + shift[1]
    left, top, side = canvas
    return torch.stack(((xn - left) / side, (yn - top) / side), dim=1)


def test_value_ranges_of_a_perturbed_atlas():
    atlas = _randomised()
    with torch.no_grad():
        query = atlas.query(*_all_pixels(atlas))
    assert query.uv_foreground.min() > 0 and query.uv_foreground.max() < 1
    assert query.uv_background.min() > -1 and query.uv_background.max() < 0
    assert query.alpha.min() >= 0.001 and query.alpha.max() <= 0.991
    for rgb in (query.rgb_foreground, query.rgb_background):
        assert rgb.min() >= 0 and rgb.max() <= 1
    # a big residual or a wild transform cannot push uv out of its layer's square either
    with torch.no_grad():
        atlas.foreground_transform.mul_(5.0)
        atlas.background_residual.fill_(50.0)
        query = atlas.query(*_all_pixels(atlas))
    assert query.uv_foreground.min() > 0 and query.uv_foreground.max() < 1
    assert query.uv_background.min() > -1 and query.uv_background.max() < 0


def test_identity_transforms_map_pixels_to_closed_form_uv():
    atlas = _atlas()
    background_canvas = (-1.5, -1.25, 3.0)
    with torch.no_grad():
        atlas.background_canvas.copy_(torch.tensor(background_canvas))
    x, y, t = _all_pixels(atlas)
    with torch.no_grad():
        xyt = atlas.normalize_coordinates(x, y, t)
        uv_foreground = atlas.foreground_uv(xyt)
        uv_background = atlas.background_uv(xyt)
    # default canvas (-1, -1, 2): the foreground uv is simply (x / L, y / L)
    expected = torch.stack((x / L, y / L), dim=1).clamp(MARGIN, 1 - MARGIN)  # pixel 0 sits on the margin
    torch.testing.assert_close(uv_foreground, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(uv_background, _uv_closed_form(x, y, background_canvas) - 1.0, atol=1e-6, rtol=0)


def test_per_frame_translation_moves_uv_by_the_expected_amount():
    atlas = _atlas()
    canvas = (-2.0, -2.0, 4.0)
    shifts = torch.tensor([[0.1 * t, -0.05 * t] for t in range(N)])
    with torch.no_grad():
        atlas.foreground_canvas.copy_(torch.tensor(canvas))
        atlas.background_canvas.copy_(torch.tensor(canvas))
        atlas.foreground_transform[:, :, 2] = shifts
        atlas.background_transform[:, :2, 2] = -shifts
    x, y, t = _all_pixels(atlas)
    with torch.no_grad():
        xyt = atlas.normalize_coordinates(x, y, t)
        uv_foreground = atlas.foreground_uv(xyt)
        uv_background = atlas.background_uv(xyt)
    frame_shift = shifts[t.long()]
    expected_foreground = _uv_closed_form(x, y, canvas) + frame_shift / canvas[2]
    expected_background = _uv_closed_form(x, y, canvas) - frame_shift / canvas[2] - 1.0
    torch.testing.assert_close(uv_foreground, expected_foreground, atol=1e-6, rtol=0)
    torch.testing.assert_close(uv_background, expected_background, atol=1e-6, rtol=0)
    # one pixel of translation in the frame is 1 / pixels_per_uv in uv
    assert atlas.pixels_per_uv("foreground") == pytest.approx(canvas[2] * L / 2)
    # at a fractional time the two frames' transforms are blended linearly
    with torch.no_grad():
        middle = atlas.foreground_uv(atlas.normalize_coordinates(torch.tensor([5.0]), torch.tensor([6.0]),
                                                                 torch.tensor([1.5])))
    expected = _uv_closed_form(torch.tensor([5.0]), torch.tensor([6.0]), canvas) + 0.5 * (shifts[1] + shifts[2]) / 4
    torch.testing.assert_close(middle, expected, atol=1e-6, rtol=0)


def test_background_homography_divides_by_the_projective_term():
    atlas = _atlas(residual_cells=0)
    with torch.no_grad():
        atlas.background_transform[:, 2, 2] = 2.0  # (x, y, 2): every canonical point halves
    x, y, t = _all_pixels(atlas)
    with torch.no_grad():
        uv = atlas.background_uv(atlas.normalize_coordinates(x, y, t))
    xn, yn = x / (L / 2) - 1, y / (L / 2) - 1
    expected = torch.stack(((xn / 2 + 1) / 2, (yn / 2 + 1) / 2), dim=1) - 1.0
    torch.testing.assert_close(uv, expected, atol=1e-6, rtol=0)


def test_atlas_rgb_samples_each_layers_texture():
    atlas = _atlas()
    with torch.no_grad():
        atlas.foreground_texture.copy_(torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1).expand_as(
            atlas.foreground_texture))
        atlas.background_texture.fill_(-0.25)
    x, y, t = _all_pixels(atlas)
    with torch.no_grad():
        query = atlas.query(x, y, t)
        baked = atlas.bake("foreground", resolution=8)
    foreground = torch.sigmoid(torch.tensor([0.5, -1.0, 2.0]))
    torch.testing.assert_close(query.rgb_foreground, foreground.expand_as(query.rgb_foreground))
    torch.testing.assert_close(query.rgb_background, torch.full_like(query.rgb_background, 1 / (1 + math.exp(0.25))))
    torch.testing.assert_close(baked, foreground.view(3, 1, 1).expand(3, 8, 8))
    # atlas_rgb picks the layer from the uv's sign, per row
    uv = torch.tensor([[0.3, 0.6], [-0.3, -0.6]])
    torch.testing.assert_close(atlas.atlas_rgb(uv)[0], foreground)
    torch.testing.assert_close(atlas.atlas_rgb(uv)[1], torch.full((3,), 1 / (1 + math.exp(0.25))))


def test_texture_lookup_is_bilinear_at_texel_centres():
    atlas = _atlas()
    side = atlas.config.foreground_texture
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        atlas.foreground_texture.copy_(torch.randn(atlas.foreground_texture.shape, generator=generator))
    row, column = 5, 9
    uv = torch.tensor([[(column + 0.5) / side, (row + 0.5) / side]])
    expected = torch.sigmoid(atlas.foreground_texture[0, :, row, column]).detach()
    torch.testing.assert_close(atlas.layer_rgb(uv, True)[0].detach(), expected)


def test_background_only_atlas_has_alpha_0_001():
    atlas = _randomised(layers=1)
    x, y, t = _all_pixels(atlas)
    with torch.no_grad():
        alpha = atlas.query(x, y, t).alpha
    assert torch.equal(alpha, torch.full_like(alpha, 0.001))
    assert torch.equal(atlas.alpha(range(N)), torch.full((N, 1, H, W), 0.001))


def test_reconstruct_equals_the_alpha_blend_of_query():
    atlas = _randomised(seed=3)
    frames = [2, 0, 3]
    reconstruction = atlas.reconstruct(frames)
    assert reconstruction.shape == (3, 3, H, W)
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    t, y, x = torch.meshgrid(torch.tensor(frames), torch.arange(H), torch.arange(W), indexing="ij")
    with torch.no_grad():
        query = atlas.query(x.reshape(-1).float(), y.reshape(-1).float(), t.reshape(-1).float())
    by_hand = query.alpha * query.rgb_foreground + (1 - query.alpha) * query.rgb_background
    torch.testing.assert_close(reconstruction, by_hand.view(3, H, W, 3).permute(0, 3, 1, 2), atol=1e-6, rtol=0)
    alpha = atlas.alpha(frames)
    assert alpha.shape == (3, 1, H, W)
    torch.testing.assert_close(alpha, query.alpha.view(3, 1, H, W))
    # the whole-video pass agrees with the per-frame one
    torch.testing.assert_close(atlas.reconstruct_frames()[frames], reconstruction, atol=1e-6, rtol=0)


def test_residual_grid_offsets_uv_by_a_bounded_amount():
    atlas = _atlas()
    x, y, t = _all_pixels(atlas)
    with torch.no_grad():
        xyt = atlas.normalize_coordinates(x, y, t)
        before = atlas.foreground_uv(xyt)
        atlas.foreground_residual[:, 0] = 1.0  # tanh(1) * residual_range along u everywhere
        after = atlas.foreground_uv(xyt)
    shift = atlas.config.residual_range * math.tanh(1.0)
    inside = (before[:, 0] > MARGIN) & (before[:, 0] + shift < 1 - MARGIN)
    torch.testing.assert_close(after[inside, 0] - before[inside, 0], torch.full((int(inside.sum()),), shift),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(after[:, 1], before[:, 1])


def test_smoothness_is_zero_for_constant_grids_and_positive_otherwise():
    atlas = _atlas()
    assert float(atlas.smoothness().detach()) == 0.0
    with torch.no_grad():
        atlas.alpha_logits.fill_(2.0)
        atlas.foreground_residual.fill_(-0.3)
    assert float(atlas.smoothness().detach()) == 0.0
    for name in ("background_residual", "foreground_residual", "alpha_logits"):
        atlas = _atlas()
        with torch.no_grad():
            getattr(atlas, name).view(-1)[3] = 1.0
        value = atlas.smoothness()
        assert float(value.detach()) > 0, name
        value.backward()  # differentiable
        assert getattr(atlas, name).grad.abs().sum() > 0
    # background only: the alpha grid plays no part
    atlas = _atlas(layers=1)
    with torch.no_grad():
        atlas.alpha_logits.view(-1)[3] = 1.0
    assert float(atlas.smoothness().detach()) == 0.0


def test_config_round_trip_and_shapes():
    config = GridAtlasConfig(width=64, height=48, num_frames=8, residual_cells=16, residual_frames=4,
                             alpha_downscale=3)
    assert GridAtlasConfig.from_dict(config.to_dict()) == config
    assert config.residual_shape() == (4, 12, 16)
    assert config.alpha_shape() == (8, 16, 22)
    with pytest.raises(ValueError, match="bogus"):
        GridAtlasConfig.from_dict({**config.to_dict(), "bogus": 1})
    atlas = GridAtlas(config)
    assert atlas.alpha_logits.shape == (1, 1, 8, 16, 22)
    assert atlas.foreground_residual.shape == (1, 2, 4, 12, 16)
    assert (atlas.width, atlas.height, atlas.num_frames) == (64, 48, 8)
