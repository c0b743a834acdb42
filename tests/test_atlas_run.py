"""atlas/fitting/run.py: a tiny fit writes every output with sane contents, a resumed fit equals an
uninterrupted one (metrics included), the cache key and the cache (reuse, resume of a cut fit)."""
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from atlas.fitting import run as fit_run
from atlas.fitting.fit import AtlasFitter
from atlas.format import load_atlas
from atlas.grid_model import GridAtlas
from atlas.procedural import make_procedural_clip
from atlas.settings import AtlasRunConfig, FitConfig, VideoInputConfig
from conftest import TINY_PROCEDURAL, tiny_fit_overrides
from media_probe import probe_video
from text2live_geo.common.config import load_config
from text2live_geo.common.video_io import video_name

PREVIEWS = ("reconstruction.mp4", "alpha.mp4", "masks.mp4", "atlas_grid.mp4")


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_tiny_fit_writes_every_output(tiny_atlas_run, tiny_procedural_clip):
    run_dir = tiny_atlas_run.run_dir
    assert run_dir.name == "tiny" and tiny_atlas_run.atlas_dir == run_dir / "atlas"
    for name in ("config.yaml", "checkpoint.pt", "atlas/config.json", "atlas/model.safetensors", "fit_summary.json",
                 "atlas_foreground.png", "atlas_background.png", *PREVIEWS):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob("*.tmp*")) and not list(run_dir.glob(".*.tmp*"))

    summary = json.loads((run_dir / "fit_summary.json").read_text())
    assert summary == tiny_atlas_run.summary
    assert (summary["frames"], summary["width"], summary["height"], summary["layers"]) == (8, 64, 48, 2)
    assert (summary["iterations"], summary["masks"], summary["model"]) == (12, "folder", "grid")
    assert summary["seconds"] > 0 and summary["prepare_seconds"] > 0
    # far above the mean-colour baseline, and the alpha overlaps the given masks
    clip = make_procedural_clip(**TINY_PROCEDURAL)
    baseline = -10 * np.log10(float((clip.frames - clip.frames.mean((0, 2, 3), keepdim=True)).pow(2).mean()))
    assert summary["psnr_db"] > baseline + 8
    assert summary["mask_iou"] > 0.8

    # psnr_db is over every pixel of every frame: the saved atlas gives it back
    atlas = load_atlas(run_dir)
    assert isinstance(atlas, GridAtlas) and atlas.iteration == 12
    info = json.loads((run_dir / "atlas" / "config.json").read_text())["info"]
    assert info["frames"] == 8 and info["source"] == str(tiny_procedural_clip / "frames")
    assert info["fit"]["iterations"] == 12 and info["masks"] == "folder"
    frames = torch.stack([torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
                          for path in sorted((tiny_procedural_clip / "frames").glob("*.png"))]).float() / 255
    mse = float((atlas.reconstruct(range(8)).clamp(0, 1) - frames).pow(2).mean())
    assert -10 * np.log10(mse) == pytest.approx(summary["psnr_db"], abs=0.01)

    for name, width in (("reconstruction.mp4", 2 * 64 + 4), ("alpha.mp4", 64), ("masks.mp4", 64),
                        ("atlas_grid.mp4", 64)):
        facts = probe_video(run_dir / name)
        assert (facts["frames"], facts["width"], facts["height"], facts["fps"]) == (8, width, 48, 10.0), name
    for layer in ("foreground", "background"):
        with Image.open(run_dir / f"atlas_{layer}.png") as image:
            side = summary["atlas_resolution"][layer]
            assert image.size == (side, side) and image.mode == "RGB"

    lines = metrics(run_dir)
    assert [line["iteration"] for line in lines] == list(range(1, 13))
    assert {"rgb", "total", "lr", "seconds"} <= set(lines[0])
    assert [line["iteration"] for line in lines if "psnr_db" in line] == [4, 8, 12]
    saved = load_config(AtlasRunConfig, run_dir / "config.yaml")
    assert saved.fit.iterations == 12 and saved.fit.masks == str(tiny_procedural_clip / "masks")


def test_atlas_grid_shows_the_foreground_checker_on_the_object(tiny_atlas_run):
    import imageio

    reader = imageio.get_reader(tiny_atlas_run.run_dir / "atlas_grid.mp4", "ffmpeg")
    grid = np.stack([frame for frame in reader]).astype(np.float32) / 255  # list(reader) asks its len: inf
    reader.close()
    clip = make_procedural_clip(**TINY_PROCEDURAL)
    inside = clip.masks[:, 0].numpy()
    # foreground squares are orange / blue (saturated), background ones gray
    saturation = grid.max(-1) - grid.min(-1)
    assert saturation[inside].mean() > saturation[~inside].mean() + 0.2


