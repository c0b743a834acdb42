"""text2live_geo.data.atlas_crops: what the atlas-crop sampler draws (tiny CPU atlas, no generator)."""
import dataclasses
import math

import pytest
import torch

from atlas.testing import make_tiny_atlas
from text2live_geo.common.config import load_config
from text2live_geo.config import VideoEditConfig
from text2live_geo.data.atlas_crops import AtlasCropSampler
from text2live_geo.editing.video_input import prepare_atlas_video

CPU = torch.device("cpu")
NUM_SCALES = 3
MIN_SIZE = 2 ** NUM_SCALES + 1  # the generator's minimum side


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # 24 x 16 px, 6 frames; frames 0, 1 and 5 have no foreground above alpha 0.95
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas_video"), seed=3)


def make_sampler(tiny, **extra):
    """The sampler of a foreground edit of the tiny atlas (R = 48), and its config."""
    values = {"atlas.resolution": 48, "generator.num_scales": NUM_SCALES, **extra}
    cfg = load_config(VideoEditConfig, None, [f"{k}={v}" for k, v in values.items()])
    torch.manual_seed(0)
    video = prepare_atlas_video(tiny.atlas, tiny.frames, cfg.layer, cfg.atlas, NUM_SCALES, CPU)
    return AtlasCropSampler(video, cfg.crops, MIN_SIZE), cfg


def test_sampler_uses_only_frames_with_foreground_and_keeps_alpha(tiny):
    sampler, _ = make_sampler(tiny, **{"crops.full_atlas_every": 0})
    video = sampler.video
    alpha_before = video.maps.alpha.clone()
    assert video.frames_with_box == [2, 3, 4]
    assert sampler.gap == 2 and sampler.centres == [2, 3]  # triplets {0, 2, 4} and {1, 3, 5}
    seen = set()
    for step in range(1, 25):
        sample = sampler.sample(step)
        assert not sample.whole_atlas
        frames = [crop.frame for crop in sample.frame_crops]
        seen.update(frames)
        assert frames and all(video.frame_boxes[f] is not None for f in frames)
        assert sample.direct_crop is not None and sample.direct_crop.frame in frames
        box = sample.atlas_box
        assert min(box.width, box.height) >= MIN_SIZE
        assert sample.atlas_crop.shape[-2:] == (box.height, box.width)
        for crop in sample.frame_crops:
            frame_box = video.frame_boxes[crop.frame]
            assert crop.box.union(frame_box) == frame_box
            assert crop.box.width >= math.floor(0.95 * frame_box.width)
            assert crop.image.shape[-2:] == crop.uv.shape[1:3] == crop.nla_alpha.shape[-2:]
            pixels = (crop.uv - 0.0) * video.resolution  # foreground: atlas pixels (uv - 0) * R
            assert pixels[..., 0].min() >= box.left - 1 and pixels[..., 0].max() <= box.right
            assert pixels[..., 1].min() >= box.top - 1 and pixels[..., 1].max() <= box.bottom
    assert seen == {2, 3, 4}
    assert torch.equal(video.maps.alpha, alpha_before)  # never binarised in place


def test_sampler_falls_back_when_no_regular_triplet_has_foreground(tiny):
    sampler, cfg = make_sampler(tiny)
    video = dataclasses.replace(sampler.video, frame_boxes=[None, sampler.video.frame_boxes[2], None, None, None, None])
    video = dataclasses.replace(video, frames=video.frames[:5], maps=video.maps.frames(list(range(5))))
    sampler = AtlasCropSampler(video, cfg.crops, MIN_SIZE)
    assert sampler.centres == [1, 3]  # 1 (alone) and 3 (with 1) are the only ways to reach frame 1
    assert all(crop.frame == 1 for crop in sampler.sample(1).frame_crops)
