"""Foreground masks: from a folder of annotations (DAVIS style) and automatically from motion."""
import numpy as np
import pytest
import torch
from PIL import Image

from atlas.flow import compute_flows
from atlas.masks import (
    MaskCountError,
    MaskEmptyError,
    MaskError,
    MaskFullError,
    MaskNameError,
    MaskReadError,
    MotionMaskSettings,
    clean_mask,
    load_mask_folder,
    mask_iou,
    motion_masks,
    read_mask,
    resize_nearest,
)
from atlas.procedural import make_procedural_clip, write_procedural_clip

# ---------------------------------------------------------------------------------------------
# automatic masks from motion


@pytest.mark.parametrize("camera", ["pan", "static"])
def test_motion_masks_find_the_moving_object(camera):
    # seeds 0-7 of this set-up reach IoU 0.73-0.91 (pan) and 0.83-0.90 (static)
    clip = make_procedural_clip(frames=16, width=128, height=72, objects=1, camera=camera, seed=4)
    flows = compute_flows(clip.frames)
    result = motion_masks(clip.frames, flows)
    assert result.found, result.reason
    assert result.masks.shape == (16, 1, 72, 128) and result.masks.dtype == torch.bool
    iou = mask_iou(result.masks, clip.masks)
    assert iou >= 0.7, f"{camera}: IoU {iou:.3f} ({result.reason})"
    assert result.reason.startswith("foreground in 16 of 16 frames")
    assert result.homographies.shape == (15, 3, 3) and result.residual.shape == (16, 72, 128)
    if camera == "static":  # the fitted camera motion is (nearly) the identity
        assert np.abs(result.homographies - np.eye(3)).max() < 0.02


def test_motion_masks_two_objects_under_pan_and_zoom():
    # seeds 0-7: IoU 0.77-0.88
    clip = make_procedural_clip(frames=16, width=112, height=64, objects=2, camera="pan+zoom", seed=5)
    result = motion_masks(clip.frames)  # computes its own flows
    assert result.found, result.reason
    assert mask_iou(result.masks, clip.masks) >= 0.7


def test_motion_masks_no_moving_object_means_no_foreground():
    clip = make_procedural_clip(frames=8, width=96, height=56, objects=0, camera="pan+zoom", seed=6)
    result = motion_masks(clip.frames)
    assert not result.found and result.masks is None
    assert result.reason.startswith("no foreground: nothing moves apart from the camera")
    assert result.foreground_fraction < 0.002


def test_motion_masks_rejects_bad_input():
    clip = make_procedural_clip(frames=3, width=32, height=24, objects=1, camera="pan", seed=0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        motion_masks(clip.frames[:1])
    flows = compute_flows(clip.frames, gap=2)
    with pytest.raises(ValueError, match="do not match"):
        motion_masks(clip.frames, flows, MotionMaskSettings())


def test_clean_mask_opens_closes_drops_specks_and_fills_holes():
    mask = np.zeros((40, 40), bool)
    mask[5:25, 5:25] = True
    mask[12:16, 12:16] = False  # a hole
    mask[33, 33] = True  # a speck
    mask[30:32, 5:7] = True  # a small region
    cleaned = clean_mask(mask, radius=1, min_area=10)
    assert cleaned[12:16, 12:16].all()
    assert not cleaned[33, 33] and not cleaned[30:32, 5:7].any()
    assert cleaned[6:24, 6:24].all() and cleaned.sum() <= 400


def test_mask_iou():
    a = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    b = a.clone()
    assert mask_iou(a, b) == 1.0
    a[..., :2, :] = True
    b[..., :1, :] = True
    assert mask_iou(a, b) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# masks from a folder


def _palette_png(path, indices: np.ndarray):
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)  # DAVIS: black, dark red, green
    image.putpalette(palette)
    image.save(path)


def _truth(height=6, width=8, frames=3) -> np.ndarray:
    masks = np.zeros((frames, height, width), np.uint8)
    for t in range(frames):
        masks[t, 1:4, 2 + t:5 + t] = 1
        masks[t, 5, 0] = 2  # a second object (palette index 2)
    return masks


def test_palette_and_grayscale_pngs_load(tmp_path):
    truth = _truth()
    palette_dir, gray_dir = tmp_path / "palette", tmp_path / "gray"
    palette_dir.mkdir()
    gray_dir.mkdir()
    for t, mask in enumerate(truth):
        _palette_png(palette_dir / f"{t:05d}.png", mask)
        Image.fromarray((mask > 0).astype(np.uint8) * 255, mode="L").save(gray_dir / f"{t:05d}.png")
    names = [f"{t:05d}.jpg" for t in range(3)]
    for folder in (palette_dir, gray_dir):
        masks = load_mask_folder(folder, 3, (6, 8), frame_names=names)
        assert masks.shape == (3, 1, 6, 8) and masks.dtype == torch.bool
        assert np.array_equal(masks[:, 0].numpy(), truth > 0)
    assert read_mask(palette_dir / "00000.png")[5, 0]  # index 2 is foreground too


