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
