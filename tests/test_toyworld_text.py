"""Texts about toy-world scenes and their meaning (toyworld/text.py)."""
from __future__ import annotations

import numpy as np

from toyworld import BackgroundSpec, ObjectSpec, SceneSpec
from toyworld.text import attribute_variants, consistent, sample_text


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
