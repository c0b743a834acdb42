"""The shipped toy CLIPs (data/toy_clip with a 64-d projection, data/toy_clip_512 with real
CLIP's 512), loaded and measured with toyworld/evaluate.py, and the
files that ship with it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from toyworld.text import attribute_variants

ROOT = Path(__file__).resolve().parents[1]
# projection size of each shipped toy CLIP: the 512-d one gives the geodesic loss real CLIP's
# subspace and complement sizes (the SP benchmark's default)
TOY_CLIPS = {"toy_clip": 64, "toy_clip_512": 512}
TOY_IMAGES = ROOT / "data" / "toy_images"


@pytest.fixture(scope="module", params=sorted(TOY_CLIPS))
def toy_clip(request):
    folder = ROOT / "data" / request.param
    if not (folder / "config.json").exists():
        pytest.skip(f"no trained toy CLIP at {folder}; run `python scripts/train_toy_clip.py`")
    from toyworld.evaluate import load

    model, tokenizer = load(str(folder))
    assert model.config.projection_dim == TOY_CLIPS[request.param]
    return model, tokenizer


def test_toy_clip_loads_in_float32(toy_clip):
    model, tokenizer = toy_clip
    assert model.dtype == torch.float32
    assert model.text_projection.weight.shape[0] == model.config.projection_dim
    assert model.config.vision_config.image_size == 64
    assert len(tokenizer.tokenize("a photo of a red striped circle.")) == 8  # one token per word + "."


@torch.no_grad()
def test_toy_clip_ranks_true_colour_above_wrong_colour(toy_clip):
    from toyworld.evaluate import HELD_OUT_SEED, held_out_scenes, model_images
    from toyworld.training.model import TextEncoder, image_features

    model, tokenizer = toy_clip
    scenes = held_out_scenes(60, seed=HELD_OUT_SEED + 50_000, render_size=128)
    images = model_images(scenes, model.config.vision_config.image_size)
    img = torch.nn.functional.normalize(image_features(model, images), dim=-1)
    rng = np.random.default_rng(0)
    true_texts, wrong_texts = [], []
    for scene in scenes:
        texts, target, valid = attribute_variants(scene.spec, "colour", 0, "caption")
        wrong = [k for k, ok in enumerate(valid) if ok and k != target]
        true_texts.append(texts[target].text)
        wrong_texts.append(texts[wrong[rng.integers(len(wrong))]].text)
    encoder = TextEncoder(tokenizer)
    t = torch.nn.functional.normalize(encoder.features(model, true_texts), dim=-1)
    w = torch.nn.functional.normalize(encoder.features(model, wrong_texts), dim=-1)
    rate = ((img * t).sum(-1) > (img * w).sum(-1)).float().mean().item()
    assert rate >= 0.9, f"true caption above a wrong-colour caption for only {rate:.0%} of 60 held-out scenes"


@torch.no_grad()
def test_toy_clip_editor_prompt_red_vs_blue_circle(toy_clip):
    from PIL import Image

    from toyworld.training.model import TextEncoder, image_features

    model, tokenizer = toy_clip
    image = torch.from_numpy(np.asarray(Image.open(TOY_IMAGES / "red_circle.png").convert("RGB")) / 255.0)
    image = image.permute(2, 0, 1)[None].float()
    image = torch.nn.functional.interpolate(image, size=(64, 64), mode="bilinear", antialias=True)
    img = torch.nn.functional.normalize(image_features(model, image), dim=-1)[0]
    txt = torch.nn.functional.normalize(TextEncoder(tokenizer).features(
        model, ["a photo of red circle.", "a photo of blue circle.", "a photo of green circle."]), dim=-1)
    sims = txt @ img
    assert sims[0] > sims[1] and sims[0] > sims[2]


@torch.no_grad()
def test_toy_clip_knows_shape_on_held_out_scenes(toy_clip):
    """Zero-shot shape on 100 held-out scenes (not the model card's 500): the true caption
    against captions differing only in the shape. Chance is about 1/6."""
    from toyworld.evaluate import HELD_OUT_SEED, evaluate

    model, tokenizer = toy_clip
    result = evaluate(model, tokenizer, n=100, seed=HELD_OUT_SEED + 70_000)
    assert result["shape"] >= 0.4, f"shape {result['shape']:.0%}"
    assert result["shape_prompt"] >= 0.4, f"shape prompt {result['shape_prompt']:.0%}"
    assert result["colour"] >= 0.9, f"colour {result['colour']:.0%}"


@pytest.mark.parametrize("name", sorted(TOY_CLIPS))
def test_shipped_known_words_match_the_world(name):
    from toyworld.world import known_words

    folder = ROOT / "data" / name
    if not (folder / "config.json").exists():
        pytest.skip(f"no trained toy CLIP at {folder}")
    # written by training (toyworld.training.model.write_known_words); the editor warns about other words
    assert json.loads((folder / "known_words.json").read_text()) == {"model": "toy CLIP", **known_words()}
