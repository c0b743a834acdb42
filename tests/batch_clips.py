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
        "clip.n_aug": 2, "device": "cpu", "log_every": 0, "checkpoint_every": 1, "atlas.resolution": 48,
        "crops.full_atlas_every": 2, "threads": 1,
    }
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items()]


def report(batch_dir: Path) -> dict:
    return json.loads((batch_dir / "report.json").read_text())


def rows(batch_dir: Path) -> dict[str, dict]:
    return {row["name"]: row for row in report(batch_dir)["clips"]}