def interrupted_at(monkeypatch, iteration: int) -> None:
    """The next fit stops with KeyboardInterrupt after `iteration` iterations (as if killed)."""
    original = AtlasFitter.iteration_step

    def step(self):
        if self.iteration == iteration:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(AtlasFitter, "iteration_step", step)


def test_resumed_fit_equals_an_uninterrupted_one(tiny_procedural_clip, tmp_path, monkeypatch, caplog):
    frames = tiny_procedural_clip / "frames"
    whole = fit_run.fit_atlas(overrides=tiny_fit_overrides(frames, tmp_path, run_name="whole"), progress=False)

    interrupted_at(monkeypatch, 7)  # checkpoints at 5 (checkpoint_every=5); lines 6, 7 written after it
    with pytest.raises(KeyboardInterrupt):
        fit_run.fit_atlas(overrides=tiny_fit_overrides(frames, tmp_path, run_name="cut"), progress=False)
    cut = tmp_path / "cut"
    assert len(metrics(cut)) == 7 and not (cut / "fit_summary.json").exists()
    monkeypatch.undo()

    caplog.set_level(logging.INFO, logger="atlas")
    resumed = fit_run.fit_atlas(resume=cut, progress=False)
    assert resumed.run_dir == cut and f"resuming {cut} at iteration 5" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "whole"]  # resumed in place

    first, second = load_file(whole.atlas_dir / "model.safetensors"), load_file(resumed.atlas_dir / "model.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    strip = lambda lines: [{k: v for k, v in line.items() if k != "seconds"} for line in lines]  # noqa: E731
    assert strip(metrics(cut)) == strip(metrics(whole.run_dir))
    seconds = [line["seconds"] for line in metrics(cut)]
    assert seconds == sorted(seconds)  # one clock across the two sessions
    assert resumed.summary["psnr_db"] == whole.summary["psnr_db"]


def test_resume_rejects_another_clip(tiny_atlas_run, tmp_path, tiny_procedural_clip):
    import shutil

    copy = shutil.copytree(tiny_atlas_run.run_dir, tmp_path / "copy")
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    with pytest.raises(fit_run.RunError, match="do not override video"):
        fit_run.fit_atlas(resume=copy, overrides=["video.max_frames=6"], progress=False)
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before  # nothing written over


def test_fit_key_follows_the_frames_the_masks_and_the_settings(tiny_procedural_clip):
    def key(masks: str = "", **changes) -> str:
        video = VideoInputConfig(frames=str(tiny_procedural_clip / "frames"), max_frames=changes.pop("max_frames", 0))
        seed = changes.pop("seed", 0)
        cfg = AtlasRunConfig(video=video, fit=FitConfig(masks=masks, **changes))
        return fit_run.fit_key(fit_run.read_clip(cfg), cfg.fit, seed)

    plain = key()
    assert key() == plain  # the same content and settings: the same key
    assert key(masks=str(tiny_procedural_clip / "masks")) != plain
    assert key(iterations=7) != plain and key(seed=1) != plain and key(max_frames=6) != plain


def test_cache_fits_once_resumes_a_cut_fit_and_reuses_it(tiny_procedural_clip, tmp_path, monkeypatch, caplog):
    video = VideoInputConfig(frames=str(tiny_procedural_clip / "clip.mp4"))
    fit = FitConfig(iterations=12, samples=1024, eval_every=4, flow_preset="ultrafast")
    caplog.set_level(logging.INFO, logger="atlas")

    def fit_cached():
        return fit_run.cached_fit(video, fit, 0, "cpu", tmp_path, checkpoint_every=5, progress=False)

    interrupted_at(monkeypatch, 3)  # killed before the first checkpoint: the next call starts over
    with pytest.raises(KeyboardInterrupt):
        fit_cached()
    monkeypatch.undo()
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("clip-") and not (folder / "checkpoint.pt").exists()
    interrupted_at(monkeypatch, 11)  # killed after the checkpoint at 10
    with pytest.raises(KeyboardInterrupt):
        fit_cached()
    monkeypatch.undo()
    assert "has no checkpoint yet: fitting from the first iteration" in caplog.text
    assert not (folder / "fit_summary.json").exists()

    caplog.clear()
    assert fit_cached() == folder
    assert f"resuming {folder} at iteration 10" in caplog.text
    assert [line["iteration"] for line in metrics(folder)] == list(range(1, 13))
    assert json.loads((folder / "fit_summary.json").read_text())["iterations"] == 12

    caplog.clear()
    calls = []
    monkeypatch.setattr(AtlasFitter, "fit", lambda *args, **kwargs: calls.append(1))
    assert fit_cached() == folder
    assert f"reusing the atlas fitted on {video.frames} ({folder})" in caplog.text and not calls
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_cache_waits_for_another_process_fitting_the_same_clip(tiny_procedural_clip, tmp_path, caplog):
    import fcntl
    import threading

    video = VideoInputConfig(frames=str(tiny_procedural_clip / "frames"))
    fit = FitConfig(iterations=4, samples=1024, eval_every=4, flow_preset="ultrafast")
    caplog.set_level(logging.INFO, logger="atlas")
    key = fit_run.fit_key(fit_run.read_clip(AtlasRunConfig(video=video, fit=fit)), fit, 0)
    folder = tmp_path / f"{video_name(video.frames)}-{key[:16]}"
    folder.mkdir()
    results = []
    with open(folder / ".fit.lock", "a") as held:  # as a fitter in another process holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=lambda: results.append(
            fit_run.cached_fit(video, fit, 0, "cpu", tmp_path, progress=False)))
        waiter.start()
        waiter.join(timeout=3)
        assert waiter.is_alive() and "is fitting" in caplog.text and not (folder / "fit_summary.json").exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(timeout=120)
    assert not waiter.is_alive() and results == [folder]
    assert json.loads((folder / "fit_summary.json").read_text())["iterations"] == 4


