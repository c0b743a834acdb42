"""The procedural toy world and the shipped toy CLIP (data/toy_clip)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from toyworld import (
    BACKGROUND_COLOURS, COLOURS, SHAPES, TEXTURES, VOCABULARY, BackgroundSpec, ObjectSpec, SceneSpec,
    caption_for, classify_colour, classify_texture, render_scene, sample_scene, sample_spec,
)
from toyworld.text import attribute_variants, consistent, sample_text

ROOT = Path(__file__).resolve().parents[1]
TOY_CLIP = ROOT / "data" / "toy_clip"
TOY_IMAGES = ROOT / "data" / "toy_images"


def test_world_is_deterministic_per_seed():
    a, b = sample_scene(123, size=48), sample_scene(123, size=48)
    assert torch.equal(a.image, b.image) and torch.equal(a.masks, b.masks) and a.caption == b.caption
    c = sample_scene(124, size=48)
    assert not torch.equal(a.image, c.image)
    assert a.image.dtype == torch.float32 and a.image.shape == (3, 48, 48)
    assert a.masks.dtype == torch.bool and a.masks.shape == (len(a.objects), 48, 48)
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    # A generator argument works too and advances.
    rng = np.random.default_rng(5)
    assert sample_spec(rng) != sample_spec(rng)


def test_captions_and_vocabulary():
    spec = SceneSpec(objects=(ObjectSpec("circle", "red", "striped"),), background=BackgroundSpec("gray"))
    assert caption_for(spec) == "a red striped circle on a gray background"
    two = SceneSpec(objects=(ObjectSpec("circle", "red", cx=0.3), ObjectSpec("square", "orange", cx=0.7)),
                    background=BackgroundSpec("green screen"))
    assert caption_for(two) == "a red circle and an orange square over a green screen"
    assert len(COLOURS) >= 8 and len(SHAPES) >= 4 and set(TEXTURES) >= {"plain", "striped", "dotted", "checkered"}
    for i in range(50):
        for word in sample_scene(i, size=16).caption.split():
            assert word in VOCABULARY


@pytest.mark.parametrize("seed", range(12))
def test_masks_match_what_was_drawn(seed):
    # Plain objects on a flat background: inside each mask the object's colour, outside the
    # background colour, exactly.
    spec = sample_spec(seed, texture="plain")
    spec = spec.with_background(style="flat")
    scene = render_scene(spec, 64)
    image = scene.image.permute(1, 2, 0).numpy()
    union = scene.masks.any(0).numpy()
    assert union.sum() > 30 * len(spec.objects)
    for obj, mask in zip(spec.objects, scene.masks.numpy()):
        inside = image[mask]
        assert np.allclose(inside, obj.rgb, atol=1e-6)
        assert np.abs(inside - np.asarray(COLOURS[obj.colour])).max() <= 0.05
        assert classify_colour(inside) == obj.colour
    assert np.allclose(image[~union], spec.background.rgb, atol=1e-6)
    # Masks of different objects never overlap.
    assert (scene.masks.sum(0) <= 1).all()


def test_changing_an_attribute_rerenders_only_that():
    spec = sample_spec(7, n_objects=1, texture="plain", colour="red")
    a = render_scene(spec, 64)
    b = render_scene(spec.with_object(0, colour="blue"), 64)
    mask = a.masks[0]
    assert torch.equal(a.masks, b.masks)
    assert torch.equal(a.image[:, ~mask], b.image[:, ~mask])
    assert classify_colour(b.image[:, mask].T) == "blue"
    assert b.caption == a.caption.replace("red", "blue")


def test_classify_colour_textured_and_texture_classifier():
    hits = 0
    cases = [(c, t) for c in ("red", "blue", "yellow", "black", "white", "green") for t in TEXTURES]
    for k, (colour, texture) in enumerate(cases):
        spec = SceneSpec(objects=(ObjectSpec("square", colour, texture, size=0.38, texture_period=0.5,
                                             texture_phase=0.1 * k),),
                         background=BackgroundSpec("gray" if colour not in ("gray",) else "white"))
        scene = render_scene(spec, 96)
        pixels = scene.image[:, scene.masks[0]].T
        assert classify_colour(pixels) == colour, (colour, texture)
        hits += classify_texture(scene.image, scene.masks[0]) == texture
    assert hits >= 0.9 * len(cases)


def test_text_consistency():
    spec = SceneSpec(objects=(ObjectSpec("circle", "red"), ObjectSpec("square", "blue", "dotted")),
                     background=BackgroundSpec("gray"))
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert consistent(spec, sample_text(spec, rng))
    texts, target, valid = attribute_variants(spec, "colour", 0, "caption")
    assert texts[target].text == "a red circle and a blue dotted square on a gray background"
    assert all(valid)
    # Variants of object 1's shape; only the true one is consistent.
    texts, target, valid = attribute_variants(spec, "shape", 1, "article")
    assert texts[target].text == "a blue dotted square"
    assert sum(consistent(spec, t) for t in texts) == 1


def test_shipped_toy_images():
    from PIL import Image

    meta = json.loads((TOY_IMAGES / "captions.json").read_text())
    assert "red_circle" in meta
    for name, entry in meta.items():
        image = np.asarray(Image.open(TOY_IMAGES / entry["image"]).convert("RGB")) / 255.0
        mask = np.asarray(Image.open(TOY_IMAGES / entry["mask"])) > 127
        assert image.shape[:2] == mask.shape and mask.sum() > 100
        assert classify_colour(image[mask]) == entry["colour"]
        assert entry["caption"].startswith(f"a {entry['object']}") or entry["caption"].startswith(f"an {entry['object']}")


@pytest.fixture(scope="module")
def toy_clip():
    if not (TOY_CLIP / "config.json").exists():
        pytest.skip(f"no trained toy CLIP at {TOY_CLIP}; run `python scripts/train_toy_clip.py`")
    from toyworld.evaluate import load

    return load(str(TOY_CLIP))


def test_toy_clip_loads_in_float32(toy_clip):
    model, tokenizer = toy_clip
    assert model.dtype == torch.float32
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
