"""Shared tiny-model fixtures: a random CLIP + word tokenizer saved to disk and loaded through
the same `from_pretrained` path as a hub model, and small input images."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread: tiny models gain nothing from more, and oversubscribed OpenMP threads on a
# busy 2-core machine slow each step down by an order of magnitude.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_WORDS = ("a an the of photo image high quality red blue green golden horse circle square gray "
              "background over in front screen").split()


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    from text2live_geo.tiny_clip import build_clip

    folder = tmp_path_factory.mktemp("tiny_clip")
    build_clip(folder, TINY_WORDS, image_size=32, patch_size=8, vision_width=32, vision_layers=3,
               text_width=32, text_layers=2, heads=2, projection_dim=32, seed=0)
    return folder


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from text2live_geo.clip import ClipGuide

    return ClipGuide.load(str(tiny_clip_dir))


def _red_square(height: int = 48, width: int = 64) -> np.ndarray:
    array = np.full((height, width, 3), 128, np.uint8)
    array[height // 4: 3 * height // 4, width // 4: width // 2] = (200, 30, 30)
    return array


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "red_square.png"
    Image.fromarray(_red_square()).save(path)
    return path


def tiny_overrides(image, clip_dir, out_dir, steps: int = 3, **extra) -> list[str]:
    """Config overrides for a fast CPU run on tiny models."""
    values = {
        "image": str(image), "clip.model": str(clip_dir), "output_dir": str(out_dir),
        "text.src": "red square", "text.comp": "blue square", "text.screen": "blue square",
        "steps": steps, "generator.num_scales": 3, "generator.channels": 8, "clip.n_aug": 4,
        "snapshot_every": 2, "checkpoint_every": 2, "device": "cpu", "seed": 0,
    }
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items()]


# ------------------------------------------------------------------------ atlas fitting
TINY_FIT = {"fit.iterations": 12, "fit.samples": 1024, "fit.eval_every": 4, "fit.flow_preset": "ultrafast",
            "checkpoint_every": 5, "device": "cpu", "seed": 0}


def tiny_fit_overrides(frames, out_dir, **extra) -> list[str]:
    """Config overrides (AtlasRunConfig) for a fit of a tiny clip in a few seconds on a CPU; a value
    of None leaves its key out."""
    values = {"video.frames": str(frames), "output_dir": str(out_dir), **TINY_FIT}
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items() if value is not None]


#: the tiny procedural clip: 8 frames of 64 x 48, one object over a panning background
TINY_PROCEDURAL = {"frames": 8, "width": 64, "height": 48, "objects": 1, "camera": "pan", "seed": 0,
                   "object_size": 1.4}


@pytest.fixture(scope="session")
def tiny_procedural_clip(tmp_path_factory):
    """`make_procedural_clip(**TINY_PROCEDURAL)` written as `frames/00000.png ...`,
    `masks/00000.png ...` (its exact masks) and `clip.mp4`; returns the folder."""
    from atlas.procedural import make_procedural_clip, write_procedural_clip

    folder = tmp_path_factory.mktemp("tiny_procedural")
    return write_procedural_clip(make_procedural_clip(**TINY_PROCEDURAL), folder)


@pytest.fixture(scope="session")
def tiny_atlas_run(tiny_procedural_clip, tmp_path_factory):
    """An atlas run folder of run_atlas.py fitted on `tiny_procedural_clip` with its masks (a few
    seconds); returns its AtlasRunResult. Tests must not modify the folder."""
    from atlas.fitting.run import fit_atlas

    out = tmp_path_factory.mktemp("tiny_atlas_run")
    return fit_atlas(overrides=tiny_fit_overrides(tiny_procedural_clip / "frames", out, run_name="tiny",
                                                  **{"fit.masks": tiny_procedural_clip / "masks"}),
                     progress=False)


def step_losses(editor, sample):
    """Loss terms, weights and renders of one editor (image or video) on `sample` (what its
    `draw_sample` returns), built from the step's own parts, without the IMR anchor or an update."""
    renders = editor.render_sample(editor.generator, sample)
    terms, weights = editor.objective.batched(renders, editor.bootstrap_weight(editor.step), sparsity=editor.sparsity)
    return terms, weights, renders
