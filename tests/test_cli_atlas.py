"""t2l-atlas (text2live_geo.apps.cli.atlas, run_atlas.py): --help names the common keys, a fit through the
command line, odd but valid frames work, and every bad input is one clear line, exit 2, nothing
written."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_fit_overrides
from text2live_geo.apps.cli import atlas as atlas_cli

ROOT = Path(__file__).resolve().parents[1]
COMMON_KEYS = ("video.frames", "video.max_frames", "video.long_side", "fit.iterations", "fit.masks", "fit.layers",
               "output_dir", "run_name", "seed", "device")


def run(argv, capsys):
    code = atlas_cli.main(["--quiet", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def frames_of(clip_folder: Path) -> list[np.ndarray]:
    return [np.array(Image.open(path)) for path in sorted((clip_folder / "frames").glob("*.png"))]


def write_images(images, folder: Path, names=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        name = names[index] if names else f"{index:05d}.png"
        (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(folder / name)
    return folder


@pytest.mark.parametrize("command", [[sys.executable, "-m", "text2live_geo.apps.cli.atlas", "--help"],
                                     [sys.executable, str(ROOT / "run_atlas.py"), "--help"]])
def test_help_from_another_directory_names_the_common_keys(command, tmp_path):
    result = subprocess.run(command, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--resume" in result.stdout and "--config" in result.stdout
    for key in COMMON_KEYS:
        assert key in result.stdout, key


def test_a_fit_through_the_command_line_and_a_new_folder_each_time(tiny_procedural_clip, tmp_path, capsys):
    overrides = tiny_fit_overrides(tiny_procedural_clip / "clip.mp4", tmp_path / "runs", **{"fit.iterations": 2})
    code, out, err = run(overrides, capsys)
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("clip-atlas-") and f"wrote {run_dir}" in out
    summary = json.loads((run_dir / "fit_summary.json").read_text())
    assert (summary["frames"], summary["width"], summary["height"], summary["iterations"]) == (8, 64, 48, 2)

    code, _, err = run([*overrides, "run_name=same"], capsys)
    assert code == 0, err
    code, _, err = run([*overrides, "run_name=same"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir())[-2:] == ["same", "same-2"]  # never reused


def test_more_frames_than_max_frames_is_a_note(tiny_procedural_clip, tmp_path, capsys):
    code, out, err = run(tiny_fit_overrides(tiny_procedural_clip / "frames", tmp_path / "runs",
                                            **{"video.max_frames": 6, "fit.iterations": 1,
                                               "fit.masks": tiny_procedural_clip / "masks"}), capsys)
    assert code == 0, err
    assert "note: the clip has more than 6 frames: kept the first 6 of 8 (video.max_frames)" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "fit_summary.json").read_text())["frames"] == 6


def _odd_frames(kind: str, clip_folder: Path, folder: Path) -> tuple[Path, tuple[int, int]]:
    """A frames folder of one kind of valid but unusual frames, and the (width, height) fitted."""
    frames = frames_of(clip_folder)
    if kind == "grayscale":
        images = [Image.fromarray(frame).convert("L") for frame in frames]
    elif kind == "rgba":
        images = [Image.fromarray(np.dstack((frame, np.full(frame.shape[:2], 200, np.uint8)))) for frame in frames]
    elif kind == "16-bit":
        images = [Image.fromarray(np.array(Image.fromarray(frame).convert("L"), np.uint16) * 257) for frame in frames]
    elif kind == "odd size":
        images = [Image.fromarray(frame).resize((63, 47)) for frame in frames]
        return write_images(images, folder), (63, 47)
    else:
        raise AssertionError(kind)
    return write_images(images, folder), (64, 48)


@pytest.mark.parametrize("kind", ["grayscale", "rgba", "16-bit", "odd size"])
def test_unusual_frames_work(kind, tiny_procedural_clip, tmp_path, capsys):
    folder, size = _odd_frames(kind, tiny_procedural_clip, tmp_path / "frames")
    code, _, err = run(tiny_fit_overrides(folder, tmp_path / "runs", **{"fit.iterations": 2}), capsys)
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "fit_summary.json").read_text())
    assert (summary["width"], summary["height"], summary["frames"]) == (*size, 8)
    assert np.isfinite(summary["psnr_db"])


def _bad_input(kind: str, clip_folder: Path, tmp_path: Path) -> tuple[dict, str]:
    """Overrides (beyond the tiny fit's) and the expected message of one kind of bad input."""
    frames, masks = clip_folder / "frames", clip_folder / "masks"
    mask_images = [np.array(Image.open(path)) for path in sorted(masks.glob("*.png"))]
    if kind == "no video given":
        return {"video.frames": None}, "no input video: pass video.frames="
    if kind == "missing video":
        return {"video.frames": tmp_path / "nowhere.mp4"}, "video not found: "
    if kind == "corrupt video":
        (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
        return {"video.frames": tmp_path / "random.mp4"}, "could not decode video file"
    if kind == "one frame":
        write_images(frames_of(clip_folder)[:1], tmp_path / "one")
        return {"video.frames": tmp_path / "one"}, "has 1 frame; fitting an atlas needs at least 2 frames"
    if kind == "mixed sizes":
        images = frames_of(clip_folder)
        images[3] = np.array(Image.fromarray(images[3]).resize((32, 24)))
        write_images(images, tmp_path / "mixed")
        return {"video.frames": tmp_path / "mixed"}, "mixes frame sizes: '00000.png' is 64x48 but '00003.png' is 32x24"
    if kind == "masks count":
        write_images(mask_images[:7], tmp_path / "seven")
        return {"video.frames": frames, "fit.masks": tmp_path / "seven"}, "holds 7 masks for 8 frames"
    if kind == "masks names":
        names = [f"{i:05d}.png" for i in (0, 1, 2, 4, 5, 6, 7, 9)]
        write_images(mask_images, tmp_path / "renamed", names)
        return {"fit.masks": tmp_path / "renamed"}, "mask '00004.png' does not match frame '00003.png'"
    if kind == "masks missing":
        return {"fit.masks": tmp_path / "no_masks"}, "masks folder"
    if kind == "masks all empty":
        write_images([np.zeros_like(mask) for mask in mask_images], tmp_path / "empty")
        return {"fit.masks": tmp_path / "empty"}, "every mask is empty"
    if kind == "masks all full":
        write_images([np.full_like(mask, 255) for mask in mask_images], tmp_path / "full")
        return {"fit.masks": tmp_path / "full"}, "every mask is full"
    if kind == "three layers":
        return {"fit.layers": 3}, "fit.layers must be 2 (foreground + background) or 1 (background only), got 3"
    if kind == "unknown key":
        return {"fit.speed": 3}, "bad config key 'fit.speed'"
    if kind == "bad model":
        return {"fit.model": "mlp"}, "expected one of [grid, nla]"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "no video given", "missing video", "corrupt video", "one frame", "mixed sizes", "masks count", "masks names",
    "masks missing", "masks all empty", "masks all full", "three layers", "unknown key", "bad model"])
