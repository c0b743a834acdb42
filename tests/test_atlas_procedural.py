"""Procedural clips: shapes, exact masks, a true flow that explains the next frame, determinism."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from atlas.flow import warp
from atlas.procedural import CAMERA_MOTIONS, make_procedural_clip, write_procedural_clip


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))


def test_shapes_dtypes_and_masks():
    clip = make_procedural_clip(frames=6, width=80, height=48, objects=2, camera="pan+zoom", seed=3)
    assert clip.frames.shape == (6, 3, 48, 80) and clip.frames.dtype == torch.float32
    assert float(clip.frames.min()) >= 0.0 and float(clip.frames.max()) <= 1.0
    assert clip.masks.shape == (6, 1, 48, 80) and clip.masks.dtype == torch.bool
    assert clip.labels.shape == (6, 48, 80)
    assert clip.flow.shape == (5, 48, 80, 2) and clip.flow.dtype == torch.float32
    assert clip.flow_visible.shape == (5, 48, 80) and clip.flow_visible.dtype == torch.bool
    assert torch.equal(clip.masks[:, 0], clip.labels > 0)
    assert set(torch.unique(clip.labels).tolist()) == {0, 1, 2}
    coverage = clip.masks.float().mean(dim=(1, 2, 3))
    assert bool((coverage > 0.02).all()) and bool((coverage < 0.5).all())  # every frame has some foreground
    assert (clip.num_frames, clip.height, clip.width) == (6, 48, 80)


@pytest.mark.parametrize("camera", CAMERA_MOTIONS)
def test_true_flow_warps_next_frame_onto_frame(camera):
    clip = make_procedural_clip(frames=8, width=96, height=56, objects=2, camera=camera, seed=1)
    warped = warp(clip.frames[1:], clip.flow)
    # away from occlusions: the visible pixels, less a one-pixel band at their edges
    visible = -F.max_pool2d(-clip.flow_visible[:, None].float(), 3, 1, 1)[:, 0] > 0.5
    assert float(visible.float().mean()) > 0.7
    error = ((warped - clip.frames[:-1]) ** 2).mean(dim=1)[visible]
    psnr = 10 * math.log10(1.0 / float(error.mean()))
    assert psnr > 25.0, f"{camera}: {psnr:.1f} dB"
    # the zero flow explains the next frame much worse (the flow is not trivially small)
    assert _psnr(clip.frames[1:], clip.frames[:-1]) < psnr - 8


def test_camera_motions_move_the_background_as_named():
    static = make_procedural_clip(frames=4, width=64, height=40, objects=0, camera="static", seed=0)
    assert float(static.flow.abs().max()) < 1e-4
    assert not static.masks.any()
    pan = make_procedural_clip(frames=4, width=64, height=40, objects=0, camera="pan", seed=0)
    spread = pan.flow.reshape(3, -1, 2).std(dim=1)
    assert float(pan.flow.norm(dim=-1).mean()) > 1.0 and float(spread.max()) < 1e-3  # a pure translation
    zoom = make_procedural_clip(frames=4, width=64, height=40, objects=0, camera="zoom", seed=0)
    centre = zoom.flow[:, 19:21, 31:33].norm(dim=-1).max()
    corner = zoom.flow[:, 0, 0].norm(dim=-1).min()
    assert float(centre) < 0.1 < float(corner)  # flow grows away from the centre


def test_object_size_scales_the_foreground():
    small = make_procedural_clip(frames=2, width=96, height=54, objects=1, camera="static", seed=0)
    large = make_procedural_clip(frames=2, width=96, height=54, objects=1, camera="static", seed=0, object_size=1.5)
    ratio = float(large.masks.float().mean() / small.masks.float().mean())
    assert 1.8 < ratio < 2.7  # area ~ 1.5 ** 2


def test_deterministic_from_seed():
    a = make_procedural_clip(frames=3, width=48, height=32, objects=1, camera="pan+zoom", seed=7)
    b = make_procedural_clip(frames=3, width=48, height=32, objects=1, camera="pan+zoom", seed=7)
    c = make_procedural_clip(frames=3, width=48, height=32, objects=1, camera="pan+zoom", seed=8)
    for name in ("frames", "masks", "labels", "flow", "flow_visible"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.frames, c.frames)


@pytest.mark.parametrize("kwargs, words", [
    (dict(camera="dolly"), "camera must be one of"),
    (dict(frames=1), "at least 2 frames"),
    (dict(objects=3), "objects must be 0, 1 or 2"),
    (dict(width=8), "at least 16 x 16"),
    (dict(object_size=5.0), "object_size must be in"),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        make_procedural_clip(**kwargs)


def test_write_clip_mp4_frames_and_masks(tmp_path):
    from PIL import Image

    from text2live_geo.common.video_io import read_video

    clip = make_procedural_clip(frames=4, width=48, height=32, objects=1, camera="pan", seed=2)
    folder = write_procedural_clip(clip, tmp_path / "clip", fps=8, flow=True)
    frames = sorted((folder / "frames").iterdir())
    assert [p.name for p in frames] == ["00000.png", "00001.png", "00002.png", "00003.png"]
    first = np.asarray(Image.open(frames[0]))
    assert np.abs(first.astype(int) - (clip.frames[0].permute(1, 2, 0).numpy() * 255).round()).max() <= 1
    masks = [np.asarray(Image.open(folder / "masks" / p.name)) for p in frames]
    assert all(m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255} for m in masks)
    assert np.array_equal(np.stack(masks) > 0, clip.masks[:, 0].numpy())
    video, _ = read_video(folder / "clip.mp4")
    assert video.frames.shape == (4, 3, 32, 48)
    assert float((video.frames - clip.frames).abs().mean()) < 0.05
    stored = np.load(folder / "flow.npz")
    assert np.abs(stored["flow"].astype(np.float32) - clip.flow.numpy()).max() < 0.02
    assert np.array_equal(stored["visible"], clip.flow_visible.numpy())
