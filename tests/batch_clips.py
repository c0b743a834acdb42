"""Tiny clips for the batch tests: procedural videos with their atlases (atlas.testing), an image,
a corrupt video file, the manifest listing them, and settings that edit each in seconds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from atlas.testing import make_tiny_atlas


def make_clips(folder: Path, videos: int = 3, image: bool = False, broken: bool = True) -> Path:
    """Write `videos` tiny clips (6 frames of 24 x 16 px, each with its own atlas), optionally an
    image and a corrupt `broken.mp4`, and a manifest `clips.yaml` listing them. Returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    entries: list = []
    for index in range(videos):
        make_tiny_atlas(folder / f"atlas{index}", seed=11 + index)
        entries.append({"clip": f"atlas{index}/frames", "name": f"clip{index}", "atlas.checkpoint": f"atlas{index}"})
    if image:
        array = np.full((48, 64, 3), 128, np.uint8)
        array[12:36, 16:32] = (200, 30, 30)
        Image.fromarray(array).save(folder / "still.png")
        entries.append("still.png")
    if broken:
        (folder / "broken.mp4").write_bytes(b"\x00garbage" * 50)
        entries.append({"clip": "broken.mp4", "atlas.checkpoint": "atlas0"})
    manifest = folder / "clips.yaml"
    manifest.write_text(yaml.safe_dump({"clips": entries}, sort_keys=False))
    return manifest


def tiny_settings(clip_dir: Path, out_dir: Path, **extra) -> list[str]:
    """key=value overrides for a batch of tiny edits on one CPU thread per worker."""
    values = {
        "clip.model": clip_dir, "output_dir": out_dir, "text.src": "red circle", "text.comp": "blue circle",
        "text.screen": "blue circle", "steps": 1, "generator.num_scales": 3, "generator.channels": 8,
        "clip.n_aug": 2, "device": "cpu", "snapshot_every": 0, "checkpoint_every": 1, "atlas.resolution": 48,
        "crops.full_atlas_every": 2, "threads": 1,
    }
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items()]


def report(batch_dir: Path) -> dict:
    return json.loads((batch_dir / "report.json").read_text())


def rows(batch_dir: Path) -> dict[str, dict]:
    return {row["name"]: row for row in report(batch_dir)["clips"]}


#: what the first batch of make_clips(videos=3, image=True, broken=True) must give, whatever the executor
EXPECTED_STATUS = {"clip0": "done", "clip1": "done", "clip2": "done", "still": "done", "broken": "failed"}
BROKEN_REASON = "could not decode video file"
RUN_VIDEO_OUTPUTS = ("config.yaml", "checkpoint.pt", "metrics.jsonl", "summary.json", "edited.mp4",
                     "edit_on_greenscreen.mp4", "comparison.mp4", "atlas.png", "edited_atlas.png",
                     "edited_atlas_composite.png", "frames/00000.png", "frames/00005.png")
RUN_IMAGE_OUTPUTS = ("config.yaml", "checkpoint.pt", "metrics.jsonl", "input.png", "composite.png",
                     "edit_layer.png", "alpha.png", "edit_on_greenscreen.png", "comparison.png")


def check_first_report(batch_dir: Path) -> None:
    """The report and folders of a first batch of make_clips(3 videos, an image, broken.mp4)."""
    data = report(batch_dir)
    by_name = {row["name"]: row for row in data["clips"]}
    assert list(by_name) == list(EXPECTED_STATUS)  # every clip, in manifest order
    assert {name: row["status"] for name, row in by_name.items()} == EXPECTED_STATUS
    assert data["batch"]["finished"] is True
    assert data["batch"]["summary"].startswith(f"4 of 5 clips done; 1 failed: broken.mp4: {BROKEN_REASON}")
    broken = by_name.pop("broken")
    assert BROKEN_REASON in broken["error"] and broken["source"].endswith("broken.mp4")
    assert BROKEN_REASON in (Path(broken["run_dir"]) / "log.txt").read_text()
    for name, row in by_name.items():
        run_dir = Path(row["run_dir"])
        assert run_dir == batch_dir / name and row["error"] is None and row["seconds"] > 0
        assert row["losses"]["total"] > 0 and row["steps"] == 1
        for output in RUN_IMAGE_OUTPUTS if row["kind"] == "image" else RUN_VIDEO_OUTPUTS:
            assert (run_dir / output).is_file(), (name, output)
        assert (row["psnr_db"] is None) == (row["kind"] == "image")
        if row["kind"] == "video":
            assert row["psnr_db"] > 40  # the tiny atlases explain their clips exactly
        for preview in ("before", "after"):
            assert (batch_dir / row["previews"][preview]).is_file()
        log = (run_dir / "log.txt").read_text()
        assert "step 1/1" in log and "done in" in log  # the clip's progress is in its log
        assert json.loads((run_dir / "done.json").read_text())["outcome"]["status"] == "done"
    page = (batch_dir / "report.html").read_text()
    assert page.count("<tr>") == 1 + 5 and BROKEN_REASON in page and "http-equiv" not in page
