"""The edit layer for compositors (export.layers): RGBA PNGs, ProRes 4444 .mov and VP9 .webm with
alpha, and a grayscale alpha matte mp4 each decode back with the alpha that was written."""
import json

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from atlas.testing import make_tiny_atlas
from text2live_geo.apps.cli import video as video_cli
from text2live_geo.common.alpha_video import ALPHA_FORMATS, WEBM_ALPHA_DECODER, AlphaVideoWriter, ffmpeg_encoders
from text2live_geo.common.config import ConfigError, load_config
from text2live_geo.config import LayerFormat, VideoEditConfig
from text2live_geo.editing import layer_export
from text2live_geo.editing.layer_export import LayerExport

#: largest 8-bit alpha difference after a round trip: ProRes keeps a 16-bit alpha plane (10-bit
#: conversions round by one at most); VP9 codes its alpha plane lossily like its luma
ALPHA_TOLERANCE = {"prores": (1, 0.5), "webm": (8, 0.5), "matte": (3, 1.0)}  # (max, mean) in 8-bit steps


def decode_rgba(path, webm=False) -> np.ndarray:
    """(N, H, W, 4) uint8 frames decoded by the ffmpeg in use, pix_fmt rgba."""
    frames = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgba", bpp=4,
                                        input_params=list(WEBM_ALPHA_DECODER) if webm else None)
    meta = next(frames)
    width, height = meta["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 4) for frame in frames])


def smooth_rgba(count, height, width) -> torch.Tensor:
    """RGBA frames in [0, 1] with a soft-edged moving disc as alpha and smooth colour."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    frames = []
    for index in range(count):
        centre = 0.3 + 0.4 * index / max(count - 1, 1)
        alpha = (1.5 - 6 * ((xx - centre) ** 2 + (yy - 0.5) ** 2).sqrt()).clamp(0, 1)
        frames.append(torch.stack([xx, yy, 0.5 + 0.3 * (xx - yy), alpha]))
    return torch.stack(frames)


def check_alpha(decoded_alpha: np.ndarray, written_alpha: np.ndarray, kind: str) -> None:
    error = np.abs(decoded_alpha.astype(float) - written_alpha.astype(float))
    largest, mean = ALPHA_TOLERANCE[kind]
    assert error.max() <= largest and error.mean() <= mean, (kind, error.max(), error.mean())


@pytest.mark.parametrize("name", ["prores", "webm"])
@pytest.mark.parametrize("size", [(16, 24), (15, 23)])  # odd sizes too: no resize, no padding
def test_alpha_videos_decode_back_with_their_alpha(tmp_path, name, size):
    if ALPHA_FORMATS[name].encoder not in ffmpeg_encoders():
        pytest.skip(f"this ffmpeg has no {ALPHA_FORMATS[name].encoder}")
    height, width = size
    frames = smooth_rgba(5, height, width)
    path = tmp_path / f"layer{ALPHA_FORMATS[name].suffix}"
    with AlphaVideoWriter(path, name, width, height, 12.0) as writer:
        writer.write(frames[:2])
        writer.write(frames[2:])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # moved into place, no temporary left
    decoded = decode_rgba(path, webm=name == "webm")
    assert decoded.shape == (5, height, width, 4)
    written = (frames.permute(0, 2, 3, 1) * 255).round().numpy()
    check_alpha(decoded[..., 3], written[..., 3], name)
    assert decoded[..., 3].max() == 255 and (decoded[..., 3] == 0).any()  # opaque and clear parts kept
    visible = written[..., 3] > 128  # colour where the layer shows (VP9: 4:2:0 chroma on a 16 px clip)
    assert np.abs(decoded[..., :3].astype(float) - written[..., :3])[visible].mean() < {"prores": 2, "webm": 8}[name]


def test_a_failed_alpha_video_leaves_no_file(tmp_path):
    path = tmp_path / "layer.mov"
    with pytest.raises(ValueError, match="RGBA"), AlphaVideoWriter(path, "prores", 24, 16, 10.0) as writer:
        writer.write(torch.rand(2, 3, 16, 24))  # RGB, not RGBA
    assert list(tmp_path.iterdir()) == []


def test_a_missing_encoder_is_one_note_line_and_the_rest_is_written(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(layer_export, "ffmpeg_encoders", lambda: frozenset({"libx264"}))  # no ProRes, no VP9
    frames = smooth_rgba(3, 16, 24)
    with caplog.at_level("WARNING", logger="text2live_geo.editing.layer_export"):
        export = LayerExport(tmp_path, list(LayerFormat), 24, 16, 10.0)
        export.write(0, frames[:, :3], frames[:, 3:])
        written = export.close()
    assert set(written) == {LayerFormat.png, LayerFormat.matte}
    assert len(export.notes) == 2 and len(caplog.records) == 2
    assert "layer.mov (ProRes 4444 with alpha) not written" in export.notes[0] and "no prores_ks" in export.notes[0]
    assert "layer.webm (VP9 with alpha) not written" in export.notes[1] and "no libvpx-vp9" in export.notes[1]
    assert all("\n" not in note for note in export.notes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha_matte.mp4", "layer"]


def test_export_layers_is_a_typed_key():
    assert load_config(VideoEditConfig).export.layers == [LayerFormat.png, LayerFormat.prores, LayerFormat.webm,
                                                          LayerFormat.matte]
    assert load_config(VideoEditConfig, None, ["export.layers=[webm,png]"]).export.layers == ["webm", "png"]
    assert load_config(VideoEditConfig, None, ["export.layers=[]"]).export.layers == []
    with pytest.raises(ConfigError, match="export.layers"):
        load_config(VideoEditConfig, None, ["export.layers=[gif]"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas_layers"), seed=11)  # 24 x 16 px, 6 frames


def test_a_video_edit_writes_layers_that_composite_to_its_output(tiny, tiny_clip_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = [f"video.frames={tiny.frames_folder}", f"atlas.checkpoint={tiny.folder}", "atlas.resolution=48",
            f"clip.model={tiny_clip_dir}", f"output_dir={out}", "text.src=red circle", "text.comp=blue circle",
            "text.screen=blue circle", "steps=1", "generator.num_scales=3", "generator.channels=8", "clip.n_aug=2",
            "device=cpu", "snapshot_every=0", "checkpoint_every=1", "seed=0", "crf=1"]
    code = video_cli.main(["--quiet", *argv])
    assert code == 0, capsys.readouterr().err
    run_dir = next(out.iterdir())
    pngs = sorted((run_dir / "layer").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(6)]
    layer = np.stack([np.asarray(Image.open(p)) for p in pngs])  # the layer as written, exact
    assert layer.shape == (6, 16, 24, 4) and layer[..., 3].max() > 20  # some of the edit shows
    # the layer over the input is the composite the run wrote (8-bit rounding of both)
    source = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(tiny.frames_folder.glob("*.png"))])
    alpha = layer[..., 3:].astype(float) / 255
    composite = (1 - alpha) * source + alpha * layer[..., :3]
    edited = np.stack([np.asarray(Image.open(p)) for p in sorted((run_dir / "frames").glob("*.png"))])
    assert np.abs(composite - edited).max() <= 2.5
    summary = json.loads((run_dir / "summary.json").read_text())
    names = {"png": "layer", "prores": "layer.mov", "webm": "layer.webm", "matte": "alpha_matte.mp4"}
    for name in ("prores", "webm"):
        if ALPHA_FORMATS[name].encoder not in ffmpeg_encoders():
            assert name not in summary["layer_files"] and len(summary["layer_notes"]) >= 1
            continue
        assert summary["layer_files"][name] == names[name]
        decoded = decode_rgba(run_dir / names[name], webm=name == "webm")
        assert decoded.shape == layer.shape
        check_alpha(decoded[..., 3], layer[..., 3], name)
    matte = decode_rgba(run_dir / "alpha_matte.mp4")
    assert matte.shape == layer.shape and (matte[..., 3] == 255).all()  # an opaque gray video
    assert np.abs(matte[..., 0].astype(int) - matte[..., 2]).max() <= 2  # gray
    check_alpha(matte[..., 0], layer[..., 3], "matte")
