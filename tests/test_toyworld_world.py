"""The procedural toy world (toyworld/world.py) and the shipped sample images (data/toy_images)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from toyworld import (
    COLOURS,
    SHAPES,
    TEXTURES,
    VOCABULARY,
    BackgroundSpec,
    ObjectSpec,
    SceneSpec,
    caption_for,
    classify_colour,
    classify_texture,
    known_words,
    render_scene,
    sample_scene,
    sample_spec,
)

ROOT = Path(__file__).resolve().parents[1]
TOY_IMAGES = ROOT / "data" / "toy_images"


def test_world_is_deterministic_per_seed():
    a, b = sample_scene(123, size=48), sample_scene(123, size=48)
    assert torch.equal(a.image, b.image) and torch.equal(a.masks, b.masks) and a.caption == b.caption
    c = sample_scene(124, size=48)
    assert not torch.equal(a.image, c.image)
    assert a.image.dtype == torch.float32 and a.image.shape == (3, 48, 48)
    assert a.masks.dtype == torch.bool and a.masks.shape == (len(a.objects), 48, 48)
    assert a.image.min() >= 0.0 and a.image.max() <= 1.0
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


def test_shipped_toy_images():
    from PIL import Image

    meta = json.loads((TOY_IMAGES / "captions.json").read_text())
    assert "red_circle" in meta
    for _name, entry in meta.items():
        image = np.asarray(Image.open(TOY_IMAGES / entry["image"]).convert("RGB")) / 255.0
        mask = np.asarray(Image.open(TOY_IMAGES / entry["mask"])) > 127
        assert image.shape[:2] == mask.shape and mask.sum() > 100
        assert classify_colour(image[mask]) == entry["colour"]
        assert entry["caption"].startswith((f"a {entry['object']}", f"an {entry['object']}"))


def test_known_words_group_the_vocabulary():
    groups = known_words()
    assert list(groups) == ["shapes", "colours", "textures", "other words"]
    assert groups["shapes"] == list(SHAPES) and groups["textures"] == list(TEXTURES)
    assert set(COLOURS) <= set(groups["colours"]) and {"gray", "beige"} <= set(groups["colours"])
    words = [w for group in groups.values() for w in group]
    assert sorted(words) == sorted(VOCABULARY)  # every word once
