"""Loading a clip for fitting: frames at the fitting size, max_frames, masks, bad input."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.inputs import ClipInputError, fitting_size, load_clip, resize_frames
from atlas.masks import MaskCountError, MaskNameError, load_mask_folder
from atlas.procedural import make_procedural_clip, write_procedural_clip
from text2live_geo.common.video_io import frames_as_float

DEMO = Path(__file__).resolve().parents[1] / "data" / "procedural"


def test_fitting_size():
    assert fitting_size(432, 768, 768) == (432, 768)
    assert fitting_size(1080, 1920, 768) == (432, 768)
    assert fitting_size(1920, 1080, 768) == (768, 432)  # portrait: the long side is the height
    assert fitting_size(72, 128, 768) == (72, 128)  # no upscaling unless asked
    assert fitting_size(72, 128, 768, upscale=True) == (432, 768)
    assert fitting_size(101, 203, 100) == (50, 100)
    assert fitting_size(101, 203, 0) == (101, 203)


def test_resize_frames_keeps_range_and_mean():
    frames = torch.rand(3, 3, 40, 60)
    small = resize_frames(frames, (20, 30))
    assert small.shape == (3, 3, 20, 30) and float(small.min()) >= 0 and float(small.max()) <= 1
    assert abs(float(small.mean() - frames.mean())) < 0.01
    assert resize_frames(frames, (40, 60)) is frames


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    clip = make_procedural_clip(frames=6, width=64, height=40, objects=1, camera="pan", seed=3)
    folder = write_procedural_clip(clip, tmp_path_factory.mktemp("clip") / "c", mp4=True)
    return clip, folder


def test_demo_clip_mp4_with_masks_resized():
    clip = load_clip(DEMO / "clip.mp4", long_side=64, masks=DEMO / "masks")
    assert clip.frames.shape == (16, 3, 36, 64) and clip.masks.shape == (16, 1, 36, 64)
    assert clip.source_size == (72, 128) and clip.fps == pytest.approx(10.0)
    assert any("resized from 128x72 to 64x36" in note for note in clip.notes)
    assert clip.masks.any() and not clip.masks.all()


def test_frames_folder_full_size_matches_written_clip(clip_folder):
    truth, folder = clip_folder
    clip = load_clip(folder / "frames", masks=folder / "masks")
    assert clip.names[:2] == ["00000.png", "00001.png"] and clip.fps is None
    # held in 8 bits, as decoded: each value the written PNG's 8-bit level of the true frame
    assert clip.frames.dtype == torch.uint8
    assert (frames_as_float(clip.frames) - truth.frames).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(clip.masks, truth.masks)
    assert clip.notes == []


def test_max_frames_keeps_the_first_and_says_so(clip_folder):
    truth, folder = clip_folder
    clip = load_clip(folder / "frames", max_frames=4, masks=folder / "masks")
    assert clip.num_frames == 4 and torch.equal(clip.masks, truth.masks[:4])
    assert any("more than 4 frames: kept the first 4 of 6" in note for note in clip.notes)
    video = load_clip(folder / "clip.mp4", max_frames=3, masks=folder / "masks")
    assert video.num_frames == 3 and torch.equal(video.masks, truth.masks[:3])
    assert any("kept the first 3 (video.max_frames)" in note for note in video.notes)
    assert load_clip(folder / "clip.mp4", max_frames=6).notes == []  # exactly max_frames: nothing dropped


def test_masks_must_fit_the_frames(clip_folder, tmp_path):
    _, folder = clip_folder
    few = tmp_path / "few"
    few.mkdir()
    for name in sorted(p.name for p in (folder / "masks").iterdir())[:5]:
        (few / name).write_bytes((folder / "masks" / name).read_bytes())
    with pytest.raises(MaskCountError, match="holds 5 masks for 6 frames"):
        load_clip(folder / "frames", masks=few)
    with pytest.raises(MaskCountError, match="holds 5 masks for 6 frames"):
        load_clip(folder / "frames", max_frames=6, masks=few)
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for index, path in enumerate(sorted((folder / "masks").iterdir())):
        (renamed / f"{index + 10:05d}.png").write_bytes(path.read_bytes())
    with pytest.raises(MaskNameError, match="does not match frame '00000.png'"):
        load_clip(folder / "frames", masks=renamed)
    # a video file's frames have no names: matched by order
    assert load_clip(folder / "clip.mp4", masks=renamed).masks.shape == (6, 1, 40, 64)


def test_single_frame_is_refused(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "only.png")
    with pytest.raises(ClipInputError, match="has 1 frame; fitting an atlas needs at least 2 frames"):
        load_clip(tmp_path)
    frames = tmp_path / "two"
    frames.mkdir()
    for index in range(2):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frames / f"{index}.png")
    with pytest.raises(ClipInputError, match="has 1 frame"):
        load_clip(frames, max_frames=1)


def test_grayscale_rgba_16bit_and_odd_sizes_work(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (21, 33), dtype=np.uint8), mode="L").save(tmp_path / "0.png")
    Image.fromarray(rng.integers(0, 255, (21, 33, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "1.png")
    Image.fromarray(rng.integers(0, 65535, (21, 33), dtype=np.uint16)).save(tmp_path / "2.png")
    clip = load_clip(tmp_path, long_side=17)
    assert clip.frames.shape == (3, 3, 11, 17) and clip.source_size == (21, 33)
    assert clip.frames.dtype == torch.uint8  # 8 bits whatever the source's depth: a quarter of float32's memory


def test_missing_and_mixed_sizes_raise_input_errors(tmp_path):
    from text2live_geo.common.io import InputError

    with pytest.raises(InputError, match="video not found"):
        load_clip(tmp_path / "missing.mp4")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "0.png")
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(tmp_path / "1.png")
    with pytest.raises(InputError, match="mixes frame sizes"):
        load_clip(tmp_path)
    assert issubclass(InputError, ValueError) and issubclass(ClipInputError, ValueError)


def test_demo_masks_load_directly():
    masks = load_mask_folder(DEMO / "masks", 16, (72, 128),
                             frame_names=sorted(p.name for p in (DEMO / "frames").iterdir()))
    assert masks.shape == (16, 1, 72, 128)
