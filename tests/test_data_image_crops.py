"""text2live_geo.data.image_crops: the image edit's crops."""
import torch

from text2live_geo.common.config import load_config
from text2live_geo.config import ImageEditConfig
from text2live_geo.data.image_crops import CropSampler


def crops_config(**extra):
    return load_config(ImageEditConfig, None, [f"crops.{k}={v}" for k, v in extra.items()]).crops


def test_whole_image_on_schedule_else_crops_carrying_the_extra_channel():
    cfg = crops_config(jitter_p=0, full_image_every=5)
    torch.manual_seed(0)
    image = torch.rand(1, 3, 40, 60)
    source = torch.cat([image, image[:, :1]], dim=1)  # an extra channel equal to red
    sampler = CropSampler(source, cfg, min_size=9)
    for step in range(12):
        crop = sampler.sample(step)
        if step % 5 == 0:
            assert crop is source
            continue
        assert crop.shape[:2] == (1, 4) and min(crop.shape[-2:]) >= 9
        assert torch.equal(crop[:, 3], crop[:, 0])  # every flip, rescale and crop moved it with the pixels


def test_colour_jitter_touches_rgb_only_and_a_disabled_sampler_gives_the_input():
    cfg = crops_config(jitter_p=1, full_image_every=0)
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    source = torch.cat([image, image[:, :1]], dim=1)
    crop = CropSampler(source, cfg, min_size=9).sample(1)
    assert not torch.equal(crop[:, 3], crop[:, 0])  # red jittered, the extra channel not
    assert crop[:, 3].min() >= image[:, 0].min() - 1e-6 and crop[:, 3].max() <= image[:, 0].max() + 1e-6
    assert CropSampler(source, cfg, min_size=9, enabled=False).sample(1) is source


def test_crops_keep_the_aspect_as_the_reference():
    # one cover fraction for both sides (the reference's RandomSizeCrop), after the rescale
    cfg = crops_config(jitter_p=0, full_image_every=0, flip_p=0)
    torch.manual_seed(1)
    sampler = CropSampler(torch.rand(1, 3, 300, 500), cfg, min_size=9)
    for _ in range(20):
        height, width = sampler.sample(1).shape[-2:]
        assert abs(width / height - 500 / 300) < 0.02
