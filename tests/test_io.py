import numpy as np
import pytest
import torch
from PIL import Image

from text2live_geo.common.io import InputError, read_image, save_png


def _write(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_rgb_roundtrip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    image, notes = read_image(_write(tmp_path / "a.png", array))
    assert image.shape == (1, 3, 10, 12) and notes == []
    assert torch.equal((image[0].permute(1, 2, 0) * 255).round().byte(), torch.from_numpy(array))


def test_grayscale_palette_16bit_rgba_are_converted(tmp_path):
    gray = _write(tmp_path / "g.png", np.full((8, 8), 100, np.uint8))
    image, notes = read_image(gray)
    assert image.shape == (1, 3, 8, 8) and abs(image.mean().item() - 100 / 255) < 1e-6 and notes

    palette_path = tmp_path / "p.png"
    Image.fromarray(np.full((8, 8, 3), (200, 10, 10), np.uint8)).convert("P").save(palette_path)
    image, _ = read_image(palette_path)
    assert image.shape == (1, 3, 8, 8) and image[0, 0].mean() > 0.7

    sixteen = tmp_path / "s.png"
    Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16)).save(sixteen)
    image, notes = read_image(sixteen)
    assert abs(image.mean().item() - 0.5) < 1e-3 and "16" in notes[0]

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    image, notes = read_image(_write(tmp_path / "r.png", rgba, "RGBA"))
    assert torch.allclose(image[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(image[0, :, 7, 0], torch.ones(3))  # over white
    assert any("white" in note for note in notes)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated_file_is_an_input_error(tmp_path, suffix):
    path = tmp_path / f"full.{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    broken = tmp_path / f"broken.{suffix}"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="broken"):
        read_image(broken)


def test_missing_and_not_image(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.png")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an image"):
        read_image(text)


def test_save_png_modes(tmp_path):
    for channels, mode in ((1, "L"), (3, "RGB"), (4, "RGBA")):
        path = save_png(torch.rand(channels, 5, 7), tmp_path / f"{channels}.png")
        with Image.open(path) as img:
            assert img.mode == mode and img.size == (7, 5)
