"""t2l-video (text2live_geo.apps.cli.video, run_video.py): a short run writes every output, --resume continues,
bad input is one clear line."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio
import numpy as np
import pytest
import torch
from PIL import Image

from atlas.testing import make_tiny_atlas, write_frames
from text2live_geo.apps.cli import video as video_cli
from text2live_geo.common.config import load_config
from text2live_geo.common.video_io import read_video, write_video
from text2live_geo.config import VideoEditConfig
from text2live_geo.editing.video_input import load_atlas_for_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # 24 x 16 px, 6 frames; frames 0, 1 and 5 have no foreground above alpha 0.95
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas_cli"), seed=11)


def overrides(tiny, clip_dir, out_dir, **extra) -> list[str]:
    values = {
        "video.frames": str(tiny.frames_folder), "atlas.checkpoint": str(tiny.folder), "atlas.resolution": 48,
        "clip.model": str(clip_dir), "output_dir": str(out_dir), "text.src": "red circle",
        "text.comp": "blue circle", "text.screen": "blue circle", "steps": 3, "generator.num_scales": 3,
        "generator.channels": 8, "clip.n_aug": 2, "device": "cpu", "snapshot_every": 2, "checkpoint_every": 2,
        "crops.full_atlas_every": 2,
    }
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items() if value is not None]  # None: leave the key out


def run(argv, capsys):
    code = video_cli.main(["--quiet", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def mp4_facts(path):
    reader = imageio.get_reader(path, "ffmpeg")
    frames = np.stack([frame for frame in reader])
    fps = reader.get_meta_data()["fps"]
    reader.close()
    return frames.shape, fps


def only_run_dir(out_dir: Path) -> Path:
    runs = [p for p in out_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


def test_three_step_run_writes_every_output_and_resumes(tiny, tiny_clip_dir, tmp_path, capsys):
    code, out, err = run(overrides(tiny, tiny_clip_dir, tmp_path / "runs"), capsys)
    assert code == 0, err
    assert "3 of 6 frames have no foreground" in out  # frames 0, 1, 5: skipped, no crash
    run_dir = only_run_dir(tmp_path / "runs")
    assert mp4_facts(run_dir / "edited.mp4") == ((6, 16, 24, 3), 10.0)  # a frames folder: 10 fps
    assert mp4_facts(run_dir / "edit_on_greenscreen.mp4") == ((6, 16, 24, 3), 10.0)
    assert mp4_facts(run_dir / "comparison.mp4") == ((6, 16, 2 * 24 + 4, 3), 10.0)
    pngs = sorted((run_dir / "frames").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(6)]
    assert Image.open(pngs[0]).size == (24, 16)
    with Image.open(run_dir / "edited_atlas.png") as atlas_png:
        assert atlas_png.mode == "RGBA"
    for name in ("atlas.png", "edited_atlas_composite.png", "snapshots/step_00002.png", "checkpoint.pt",
                 "summary.json"):
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    saved = load_config(VideoEditConfig, run_dir / "config.yaml")
    assert saved.steps == 3 and saved.layer == "foreground" and saved.video.frames == str(tiny.frames_folder)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["frames"], summary["width"], summary["height"], summary["fps"]) == (6, 24, 16, 10.0)

    code, out, err = run(["--resume", str(run_dir), "steps=5"], capsys)
    assert code == 0, err
    assert f"resuming {run_dir} at step 3" in out
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"] == 5
    assert mp4_facts(run_dir / "edited.mp4")[0][0] == 6
    assert only_run_dir(tmp_path / "runs") == run_dir  # resumed in place, no new folder


def test_resized_background_run_keeps_the_input_size_and_fps(tiny, tiny_clip_dir, tmp_path, capsys):
    bigger = torch.nn.functional.interpolate(tiny.frames, size=(32, 48), mode="bilinear", align_corners=False)
    write_frames(bigger, tmp_path / "frames48")
    code, out, err = run(overrides(tiny, tiny_clip_dir, tmp_path / "runs", steps=1, layer="background",
                                   **{"video.frames": tmp_path / "frames48", "video.fps": 7}), capsys)
    assert code == 0, err
    assert "note: the frames are 48x32 but the atlas was fitted at 24x16" in out
    run_dir = only_run_dir(tmp_path / "runs")
    assert mp4_facts(run_dir / "edited.mp4") == ((6, 32, 48, 3), 7.0)
    assert mp4_facts(run_dir / "comparison.mp4") == ((6, 32, 100, 3), 7.0)
    assert Image.open(run_dir / "frames" / "00005.png").size == (48, 32)


@pytest.mark.slow
def test_subprocess_run_on_an_mp4(tiny, tiny_clip_dir, tmp_path):
    video = write_video(tmp_path / "tiny.mp4", tiny.frames, fps=12)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_video.py"), "--quiet",
         *overrides(tiny, tiny_clip_dir, tmp_path / "runs", **{"video.frames": video})],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    assert run_dir.name.startswith("tiny-foreground-")
    assert mp4_facts(run_dir / "edited.mp4") == ((6, 16, 24, 3), 12.0)  # the input's frame rate
    assert len(list((run_dir / "frames").glob("*.png"))) == 6


def _broken_checkpoint(tiny, folder, drop_key=None, config_changes=None):
    shutil.copytree(tiny.folder, folder, ignore=shutil.ignore_patterns("frames"))
    if drop_key:
        checkpoint = torch.load(folder / "checkpoint", weights_only=True)
        del checkpoint[drop_key]
        torch.save(checkpoint, folder / "checkpoint")
    if config_changes:
        config = json.loads((folder / "config.json").read_text())
        config.update(config_changes)
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def _bad_input(kind, tiny, tmp_path):
    """Overrides (beyond the defaults) and the expected message for one kind of bad input."""
    if kind == "empty folder":
        (tmp_path / "empty").mkdir()
        return {"video.frames": tmp_path / "empty"}, "holds no image files"
    if kind == "mixed sizes":
        write_frames(tiny.frames[:2], tmp_path / "mixed")
        write_frames(tiny.frames[:1, :, :8, :8], tmp_path / "odd")
        shutil.copy(tmp_path / "odd" / "00000.png", tmp_path / "mixed" / "00002.png")
        return {"video.frames": tmp_path / "mixed"}, "mixes frame sizes: '00000.png' is 24x16 but '00002.png' is 8x8"
    if kind == "unreadable video":
        (tmp_path / "broken.mp4").write_bytes(b"\x00garbage" * 50)
        return {"video.frames": tmp_path / "broken.mp4"}, "could not decode video file"
    if kind == "too few frames":
        return {"video.max_frames": 4}, "the video has 4 frames but the atlas expects 6"
    if kind == "too many frames":
        write_frames(torch.cat([tiny.frames, tiny.frames[:1]]), tmp_path / "seven")
        return {"video.frames": tmp_path / "seven"}, "has 7 frames but the atlas was fitted on 6"
    if kind == "missing checkpoint key":
        folder = _broken_checkpoint(tiny, tmp_path / "nokey", drop_key="F_atlas_state_dict")
        return {"atlas.checkpoint": folder}, "has no key 'F_atlas_state_dict' (atlas network)"
    if kind == "other layer sizes":
        folder = _broken_checkpoint(tiny, tmp_path / "wide", config_changes={"number_of_channels_atlas": 12})
        return {"atlas.checkpoint": folder}, "does not match shape"
    if kind == "no foreground anywhere":
        return {"atlas.alpha_threshold": 0.999}, "lower atlas.alpha_threshold"
    if kind == "no video given":
        return {"video.frames": None}, "no input video: pass video.frames="
    if kind == "bad layer":
        return {"layer": "middle"}, "expected one of [foreground, background]"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "empty folder", "mixed sizes", "unreadable video", "too few frames", "too many frames",
    "missing checkpoint key", "other layer sizes", "no foreground anywhere", "no video given", "bad layer"])
def test_bad_input_is_one_clear_line(kind, tiny, tiny_clip_dir, tmp_path, capsys):
    extra, message = _bad_input(kind, tiny, tmp_path)
    code, _, err = run(overrides(tiny, tiny_clip_dir, tmp_path / "runs", **extra), capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing half-written


def test_frame_count_messages_name_the_fix(tiny, tmp_path):
    write_frames(torch.cat([tiny.frames, tiny.frames[:2]]), tmp_path / "eight")
    cfg = load_config(VideoEditConfig, None, [f"video.frames={tmp_path / 'eight'}", f"atlas.checkpoint={tiny.folder}"])
    with pytest.raises(Exception, match="video.max_frames=6"):
        load_atlas_for_video(cfg, read_video(tmp_path / "eight")[0], torch.device("cpu"))
    video, _ = read_video(tmp_path / "eight", max_frames=6)  # what the message says to do works
    atlas, frames = load_atlas_for_video(cfg, video, torch.device("cpu"))
    assert frames.shape == (6, 3, 16, 24)
    short, _ = read_video(tmp_path / "eight", max_frames=4)
    with pytest.raises(Exception, match="atlas.num_frames=4"):
        load_atlas_for_video(cfg, short, torch.device("cpu"))
    cfg.atlas.num_frames = 4  # the atlas fitted on exactly these 4 frames
    atlas, _ = load_atlas_for_video(cfg, short, torch.device("cpu"))
    assert atlas.num_frames == 4


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run(["--resume", str(tmp_path)], capsys)
    assert code == 2 and "is not a run folder to resume" in err


# ---------------------------------------------------------------- atlases fitted by run_atlas.py
def fitted_overrides(frames, clip_dir, out_dir, **extra) -> list[str]:
    """A 2-step edit of the tiny procedural clip (64 x 48, 8 frames) with the tiny CLIP."""
    values = {"video.frames": str(frames), "clip.model": str(clip_dir), "output_dir": str(out_dir),
              "text.src": "red circle", "text.comp": "blue circle", "text.screen": "blue circle", "steps": 2,
              "generator.num_scales": 3, "generator.channels": 8, "clip.n_aug": 2, "device": "cpu", "snapshot_every": 0,
              "checkpoint_every": 2,
              "atlas.alpha_threshold": 0.5}  # a fit of a few iterations has no alpha near 1 yet
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items() if value is not None]


def test_two_step_edit_on_an_atlas_run_folder(tiny_atlas_run, tiny_procedural_clip, tiny_clip_dir, tmp_path, capsys):
    code, out, err = run(fitted_overrides(tiny_procedural_clip / "frames", tiny_clip_dir, tmp_path / "runs",
                                          **{"atlas.checkpoint": tiny_atlas_run.run_dir}), capsys)
    assert code == 0, err
    run_dir = only_run_dir(tmp_path / "runs")
    assert mp4_facts(run_dir / "edited.mp4") == ((8, 48, 64, 3), 10.0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["atlas_width"], summary["atlas_height"], summary["steps"]) == (64, 48, 2)
    assert summary["atlas"] == str(tiny_atlas_run.run_dir)
    assert summary["reconstruction_psnr_db"] > 25  # the fitted atlas reconstructs the clip


def test_frame_count_mismatch_with_a_fitted_atlas_names_the_fix(tiny_atlas_run, tiny_procedural_clip,
                                                                 tiny_clip_dir, tmp_path, capsys):
    code, _, err = run(fitted_overrides(tiny_procedural_clip / "frames", tiny_clip_dir, tmp_path / "runs",
                                        **{"atlas.checkpoint": tiny_atlas_run.atlas_dir, "video.max_frames": 5}),
                       capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"the video has 5 frames but the atlas in '{tiny_atlas_run.atlas_dir}' was fitted on 8" in err


def test_an_edit_without_an_atlas_fits_one_once(tiny_procedural_clip, tiny_clip_dir, tmp_path, capsys,
                                                 monkeypatch):
    from atlas.fitting.fit import AtlasFitter

    fits = []
    original = AtlasFitter.fit
    monkeypatch.setattr(AtlasFitter, "fit", lambda self, *args, **kwargs: fits.append(1) or original(
        self, *args, **kwargs))
    argv = fitted_overrides(tiny_procedural_clip / "clip.mp4", tiny_clip_dir, tmp_path / "runs", steps=1,
                            **{"fit.iterations": 6, "fit.samples": 1024, "fit.flow_preset": "ultrafast",
                               "fit.masks": tiny_procedural_clip / "masks"})
    code, out, err = run(argv, capsys)
    assert code == 0, err
    (cache,) = (tmp_path / "runs" / ".atlas_cache").iterdir()
    assert f"no atlas given: fitting one to {tiny_procedural_clip / 'clip.mp4'} first" in out and fits == [1]
    assert json.loads((cache / "fit_summary.json").read_text())["iterations"] == 6

    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert f"reusing the atlas fitted on {tiny_procedural_clip / 'clip.mp4'} ({cache})" in out
    assert fits == [1]  # no second fit
    edits = sorted(p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    assert len(edits) == 2
    assert json.loads((edits[1] / "summary.json").read_text())["atlas"] == str(cache)


def test_bad_masks_for_the_fit_of_an_edit_write_nothing(tiny_procedural_clip, tiny_clip_dir, tmp_path, capsys):
    masks = tmp_path / "masks"
    shutil.copytree(tiny_procedural_clip / "masks", masks)
    (masks / "00007.png").unlink()
    code, _, err = run(fitted_overrides(tiny_procedural_clip / "frames", tiny_clip_dir, tmp_path / "runs",
                                        **{"fit.masks": masks}), capsys)
    assert code == 2 and err.count("\n") == 1 and "holds 7 masks for 8 frames" in err
    assert not (tmp_path / "runs").exists()
