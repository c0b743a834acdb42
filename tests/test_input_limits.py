"""Bounded inputs (issue 24): images are probed before they are decoded and refused over
`max_image_pixels` (Pillow's decompression-bomb warning and error never surface); clips are probed
and refused over `video.frame_limit`, decoded one frame at a time and resized as they are decoded,
with the same values as decoding everything and resizing afterwards."""
import io
import struct
import warnings
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.inputs import fitting_size, load_clip
from atlas.testing import make_tiny_atlas, write_frames
from conftest import tiny_overrides
from text2live_geo.apps.cli import atlas as atlas_cli
from text2live_geo.apps.cli import image as image_cli
from text2live_geo.apps.cli import video as video_cli
from text2live_geo.common.config import load_config
from text2live_geo.common.io import ImageTooLargeError, InputError, probe_image, read_image
from text2live_geo.common.video_io import (
    FrameLimitError,
    VideoStream,
    frames_as_float,
    frames_as_uint8,
    read_video,
    resize_frames,
    write_video,
)
from text2live_geo.config import VideoEditConfig
from text2live_geo.editing.video_input import load_atlas_for_video
from text2live_geo.editing.video_outputs import write_video_outputs
from text2live_geo.layers import EditLayers


# ------------------------------------------------------------------------------ helpers
def png_declaring(path, width: int, height: int):
    """A small palette PNG whose header says ``width x height``: Pillow reads that size lazily, and
    a reader that trusted it would try to decode a huge image (its pixel data is 8 x 8)."""
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) % 4, "L").convert("P").save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def moving_frames(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Textured frames that move (not flat, so resizing has something to average)."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(3, height, 2 * width, generator=generator)
    return torch.stack([base[:, :, 3 * t:3 * t + width] for t in range(count)])


def one_error_line(err: str) -> str:
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------- images
def test_an_image_over_the_limit_is_refused_from_its_header(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(path)
    with pytest.raises(ImageTooLargeError, match=r"'.*photo.png' is 64x48 pixels .* more than max_image_pixels=3000"):
        read_image(path, max_pixels=3000)
    assert read_image(path, max_pixels=3072)[0].shape == (1, 3, 48, 64)  # exactly at the limit: read
    assert read_image(path, max_pixels=0)[0].dtype == torch.float32  # 0: no limit


@pytest.mark.parametrize("width, height, limit", [(20000, 20000, 200_000_000),  # Pillow: DecompressionBombError
                                                  (11000, 10000, 100_000_000)])  # Pillow: DecompressionBombWarning
def test_decompression_bomb_sizes_are_our_one_error_and_no_pillow_warning(tmp_path, width, height, limit):
    path = png_declaring(tmp_path / "bomb.png", width, height)
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning fails the test
        assert probe_image(path, max_pixels=0) == (width, height)  # the header, nothing decoded
        with pytest.raises(ImageTooLargeError, match=f"is {width}x{height} pixels .* more than max_image_pixels"):
            read_image(path, max_pixels=limit)
    assert before == Image.MAX_IMAGE_PIXELS  # Pillow's own setting is left as it was


def test_raising_the_limit_lifts_pillows_own_check(tmp_path):
    # 15000 x 13000 = 195 MP: over Pillow's error size (179 MP), under ours (200 MP). Pillow would
    # refuse it; we read it, and its 8 x 8 pixel data then fails as a truncated image
    path = png_declaring(tmp_path / "tall.png", 15000, 13000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="corrupt or truncated") as raised:
            read_image(path)
    assert not isinstance(raised.value, ImageTooLargeError)


def test_images_decode_to_float32_with_the_values_of_float64(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.concatenate([rgb, rng.integers(0, 256, (9, 7, 1), dtype=np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image, _ = read_image(tmp_path / "rgb.png")
    assert image.dtype == torch.float32
    assert torch.equal(image[0], torch.from_numpy((rgb / 255.0).astype(np.float32)).permute(2, 0, 1))  # exact
    image, _ = read_image(tmp_path / "rgba.png")
    alpha = rgba[..., 3:] / 255.0
    expected = torch.from_numpy((rgb / 255.0 * alpha + 1 - alpha).astype(np.float32)).permute(2, 0, 1)
    assert image.dtype == torch.float32 and (image[0] - expected).abs().max() < 1e-6  # float32 compositing


def test_image_cli_over_the_limit_is_one_line_exit_2(tiny_clip_dir, image_path, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["--quiet", *tiny_overrides(image_path, tiny_clip_dir, out, steps=1), "max_image_pixels=1000"]
    assert image_cli.main(argv) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "64x48 pixels" in err and "max_image_pixels=1000" in err and "raise max_image_pixels" in err
    assert not out.exists() or not any(out.iterdir())


def test_image_cli_decompression_bomb_is_one_line_exit_2(tiny_clip_dir, tmp_path, capsys):
    bomb = png_declaring(tmp_path / "bomb.png", 20000, 20000)
    assert image_cli.main(["--quiet", *tiny_overrides(bomb, tiny_clip_dir, tmp_path / "runs", steps=1)]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "20000x20000 pixels (400 megapixels)" in err and "max_image_pixels=200000000" in err


# -------------------------------------------------------------------------------- clips
@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory):
    """12 frames of 160 x 120 at 12 fps."""
    folder = tmp_path_factory.mktemp("clip_mp4")
    return write_video(folder / "clip.mp4", moving_frames(12, 120, 160), fps=12)


def test_a_clip_over_the_frame_limit_is_refused_before_decoding(clip_mp4, tmp_path):
    with pytest.raises(FrameLimitError, match=r"has about 12 frames \(1 s at 12 fps\), more than "
                                              r"video.frame_limit=10 allows: pass video.max_frames=10"):
        VideoStream(clip_mp4, frame_limit=10)
    assert read_video(clip_mp4, 10, frame_limit=10)[0].num_frames == 10  # what the message says works
    assert read_video(clip_mp4, frame_limit=12)[0].num_frames == 12  # exactly at the limit
    # duration x fps may be one off: one over the limit is left to the count while decoding
    with pytest.raises(FrameLimitError, match="has more than 11 frames"):
        read_video(clip_mp4, frame_limit=11)
    write_frames(moving_frames(5, 12, 16), tmp_path / "frames")
    with pytest.raises(FrameLimitError, match="has 5 frames, more than video.frame_limit=4"):
        read_video(tmp_path / "frames", frame_limit=4)
    assert read_video(tmp_path / "frames", frame_limit=5)[0].num_frames == 5


def test_a_clip_of_unknown_length_is_held_to_the_limit_while_decoding(clip_mp4):
    stream = VideoStream(clip_mp4)
    stream.source_frames, stream.frame_limit = None, 7  # as for a container without a duration
    with pytest.raises(FrameLimitError, match="has more than 7 frames"):
        stream.read()


def test_frames_over_the_pixel_limit_are_refused(clip_mp4, tmp_path):
    with pytest.raises(ImageTooLargeError, match="is 160x120 pixels .* video.max_frame_pixels=10000"):
        VideoStream(clip_mp4, max_frame_pixels=10000)
    write_frames(moving_frames(2, 12, 16), tmp_path / "frames")
    png_declaring(tmp_path / "frames" / "00002.png", 20000, 20000)  # a bomb among the frames
    with pytest.raises(ImageTooLargeError, match="00002.png' is 20000x20000 pixels"):
        read_video(tmp_path / "frames")


@pytest.mark.parametrize("cli, extra", [(atlas_cli, []), (video_cli, ["text.src=a", "text.comp=b"])])
def test_clis_refuse_a_clip_over_the_frame_limit_in_one_line(cli, extra, clip_mp4, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["--quiet", f"video.frames={clip_mp4}", "video.frame_limit=5", f"output_dir={out}", "device=cpu",
            "clip.model=/no/such/clip" if cli is video_cli else "fit.iterations=1", *extra]
    assert cli.main(argv) == 2  # refused before the CLIP model or a fit is looked at
    err = one_error_line(capsys.readouterr().err)
    assert "video.frame_limit=5" in err and "video.max_frames=5" in err
    assert not out.exists() or not any(out.iterdir())


def test_streaming_decode_resizes_while_decoding_with_the_values_of_resizing_after(clip_mp4):
    full, _ = read_video(clip_mp4)
    assert full.frames.shape == (12, 3, 120, 160) and full.frames.dtype == torch.float32
    streamed, _ = read_video(clip_mp4, size=(45, 60))
    assert streamed.frames.shape == (12, 3, 45, 60) and streamed.source_size == (120, 160)
    # measured: identical (max difference 0): the same antialiased bilinear resize, one frame at a time
    assert torch.equal(streamed.frames, resize_frames(full.frames, (45, 60)))
    clip = load_clip(clip_mp4, long_side=64)
    assert clip.frames.shape == (12, 3, 48, 64) and clip.source_size == (120, 160)
    # a fit holds its frames in 8 bits: the resized values rounded to the nearest level
    assert clip.frames.dtype == torch.uint8
    assert torch.equal(clip.frames, frames_as_uint8(resize_frames(full.frames, fitting_size(120, 160, 64))))


def test_streamed_frames_are_8_bit_at_the_source_size(clip_mp4):
    frames = list(VideoStream(clip_mp4, max_frames=3))
    assert len(frames) == 3 and all(f.dtype == torch.uint8 and f.shape == (3, 120, 160) for f in frames)
    stream = VideoStream(clip_mp4, max_frames=5)
    batches = list(stream.batches(2))
    assert [b.shape[0] for b in batches] == [2, 2, 1] and stream.truncated
    assert torch.equal(torch.cat(batches), read_video(clip_mp4, 5)[0].frames)


def test_a_frames_folder_read_frame_by_frame_gives_the_same_tensor_as_before(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    rgb = [rng.integers(0, 256, (10, 14, 3), dtype=np.uint8) for _ in range(3)]
    Image.fromarray(rgb[0]).save(folder / "f_1.png")
    Image.fromarray(rgb[1]).convert("P").save(folder / "f_2.png")  # palette
    Image.fromarray(rgb[2]).save(folder / "f_10.jpg")
    gray16 = rng.integers(0, 65536, (10, 14), dtype=np.uint16)
    Image.fromarray(gray16).save(folder / "f_11.png")  # 16-bit
    rgba = np.concatenate([rgb[0], rng.integers(0, 256, (10, 14, 1), dtype=np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(folder / "f_12.png")  # transparent
    video, notes = read_video(folder)
    # before: each frame decoded to float64 in [0, 1], cast to float32, and the frames stacked
    files = ["f_1.png", "f_2.png", "f_10.jpg", "f_11.png", "f_12.png"]
    before = []
    for name in files[:3]:
        before.append(np.asarray(Image.open(folder / name).convert("RGB"), dtype=np.float64) / 255.0)
    before.append(np.repeat(gray16.astype(np.float64)[..., None] / 65535.0, 3, axis=-1))
    alpha = rgba[..., 3:] / 255.0
    before.append(rgba[..., :3] / 255.0 * alpha + 1 - alpha)
    before = torch.from_numpy(np.stack(before).astype(np.float32)).permute(0, 3, 1, 2)
    assert video.names == files and video.frames.shape == (5, 3, 10, 14)
    assert torch.equal(video.frames[:3], before[:3])  # 8-bit frames: exactly
    assert (video.frames[3:] - before[3:]).abs().max() < 1e-6  # 16-bit and alpha: float32 rounding
    assert any("16" in note for note in notes) and any("white" in note for note in notes)


def test_an_edit_reads_the_clip_at_the_atlas_size_and_renders_over_the_source_size(tmp_path):
    tiny = make_tiny_atlas(tmp_path / "atlas", seed=11)  # 24 x 16 px, 6 frames
    bigger = torch.nn.functional.interpolate(tiny.frames, size=(32, 48), mode="bilinear", align_corners=False)
    write_frames(bigger, tmp_path / "frames48")
    cfg = load_config(VideoEditConfig, None, [f"video.frames={tmp_path / 'frames48'}",
                                              f"atlas.checkpoint={tiny.folder}"])
    stream = VideoStream(tmp_path / "frames48")
    _, frames = load_atlas_for_video(cfg, stream, torch.device("cpu"))
    full, _ = read_video(tmp_path / "frames48")
    assert frames.shape == (6, 3, 16, 24)
    # as resizing the whole clip after, held in 8 bits
    assert frames.dtype == torch.uint8 and torch.equal(frames, frames_as_uint8(resize_frames(full.frames, (16, 24))))

    # the final render composites over the input decoded again batch by batch: the same files as
    # compositing over the whole clip held in memory
    class Renderer:
        device = torch.device("cpu")
        video = SimpleNamespace(frames=frames, atlas_image=torch.rand(1, 3, 8, 8), num_frames=6)

        def render_atlas(self):
            return EditLayers(edit=torch.rand(1, 3, 8, 8), alpha=torch.rand(1, 1, 8, 8),
                              composite=torch.rand(1, 3, 8, 8), greenscreen=torch.rand(1, 3, 8, 8))

        def frame_edit(self, layers, indices):
            generator = torch.Generator().manual_seed(indices[0])
            return (torch.rand(len(indices), 3, 16, 24, generator=generator),
                    torch.rand(len(indices), 1, 16, 24, generator=generator))

    for name, original in (("held", full.frames), ("streamed", stream)):
        torch.manual_seed(0)
        write_video_outputs(tmp_path / name, Renderer(), original, fps=10, batch_size=4, progress=False)
    for index in range(6):
        held = np.asarray(Image.open(tmp_path / "held" / "frames" / f"{index:05d}.png"))
        assert held.shape == (32, 48, 3)
        assert np.array_equal(held, np.asarray(Image.open(tmp_path / "streamed" / "frames" / f"{index:05d}.png")))


def test_the_fit_initialisation_maps_the_clip_a_bounded_number_of_pixels_at_a_time(monkeypatch):
    """The grid model maps pixels through a (pixels x frames) blend matrix; the initial texture splat
    used to map every pixel of the clip at once (memory N^2 H W: 30 GB for 150 frames of 768 x 432).
    Now a frame and a bounded number of pixels at a time, with the textures of one whole splat."""
    import cv2

    from atlas.fitting import initialise
    from atlas.fitting.run import prepare_clip, read_clip
    from atlas.grid_model import GridAtlas, GridAtlasConfig
    from atlas.settings import AtlasRunConfig

    cfg = AtlasRunConfig()
    cfg.video.frames, cfg.fit.flow_preset = "data/procedural/clip.mp4", "ultrafast"
    cfg.fit.masks = "data/procedural/masks"
    prepared = prepare_clip(cfg, read_clip(cfg))
    clip, masks = prepared.clip, prepared.masks.float()
    mapped = []
    per_pixel = GridAtlas._per_pixel
    monkeypatch.setattr(GridAtlas, "_per_pixel", lambda self, transforms, t: (mapped.append(t.shape[0]),
                                                                              per_pixel(self, transforms, t))[1])
    monkeypatch.setattr(initialise, "_SPLAT_BLEND_ENTRIES", 4096 * clip.num_frames)
    atlas = initialise.initial_grid_atlas(clip.frames, masks, prepared.flows.forward, prepared.flows.forward_valid,
                                          GridAtlasConfig(width=clip.width, height=clip.height,
                                                          num_frames=clip.num_frames))
    assert mapped and max(mapped) <= 4096  # never the whole clip (16 x 128 x 72 pixels) at once
    # the same textures as one splat of every pixel (float rounding: the sums are added in parts)
    near = torch.from_numpy(np.stack([cv2.dilate((m[0].numpy() > 0.5).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
                                      for m in masks]))
    with torch.no_grad():
        pixels = atlas.frame_pixels(range(clip.num_frames))[~near.reshape(-1)]
        colours = frames_as_float(clip.frames).permute(0, 2, 3, 1).reshape(-1, 3)[~near.reshape(-1)]
        whole = initialise.splat_texture(atlas.background_uv(pixels) + 1.0, colours, atlas.config.background_texture)
    splatted = torch.sigmoid(atlas.background_texture[0])
    assert (splatted - whole.clamp(0.002, 0.998)).abs().max() < 1e-5
