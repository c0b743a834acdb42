"""atlas.model: coordinate conventions, queries, whole-video passes (checkpoints: test_atlas_nla_format)."""

import pytest
import torch

from atlas import reconstruction_psnr
from atlas.testing import make_tiny_atlas


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas"), width=24, height=16, frames=6, seed=3)


def grid_pixels(atlas):
    t, y, x = torch.meshgrid(
        torch.arange(atlas.num_frames), torch.arange(atlas.height), torch.arange(atlas.width), indexing="ij"
    )
    return x.reshape(-1).float(), y.reshape(-1).float(), t.reshape(-1).float()


def test_query_normalisation_and_mappings(tiny):
    atlas = tiny.atlas
    # W = 24, H = 16, N = 6: L = 24; pixel (12, 8) of frame 3 -> (0, -1/3, 0).
    xyt = atlas.normalize_coordinates(torch.tensor([12.0]), torch.tensor([8.0]), torch.tensor([3.0]))
    assert torch.allclose(xyt, torch.tensor([[0.0, -1.0 / 3.0, 0.0]]))
    with torch.no_grad():
        query = atlas.query(torch.tensor([12.0]), torch.tensor([8.0]), torch.tensor([3.0]))
        assert torch.allclose(query.uv_foreground, 0.5 * atlas.foreground_mapping(xyt) + 0.5)
        assert torch.allclose(query.uv_background, 0.5 * atlas.background_mapping(xyt) - 0.5)
        assert torch.allclose(query.alpha, 0.99 * (atlas.alpha_network(xyt) + 1) / 2 + 0.001)
        assert torch.allclose(query.rgb_foreground, (atlas.atlas_network(query.uv_foreground) + 1) / 2)


def test_query_ranges_and_shared_atlas(tiny):
    atlas = tiny.atlas
    x, y, t = grid_pixels(atlas)
    with torch.no_grad():
        query = atlas.query(x, y, t)
        assert query.uv_foreground.shape == (x.numel(), 2) and query.alpha.shape == (x.numel(), 1)
        assert query.uv_foreground.min() > 0 and query.uv_foreground.max() < 1
        assert query.uv_background.min() > -1 and query.uv_background.max() < 0
        assert query.alpha.min() >= 0.001 and query.alpha.max() <= 0.991
        assert query.rgb_foreground.min() >= 0 and query.rgb_background.max() <= 1
        # one atlas network serves both layers: each layer's colour is the shared net at its uv
        assert torch.equal(query.rgb_background, atlas.atlas_rgb(query.uv_background))
        assert torch.equal(query.rgb_foreground, atlas.atlas_rgb(query.uv_foreground))
    assert not hasattr(atlas, "foreground_atlas") and not hasattr(atlas, "background_atlas")


def test_precompute_maps_matches_query_and_chunking(tiny):
    atlas = tiny.atlas
    maps = atlas.precompute_maps(device="cpu", chunk_size=97, progress=True)
    assert maps.uv_foreground.shape == (6, 16, 24, 2) and maps.alpha.shape == (6, 1, 16, 24)
    x, y, t = grid_pixels(atlas)
    with torch.no_grad():
        query = atlas.query(x, y, t)
    assert torch.allclose(maps.uv_foreground.reshape(-1, 2), query.uv_foreground, atol=1e-6)
    assert torch.allclose(maps.uv_background.reshape(-1, 2), query.uv_background, atol=1e-6)
    assert torch.allclose(maps.alpha.reshape(-1, 1), query.alpha, atol=1e-6)
    frames = atlas.reconstruct_frames(chunk_size=1000)
    assert torch.allclose(frames.permute(0, 2, 3, 1).reshape(-1, 3), query.reconstruction, atol=1e-6)
    # the written video is the atlas's own reconstruction up to 8-bit rounding
    assert reconstruction_psnr(frames, tiny.frames) > 45
    assert len(list(tiny.frames_folder.glob("*.png"))) == 6


def test_precompute_maps_of_one_layer(tiny):
    """An edit of one layer precomputes that layer's uv alone: the same values, the other absent."""
    from atlas.layers import Layer

    atlas = tiny.atlas
    both = atlas.precompute_maps(device="cpu")
    for layer in Layer:
        one = atlas.precompute_maps(device="cpu", layers=(layer,))
        assert torch.equal(one.uv(layer), both.uv(layer)) and torch.equal(one.alpha, both.alpha)
        other = Layer.background if layer == Layer.foreground else Layer.foreground
        with pytest.raises(ValueError, match=f"no {other} uv"):
            one.uv(other)
        subset = one.frames([4, 1])
        assert torch.equal(subset.uv(layer), both.uv(layer)[[4, 1]])


def test_reconstruct_from_maps_equals_reconstruct(tiny):
    atlas = tiny.atlas
    maps = atlas.precompute_maps(device="cpu")
    for indices in ([0, 1, 2], [5, 3]):
        torch.testing.assert_close(atlas.reconstruct_from_maps(maps.frames(indices), chunk_size=101),
                                   atlas.reconstruct(indices), atol=1e-6, rtol=0)


def test_frame_maps_equal_the_whole_clips(tiny):
    atlas = tiny.atlas
    whole = atlas.precompute_maps(device="cpu").frames([5, 0, 2])
    some = atlas.frame_maps([5, 0, 2], chunk_size=77)
    for part in ("uv_foreground", "uv_background", "alpha"):
        torch.testing.assert_close(getattr(some, part), getattr(whole, part), atol=1e-6, rtol=0)


def test_compact_maps_decode_within_their_stated_error_in_half_the_memory(tiny):
    from atlas import CompactAtlasMaps
    from atlas.layers import Layer

    atlas = tiny.atlas
    both = atlas.precompute_maps(device="cpu")
    compact = CompactAtlasMaps.from_maps(both, chunk_frames=4)  # chunks that do not divide N = 6
    assert (compact.num_frames, compact.height, compact.width) == (6, 16, 24)
    for indices in ([4, 1], range(6), slice(2, 3)):
        decoded = compact.frames(indices)
        for layer in Layer:
            error = (decoded.uv(layer) - both.frames(indices).uv(layer)).abs().max()
            assert error <= 0.5 / 65535 + 1e-7  # half a 16-bit step of the layer's unit square
        assert decoded.alpha.dtype == torch.float32
        assert (decoded.alpha - both.frames(indices).alpha).abs().max() <= 2.5e-4
    # both layers' uv (2 x 2 x 2 bytes) and alpha (2 bytes) a pixel, against 20 bytes in float32
    pixels = 6 * 16 * 24
    assert compact.nbytes == 10 * pixels
    # one layer, as an edit holds it: 6 bytes a pixel instead of 12
    one = CompactAtlasMaps.from_maps(atlas.precompute_maps(device="cpu", layers=(Layer.background,)))
    assert one.nbytes == 6 * pixels
    with pytest.raises(ValueError, match="no foreground uv"):
        one.frames([0]).uv(Layer.foreground)
    # the codes cover each layer's whole square: its corners decode exactly
    corners = torch.tensor([0.0, 1.0]).view(1, 1, 2, 1).expand(1, 1, 2, 2)
    edge = CompactAtlasMaps.from_maps(type(both)(corners, corners - 1, torch.ones(1, 1, 1, 2)))
    assert torch.equal(edge.frames([0]).uv(Layer.foreground), corners)
    assert torch.equal(edge.frames([0]).uv(Layer.background), corners - 1)
