"""text2live_geo.common.video_io: frames folders, video files, mp4 writing at the exact size and fps."""
import imageio
import numpy as np
import pytest
import torch
from PIL import Image

from media_probe import probe_video
from text2live_geo.common.io import InputError
from text2live_geo.common.video_io import VideoWriter, list_frame_files, read_video, write_video


def smooth_frames(count: int, height: int, width: int) -> torch.Tensor:
    """Gradients that move over time (compress well, so lossy round trips stay close)."""
    ys = torch.linspace(0, 1, height).view(1, 1, height, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, 1, width)
    t = torch.arange(count, dtype=torch.float32).view(count, 1, 1, 1) / max(count, 1)
    red = (0.1 + 0.6 * xs + 0.3 * t).expand(count, 1, height, width)
    green = ys.expand(count, 1, height, width)
    blue = (0.5 + 0.4 * torch.sin(6 * xs + 6 * t)).expand(count, 1, height, width)
    return torch.cat([red, green, blue], dim=1)


def write_pngs(folder, frames, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        array = (frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / (names[index] if names else f"{index:05d}.png"))


def test_frames_folder_natural_order_and_max_frames(tmp_path):
    frames = smooth_frames(3, 8, 10)
    write_pngs(tmp_path / "clip", frames, ["f_10.png", "f_2.png", "f_1.png"])
    (tmp_path / "clip" / "notes.txt").write_text("not a frame")
    assert [p.name for p in list_frame_files(tmp_path / "clip")] == ["f_1.png", "f_2.png", "f_10.png"]
    video, notes = read_video(tmp_path / "clip")
    assert video.frames.shape == (3, 3, 8, 10) and video.fps is None and notes == []
    assert video.names == ["f_1.png", "f_2.png", "f_10.png"]
    assert torch.allclose(video.frames[2], frames[0], atol=1 / 255)  # f_10 was written first
    trimmed, _ = read_video(tmp_path / "clip", max_frames=2)
    assert trimmed.num_frames == 2


def test_empty_folder_and_mixed_sizes_are_input_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="holds no image files"):
        read_video(tmp_path / "empty")
    write_pngs(tmp_path / "mixed", smooth_frames(2, 8, 10))
    write_pngs(tmp_path / "mixed", smooth_frames(1, 9, 10), ["00002.png"])
    with pytest.raises(InputError, match=r"mixes frame sizes: '00000.png' is 10x8 but '00002.png' is 10x9"):
        read_video(tmp_path / "mixed")
    with pytest.raises(InputError, match="video not found"):
        read_video(tmp_path / "missing")
    with pytest.raises(InputError, match="single image"):
        read_video(tmp_path / "mixed" / "00000.png")


def test_unreadable_video_file_is_an_input_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(InputError, match="could not decode video file"):
        read_video(bad)


@pytest.mark.parametrize("size, fps", [((16, 24), 12.5), ((15, 23), 29.97)])
def test_mp4_round_trip_keeps_count_size_and_fps(tmp_path, size, fps):
    frames = smooth_frames(5, *size)
    path = write_video(tmp_path / "out.mp4", frames, fps)
    assert probe_video(path) == {"frames": 5, "width": size[1], "height": size[0], "fps": pytest.approx(fps)}
    reader = imageio.get_reader(path, "ffmpeg")  # read back with imageio, as a user would
    decoded = np.stack([frame for frame in reader])  # list() would trust its infinite len()
    assert reader.get_meta_data()["fps"] == pytest.approx(fps)
    assert decoded.shape == (5, size[0], size[1], 3)
    video, _ = read_video(path, max_frames=4)
    assert video.frames.shape == (4, 3, *size) and video.fps == pytest.approx(fps)
    assert (video.frames - frames[:4]).abs().mean() < 0.03  # lossy, but the same pictures


def test_writer_leaves_no_file_when_interrupted(tmp_path):
    path = tmp_path / "partial.mp4"
    with pytest.raises(KeyboardInterrupt), VideoWriter(path, 8, 8, 10) as writer:
        writer.write(torch.zeros(2, 3, 8, 8))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="do not match"), VideoWriter(path, 8, 8, 10) as writer:
        writer.write(torch.zeros(1, 3, 8, 6))