def test_masks_resized_nearest_to_the_frame_size(tmp_path):
    truth = _truth(height=6, width=8)
    for t, mask in enumerate(truth):
        _palette_png(tmp_path / f"{t}.png", mask)
    masks = load_mask_folder(tmp_path, 3, (12, 24))  # frames 2x taller, 3x wider
    expected = np.repeat(np.repeat(truth > 0, 2, axis=1), 3, axis=2)
    assert np.array_equal(masks[:, 0].numpy(), expected)
    smaller = load_mask_folder(tmp_path, 3, (3, 4))
    assert np.array_equal(smaller[:, 0].numpy(), (truth > 0)[:, 1::2, 1::2])
    assert set(np.unique(smaller.numpy())) <= {False, True}
    assert np.array_equal(resize_nearest(np.arange(4)[None], 1, 8), [[0, 0, 1, 1, 2, 2, 3, 3]])


def test_other_mask_formats(tmp_path):
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:5] = True
    Image.fromarray(mask.astype(np.uint16) * 1000).save(tmp_path / "sixteen.png")
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[mask] = (0, 0, 200)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    cutout = np.zeros((5, 6, 4), np.uint8)
    cutout[..., :3] = 255
    cutout[mask, 3] = 255
    Image.fromarray(cutout, mode="RGBA").save(tmp_path / "cutout.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "lossy.jpg", quality=70)
    for name in ("sixteen.png", "rgb.png", "cutout.png", "lossy.jpg"):
        assert np.array_equal(read_mask(tmp_path / name), mask), name


def test_natural_order_and_matching_by_frame_number(tmp_path):
    for t in (1, 2, 10):  # natural order: 1, 2, 10 (not 1, 10, 2)
        mask = np.zeros((4, 4), np.uint8)
        mask[0, t % 4] = 255
        Image.fromarray(mask).save(tmp_path / f"mask_{t}.png")
    masks = load_mask_folder(tmp_path, 3, (4, 4), frame_names=["frame_1.jpg", "frame_2.jpg", "frame_10.jpg"])
    assert [int(np.argmax(m[0, 0].numpy())) for m in masks] == [1, 2, 2]


def test_folder_written_by_write_procedural_clip_loads(tmp_path):
    clip = make_procedural_clip(frames=3, width=40, height=24, objects=1, camera="pan", seed=1)
    folder = write_procedural_clip(clip, tmp_path / "clip", mp4=False)
    names = sorted(p.name for p in (folder / "frames").iterdir())
    assert torch.equal(load_mask_folder(folder / "masks", 3, (24, 40), frame_names=names), clip.masks)


def _gray_masks(folder, count, value=255, names=None, size=(4, 5)):
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(count):
        mask = np.zeros(size, np.uint8)
        mask[1, 1 + t % 3] = value
        Image.fromarray(mask).save(folder / (names[t] if names else f"{t:05d}.png"))
    return folder


def test_error_count_mismatch(tmp_path):
    folder = _gray_masks(tmp_path / "m", 2)
    with pytest.raises(MaskCountError, match=r"holds 2 masks for 3 frames"):
        load_mask_folder(folder, 3, (4, 5))


def test_error_names_do_not_match(tmp_path):
    folder = _gray_masks(tmp_path / "m", 2, names=["00000.png", "00007.png"])
    with pytest.raises(MaskNameError, match=r"mask '00007.png' does not match frame '00001.jpg'"):
        load_mask_folder(folder, 2, (4, 5), frame_names=["00000.jpg", "00001.jpg"])
    # matched by order only when the frames have no file names (a video file)
    assert load_mask_folder(folder, 2, (4, 5)).shape == (2, 1, 4, 5)


def test_error_all_empty_and_all_full(tmp_path):
    empty = _gray_masks(tmp_path / "empty", 3, value=0)
    with pytest.raises(MaskEmptyError, match="every mask is empty"):
        load_mask_folder(empty, 3, (4, 5))
    full = tmp_path / "full"
    full.mkdir()
    for t in range(3):
        Image.fromarray(np.full((4, 5), 255, np.uint8)).save(full / f"{t}.png")
    with pytest.raises(MaskFullError, match="every mask is full"):
        load_mask_folder(full, 3, (4, 5))


def test_error_missing_empty_or_unreadable(tmp_path):
    with pytest.raises(MaskReadError, match="not found"):
        load_mask_folder(tmp_path / "nowhere", 3, (4, 5))
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("no masks here")
    with pytest.raises(MaskReadError, match="holds no mask images"):
        load_mask_folder(tmp_path / "none", 3, (4, 5))
    broken = _gray_masks(tmp_path / "broken", 1)
    (broken / "00001.png").write_bytes(b"not a png")
    with pytest.raises(MaskReadError, match=r"cannot read mask '.*00001.png'"):
        load_mask_folder(broken, 2, (4, 5))


def test_errors_are_value_errors_with_one_line_messages(tmp_path):
    folder = _gray_masks(tmp_path / "m", 2)
    with pytest.raises(MaskError) as caught:
        load_mask_folder(folder, 5, (4, 5))
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)
