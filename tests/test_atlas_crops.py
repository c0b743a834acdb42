"""atlas.crops: per-frame foreground boxes and atlas regions."""

import pytest
import torch

from atlas import (
    AtlasMaps,
    Layer,
    NoForegroundError,
    PixelBox,
    atlas_region,
    foreground_frame_boxes,
    frame_uv_extents,
    layer_crop_regions,
    region_pixels,
    resolution_within,
    uv_bounding_box,
)
from atlas.testing import make_tiny_atlas


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas_crops"), seed=7)


def test_frame_boxes_expand_pad_clip_and_skip_empty_frames():
    alpha = torch.full((3, 1, 40, 50), 0.5)
    alpha[1, 0, 10:13, 20:22] = 0.99  # rows 10..12, columns 20..21
    alpha[2, 0, 0, 49] = 0.951  # a corner pixel
    alpha[2, 0, 5, 5] = 0.95  # not above the threshold
    before = alpha.clone()
    boxes = foreground_frame_boxes(alpha, threshold=0.95, border=3, min_size=9)
    assert torch.equal(alpha, before)  # the cached alpha is not modified
    assert boxes[0] is None
    assert boxes[1] == PixelBox(left=17, top=7, right=26, bottom=16)  # 8 wide -> padded to 9
    assert boxes[1].padded_to(9, 50, 40) == boxes[1]
    assert boxes[1].width >= 9 and boxes[1].height >= 9
    assert boxes[2] == PixelBox(left=41, top=0, right=50, bottom=9)  # clipped, padded inside the frame
    huge = foreground_frame_boxes(alpha, border=0, min_size=2**7 + 1)
    assert huge[1] == PixelBox(0, 0, 50, 40)  # padding is capped at the frame size


def test_tiny_atlas_foreground_regions_with_empty_frames(tiny):
    maps = tiny.atlas.precompute_maps()
    regions = layer_crop_regions(maps, "foreground", resolution=200, min_size=2 ** 2 + 1, border=1)
    peak = maps.alpha.amax(dim=(1, 2, 3))
    assert regions.frames_with_box == [i for i in range(6) if peak[i] > 0.95]
    assert 0 < len(regions.frames_with_box) < 6 and regions.frame_boxes[0] is None
    confident = maps.alpha[:, 0] > 0.95
    tight = uv_bounding_box(maps.uv_foreground, "foreground", 200, confident)
    assert regions.atlas_box.union(tight) == regions.atlas_box  # covers every confident pixel's uv
    for index in regions.frames_with_box:
        box = regions.frame_boxes[index]
        assert box.crop(confident[index]).sum() == confident[index].sum()
        assert box.width >= 5 and box.height >= 5


def test_background_regions_cover_whole_frames(tiny):
    maps = tiny.atlas.precompute_maps()
    regions = layer_crop_regions(maps, "background", resolution=200)
    assert regions.frame_boxes == [PixelBox(0, 0, 24, 16)] * 6
    assert regions.atlas_box == uv_bounding_box(maps.uv_background, "background", 200)


def test_no_foreground_anywhere_raises_clear_error():
    maps = AtlasMaps(
        uv_foreground=torch.full((2, 4, 5, 2), 0.5),
        uv_background=torch.full((2, 4, 5, 2), -0.5),
        alpha=torch.full((2, 1, 4, 5), 0.3),
    )
    with pytest.raises(NoForegroundError, match="alpha > 0.95"):
        layer_crop_regions(maps, "foreground", resolution=100)
    assert layer_crop_regions(maps, "background", resolution=100).atlas_box == PixelBox(50, 50, 51, 51)


def test_lower_median_is_exact_without_holding_the_values():
    """Two passes over chunks (bins of the float32 bit patterns, then one bin) give exactly the lower
    median that sorting every value gives: ties, zeros, one value, values spanning many decades."""
    import numpy as np

    from atlas.crops import lower_median

    rng = np.random.default_rng(0)
    cases = [rng.random(1001).astype(np.float32), rng.random(1000).astype(np.float32),
             np.zeros(7, np.float32), np.array([3.5], np.float32),
             np.exp(rng.normal(0, 8, 5000)).astype(np.float32),
             np.repeat(np.float32([0.25, 0.5, 0.5, 0.75]), 250)]
    for values in cases:
        chunks = np.array_split(values, 13)
        expected = float(torch.from_numpy(values).median())  # torch's median is the lower one
        assert lower_median(lambda chunks=chunks: iter(chunks)) == expected
    assert lower_median(lambda: iter([np.zeros(0, np.float32)])) is None


def test_median_of_chunks_equals_numpys():
    """The motion masks' threshold statistics: np.median (the mean of the two middle values for an
    even count) of residuals taken a frame at a time, bit for bit."""
    import numpy as np

    from atlas.chunking import median

    rng = np.random.default_rng(1)
    for size in (1, 2, 999, 1000):
        values = rng.gamma(2.0, 0.3, size).astype(np.float32)
        chunks = np.array_split(values, 7)
        assert median(lambda chunks=chunks: iter(chunks)) == float(np.median(values))
    assert median(lambda: iter([np.zeros(0, np.float32)])) is None


def test_region_pixels_from_the_frame_extents_equal_the_atlas_region_at_every_side(tiny):
    maps = tiny.atlas.precompute_maps(torch.device("cpu"))
    boxes = foreground_frame_boxes(maps.alpha, 0.95, 2, 1)
    extents = frame_uv_extents(maps, Layer.foreground, boxes)
    assert torch.isnan(extents[[i for i, box in enumerate(boxes) if box is None], 0]).all()
    for resolution in (40, 97, 300, 1001):
        whole = atlas_region(maps, Layer.foreground, resolution, boxes)  # from every uv, independently
        assert region_pixels(extents, resolution) == whole.width * whole.height
    background = frame_uv_extents(maps, Layer.background, [PixelBox(0, 0, maps.width, maps.height)] * maps.num_frames)
    whole = atlas_region(maps, Layer.background, 300)
    assert region_pixels(background, 300) == whole.width * whole.height
    # the largest side within a limit: within it, and one more pixel of side is not
    limit = region_pixels(extents, 300) // 4
    side = resolution_within(extents, 300, limit, 9)
    assert region_pixels(extents, side) <= limit < region_pixels(extents, side + 1)
    assert resolution_within(extents, 300, 0, 9) == 300  # 0: no limit
