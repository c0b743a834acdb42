"""text2live_geo.editing.video_input: preparing the atlas input of a video edit (tiny CPU atlas)."""
import pytest
import torch

from atlas.testing import make_tiny_atlas
from text2live_geo.common.config import load_config
from text2live_geo.common.runs import RunError
from text2live_geo.config import VideoEditConfig
from text2live_geo.editing.video_input import prepare_atlas_video

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # 24 x 16 px, 6 frames; frames 0, 1 and 5 have no foreground above alpha 0.95
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas_video"), seed=3)


def video_config(tiny, **extra):
    values = {"video.frames": str(tiny.frames_folder), "atlas.checkpoint": str(tiny.folder), "atlas.resolution": 48,
              "generator.num_scales": 3, **extra}
    return load_config(VideoEditConfig, None, [f"{k}={v}" for k, v in values.items()])


def test_no_foreground_anywhere_is_a_run_error(tiny):
    cfg = video_config(tiny, **{"atlas.alpha_threshold": 0.999})
    with pytest.raises(RunError, match="alpha_threshold"):
        prepare_atlas_video(tiny.atlas, tiny.frames, "foreground", cfg.atlas, 3, CPU)


def test_frames_smaller_than_the_generator_are_a_run_error(tiny):
    cfg = video_config(tiny, **{"generator.num_scales": 5})  # needs 33 px; frames are 16 px high
    with pytest.raises(RunError, match="num_scales"):
        prepare_atlas_video(tiny.atlas, tiny.frames, "background", cfg.atlas, 5, CPU)


def sampled_atlas_crops(video, cfg, min_size: int, draws: int = 200) -> list[int]:
    """Atlas pixels of the generator's input over many training samples (each step's atlas crop)."""
    from text2live_geo.data.atlas_crops import AtlasCropSampler

    torch.manual_seed(0)
    sampler = AtlasCropSampler(video, cfg.crops, min_size)
    return [sampler.sample(step).atlas_crop.shape[-2:].numel() for step in range(1, draws + 1)]


@pytest.mark.parametrize("layer", ["foreground", "background"])
def test_the_atlas_side_is_lowered_until_the_region_to_edit_has_at_most_max_crop_pixels(tiny, layer, caplog):
    free = video_config(tiny, layer=layer, **{"atlas.resolution": 0, "atlas.max_crop_pixels": 0})
    unlimited = prepare_atlas_video(tiny.atlas, tiny.frames, layer, free.atlas, 3, CPU)
    region = unlimited.atlas_box.width * unlimited.atlas_box.height
    limit = region // 3
    cfg = video_config(tiny, layer=layer, **{"atlas.resolution": 0, "atlas.max_crop_pixels": limit})
    with caplog.at_level("INFO"):
        bounded = prepare_atlas_video(tiny.atlas, tiny.frames, layer, cfg.atlas, 3, CPU)
    assert f"atlas side {unlimited.resolution} -> {bounded.resolution}" in caplog.text
    # a third of the pixels: about 1 / sqrt(3) of the side
    assert 0.5 * unlimited.resolution < bounded.resolution <= unlimited.resolution / 3**0.5 + 1
    assert bounded.atlas_box.width * bounded.atlas_box.height <= limit  # what the final render runs on
    # every training crop within it, where unbounded crops went over it
    assert max(sampled_atlas_crops(bounded, cfg, 9)) <= limit < max(sampled_atlas_crops(unlimited, free, 9))
    # the same frames and maps: only the atlas side changed
    assert torch.equal(bounded.frames, unlimited.frames) and bounded.frames.dtype == torch.uint8


def test_an_explicit_atlas_resolution_over_max_crop_pixels_is_refused_with_what_to_set(tiny):
    cfg = video_config(tiny, layer="background", **{"atlas.resolution": 200, "atlas.max_crop_pixels": 1000})
    with pytest.raises(RunError, match=r"atlas.resolution=200 .* atlas.max_crop_pixels=1000 .*atlas.resolution=0"):
        prepare_atlas_video(tiny.atlas, tiny.frames, "background", cfg.atlas, 3, CPU)
    fine = video_config(tiny, layer="background", **{"atlas.resolution": 200, "atlas.max_crop_pixels": 0})
    assert prepare_atlas_video(tiny.atlas, tiny.frames, "background", fine.atlas, 3, CPU).resolution == 200