def test_background_only_fits(tiny_procedural_clip, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="atlas")
    result = fit_run.fit_atlas(overrides=tiny_fit_overrides(tiny_procedural_clip / "frames", tmp_path,
                                                            **{"fit.layers": 1, "fit.iterations": 2}), progress=False)
    assert "fit.layers=1: fitting the background only" in caplog.text
    assert (result.summary["layers"], result.summary["masks"], result.summary["mask_iou"]) == (1, "none", None)
    assert probe_video(result.run_dir / "masks.mp4")["frames"] == 8


def test_masks_from_motion_when_no_folder_is_given(tiny_procedural_clip, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="atlas")
    result = fit_run.fit_atlas(overrides=tiny_fit_overrides(tiny_procedural_clip / "frames", tmp_path,
                                                            **{"fit.iterations": 2}), progress=False)
    assert result.summary["masks"] == "motion" and "masks from motion: foreground in" in caplog.text
    assert result.summary["layers"] == 2 and result.summary["mask_iou"] is not None


def test_nothing_moving_fits_the_background_only(tmp_path, caplog):
    from atlas.procedural import write_procedural_clip

    folder = write_procedural_clip(make_procedural_clip(frames=6, width=64, height=48, objects=0, camera="pan"),
                                   tmp_path / "clip", mp4=False, masks_png=False)
    caplog.set_level(logging.INFO, logger="atlas")
    result = fit_run.fit_atlas(overrides=tiny_fit_overrides(folder / "frames", tmp_path / "runs",
                                                            **{"fit.iterations": 2}), progress=False)
    assert "note: no foreground found: fitting the background only (no foreground" in caplog.text
    assert (result.summary["layers"], result.summary["masks"]) == (1, "none")


def test_a_stopped_cached_fit_keeps_its_checkpoint_and_resumes(tiny_procedural_clip, tmp_path):
    """The app's Stop during an atlas fit: `should_stop` ends it after the iteration it is asked at,
    with its checkpoint and no outputs (a FitStopped, one line), and the next call resumes it there."""
    video = VideoInputConfig(frames=str(tiny_procedural_clip / "clip.mp4"))
    fit = FitConfig(iterations=8, samples=1024, eval_every=4, flow_preset="ultrafast")
    asked = []

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(fit_run.FitStopped, match="stopped at iteration 3 of 8"):
        fit_run.cached_fit(video, fit, 0, "cpu", tmp_path, checkpoint_every=0, progress=False,
                           should_stop=stop_after_three)
    (folder,) = tmp_path.iterdir()
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["fitter"]["iteration"] == 3
    assert not (folder / "fit_summary.json").exists()
    assert fit_run.cached_fit(video, fit, 0, "cpu", tmp_path, progress=False, should_stop=lambda: False) == folder
    assert [line["iteration"] for line in metrics(folder)] == list(range(1, 9))
    assert json.loads((folder / "fit_summary.json").read_text())["iterations"] == 8
