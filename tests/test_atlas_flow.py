"""DIS optical flow: recovers known shifts, forward-backward consistency, gaps, warping."""
import numpy as np
import pytest
import torch

from atlas.flow import DIS_PRESETS, compute_flows, compute_flows_gaps, consistency_mask, to_gray_uint8, warp
from atlas.procedural import _texture


def _texture_image(seed: int, height: int, width: int) -> np.ndarray:
    return _texture(np.random.default_rng(seed), height, width, detail=2.0, saturation=1.0)


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The image's content moved by (dx, dy): out(p) = image(p - d), bilinear."""
    import cv2

    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _clip(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("shift", [(2.3, -1.6), (-0.4, 0.7), (5.5, 3.0)])
def test_dis_recovers_a_translation(shift):
    dx, dy = shift
    texture = _texture_image(0, 96, 128)
    flows = compute_flows(_clip(texture, _shifted(texture, dx, dy)))
    assert flows.forward.shape == (1, 96, 128, 2) and flows.backward.shape == (1, 96, 128, 2)
    inner = (slice(12, -12), slice(12, -12))
    forward = flows.forward[0][inner]
    backward = flows.backward[0][inner]
    error_forward = (forward - torch.tensor([dx, dy])).norm(dim=-1).mean()
    error_backward = (backward + torch.tensor([dx, dy])).norm(dim=-1).mean()
    assert float(error_forward) < 0.25 and float(error_backward) < 0.25, (error_forward, error_backward)
    # a pure translation is consistent both ways (away from the borders it leaves / enters)
    assert float(flows.forward_valid[0][inner].float().mean()) > 0.95
    assert float(flows.backward_valid[0][inner].float().mean()) > 0.95


def test_consistency_is_low_where_an_occlusion_happens():
    # a static textured background and a textured square moving 6 px to the right over it
    background = _texture_image(1, 72, 112)
    patch = _texture_image(2, 24, 24)[..., ::-1].copy()  # other colours
    frames = []
    for left in (40, 46):
        image = background.copy()
        image[24:48, left:left + 24] = patch
        frames.append(image)
    flows = compute_flows(_clip(*frames))
    valid = flows.forward_valid[0]
    # background of frame 0 covered by the square in frame 1: columns 64..69 of rows 24..47
    occluded = valid[26:46, 65:69]
    assert float(occluded.float().mean()) < 0.3
    # the square itself and the background away from it are consistent
    assert float(valid[28:44, 44:58].float().mean()) > 0.9
    assert float(valid[4:18, 8:100].float().mean()) > 0.95
    # backward: the background that the square uncovers in frame 1 (columns 40..45) has no match
    assert float(flows.backward_valid[0][26:46, 41:45].float().mean()) < 0.3


def test_consistency_mask_definition():
    flow = np.zeros((8, 10, 2), np.float32)
    flow[..., 0] = 1.5
    reverse = np.zeros_like(flow)
    reverse[..., 0] = -1.5
    mask = consistency_mask(flow, reverse, threshold=1.0)
    assert mask[:, :8].all() and not mask[:, 9].any()  # landing outside the frame is inconsistent
    reverse[..., 0] = -0.2  # 1.3 px round trip error
    assert not consistency_mask(flow, reverse, threshold=1.0).any()
    assert consistency_mask(flow, reverse, threshold=1.5)[:, :8].all()


def test_gaps_presets_and_shapes():
    texture = _texture_image(3, 48, 64)
    clip = _clip(*[_shifted(texture, 1.0 * i, 0.5 * i) for i in range(4)])
    fields = compute_flows_gaps(clip, gaps=(1, 2, 9), preset="fast")
    assert sorted(fields) == [1, 2]  # gap 9 is longer than the clip
    assert fields[2].forward.shape == (2, 48, 64, 2) and fields[2].gap == 2
    assert fields[2].forward_valid.dtype == torch.bool and fields[2].num_pairs == 2
    assert set(DIS_PRESETS) == {"ultrafast", "fast", "medium"}
    with pytest.raises(ValueError, match="unknown DIS preset 'slow'"):
        compute_flows(clip, preset="slow")
    with pytest.raises(ValueError, match="gap must be in 1..3"):
        compute_flows(clip, gap=4)


def test_gray_conversion_and_warp():
    frames = torch.rand(2, 3, 8, 9)
    gray = to_gray_uint8(frames)
    assert gray.shape == (2, 8, 9) and gray.dtype == np.uint8
    assert np.array_equal(to_gray_uint8(torch.ones(1, 1, 4, 4)), np.full((1, 4, 4), 255, np.uint8))
    with pytest.raises(ValueError, match=r"frames must be \(N, 3, H, W\)"):
        to_gray_uint8(torch.rand(2, 4, 8, 9))
    assert torch.allclose(warp(frames, torch.zeros(2, 8, 9, 2)), frames, atol=1e-6)
    shift = torch.zeros(2, 8, 9, 2)
    shift[..., 0] = 1.0  # out(p) = frames(p + (1, 0))
    assert torch.allclose(warp(frames, shift)[..., :-1], frames[..., 1:], atol=1e-6)


def test_flows_stored_as_float16_round_only():
    """float16 storage (the atlas fit's) holds the same flows up to float16 rounding (relative 2^-11)
    with the same consistency masks, which are computed before rounding; other dtypes are refused."""
    texture = _texture_image(1, 96, 128)
    clip = _clip(texture, _shifted(texture, 3.3, -2.1), _shifted(texture, 6.1, -4.0))
    full = compute_flows(clip)
    half = compute_flows(clip, dtype=torch.float16)
    assert half.forward.dtype == torch.float16 and half.backward.dtype == torch.float16
    for stored, exact in ((half.forward, full.forward), (half.backward, full.backward)):
        assert ((stored.float() - exact).abs() <= exact.abs() * 2.0**-11 + 2.0**-24).all()
        assert (stored.float() - exact).abs().max() > 0  # it did round
    assert torch.equal(half.forward_valid, full.forward_valid) and torch.equal(half.backward_valid, full.backward_valid)
    with pytest.raises(ValueError, match="float16"):
        compute_flows(clip, dtype=torch.float64)