def test_bad_input_is_one_clear_line(kind, tiny_procedural_clip, tmp_path, capsys):
    extra, message = _bad_input(kind, tiny_procedural_clip, tmp_path)
    code, _, err = run(tiny_fit_overrides(tiny_procedural_clip / "frames", tmp_path / "runs", **extra), capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "runs").exists()  # nothing written


@pytest.mark.parametrize("kind", ["missing", "empty", "an image edit", "another checkpoint"])
def test_resume_of_a_folder_that_is_not_an_atlas_run(kind, tiny_atlas_run, tmp_path, capsys):
    folder = tmp_path / "folder"
    if kind != "missing":
        folder.mkdir()
    if kind == "an image edit":
        (folder / "config.yaml").write_text("image: photo.png\nsteps: 10\n")
        (folder / "checkpoint.pt").write_bytes(b"not read")
    if kind == "another checkpoint":  # an atlas fit's config, but a checkpoint of something else
        shutil.copy(tiny_atlas_run.run_dir / "config.yaml", folder / "config.yaml")
        import torch

        torch.save({"step": 3}, folder / "checkpoint.pt")
    before = sorted(p.name for p in folder.iterdir()) if folder.exists() else None
    code, _, err = run(["--resume", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"error: '{folder}' is not an atlas run folder to resume" in err
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else None) == before
