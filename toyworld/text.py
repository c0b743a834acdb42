"""Texts about toy-world scenes with their meaning, for training and evaluating the toy CLIP.

A `TextSpec` is a text plus what it asserts: a tuple of object descriptions
(colour, texture, shape), each None when the text leaves it open, and the background colour
(or None). An omitted texture word in a *full* object phrase means "plain" ("a red circle" is
a plain red circle); partial texts ("a circle", "a red object") leave the texture open.
`consistent(scene_spec, text_spec)` says whether the text is true of the scene, which gives
the multi-positive targets of the contrastive loss (many images in a batch share a text).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from .world import (
    COLOURS,
    GREEN_SCREEN,
    SCREEN_TEMPLATES,
    SHAPES,
    TEXT_TEMPLATES,
    TEXTURES,
    ObjectSpec,
    SceneSpec,
    article,
    background_phrase,
    object_phrase,
)

ObjDesc = tuple[str | None, str | None, str | None]  # colour, texture, shape


@dataclass(frozen=True)
class TextSpec:
    text: str
    objects: tuple[ObjDesc, ...]
    background: str | None = None


def describe(obj: ObjectSpec) -> ObjDesc:
    return (obj.colour, obj.texture, obj.shape)


def _matches(obj: ObjectSpec, desc: ObjDesc) -> bool:
    colour, texture, shape = desc
    return ((colour is None or colour == obj.colour) and (texture is None or texture == obj.texture)
            and (shape is None or shape == obj.shape))


def consistent(spec: SceneSpec, text: TextSpec) -> bool:
    """True when every object the text describes matches a distinct object of the scene and
    the background (if named) is the scene's."""
    if text.background is not None and text.background != spec.background.colour:
        return False
    if len(text.objects) > len(spec.objects):
        return False
    for chosen in permutations(range(len(spec.objects)), len(text.objects)):
        if all(_matches(spec.objects[i], d) for i, d in zip(chosen, text.objects)):
            return True
    return False


def phrase_of(desc: ObjDesc) -> str:
    colour, texture, shape = desc
    return object_phrase(colour=colour, texture=texture, shape=shape)


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def full_text(descs: Sequence[ObjDesc], background: str | None) -> str:
    text = " and ".join(with_article(phrase_of(d)) for d in descs)
    return text + (" " + background_phrase(background) if background else "")


def template_text(phrase: str, template: str) -> str:
    return template.format(phrase)


# Forms of a text about one object of the scene (phrase = "red striped circle"):
#   "article": "a red striped circle"; "template": one of TEXT_TEMPLATES; "screen": a green
#   screen template (only for green-screen scenes); "scene": the phrase + the background.
def object_text(desc: ObjDesc, form: str, template: str = "{}", background: str | None = None) -> TextSpec:
    phrase = phrase_of(desc)
    if form == "article":
        return TextSpec(with_article(phrase), (desc,))
    if form in ("template", "screen"):
        return TextSpec(template_text(phrase, template), (desc,), GREEN_SCREEN if form == "screen" else None)
    if form == "scene":
        return TextSpec(full_text([desc], background), (desc,), background)
    raise ValueError(form)


def sample_text(spec: SceneSpec, rng: np.random.Generator) -> TextSpec:
    """A random true text about `spec` (full caption, one object's phrase in some template,
    or a partial description)."""
    u = rng.random()
    bg = spec.background.colour
    if u < 0.3:
        descs = tuple(describe(o) for o in spec.objects)
        return TextSpec(full_text(descs, bg), descs, bg)
    obj = spec.objects[rng.integers(len(spec.objects))]
    desc = describe(obj)
    if u < 0.8:
        return _random_object_form(desc, bg, rng)
    # Partial: colour only, shape only, or texture + shape (texture left open when omitted).
    kind = rng.integers(3)
    if kind == 0:
        part = (obj.colour, None, None)
    elif kind == 1:
        part = (None, None, obj.shape)
    else:
        part = (None, obj.texture, obj.shape) if obj.texture != "plain" else (obj.colour, None, None)
    if rng.random() < 0.5:
        return TextSpec(with_article(phrase_of(part)), (part,))
    return TextSpec(template_text(phrase_of(part), TEXT_TEMPLATES[rng.integers(len(TEXT_TEMPLATES))]), (part,))


def _random_object_form(desc: ObjDesc, bg: str, rng: np.random.Generator) -> TextSpec:
    v = rng.random()
    if bg == GREEN_SCREEN and v < 0.4:
        return object_text(desc, "screen", SCREEN_TEMPLATES[rng.integers(len(SCREEN_TEMPLATES))])
    if v < 0.25:
        return object_text(desc, "article")
    if v < 0.85:
        return object_text(desc, "template", TEXT_TEMPLATES[rng.integers(len(TEXT_TEMPLATES))])
    return object_text(desc, "scene", background=bg)


ATTRIBUTES = {"colour": tuple(COLOURS), "texture": TEXTURES, "shape": SHAPES}
_SLOT = {"colour": 0, "texture": 1, "shape": 2}


def attribute_variants(spec: SceneSpec, attribute: str, obj_index: int = 0, form: str = "caption",
                       template: str = "{}") -> tuple[list[TextSpec], int, list[bool]]:
    """Texts that differ only in `attribute` of object `obj_index`, one per value.

    form: "caption" (the full scene caption), or an `object_text` form for that object alone.
    Returns (texts, index of the true one, valid) where valid[k] is False for wrong values
    that happen to be true of the scene too (e.g. the other object has that colour).
    """
    values = ATTRIBUTES[attribute]
    slot = _SLOT[attribute]
    descs = [describe(o) for o in spec.objects]
    bg = spec.background.colour
    texts = []
    for value in values:
        d = list(descs[obj_index])
        d[slot] = value
        if form == "caption":
            new = list(descs)
            new[obj_index] = tuple(d)
            texts.append(TextSpec(full_text(new, bg), tuple(new), bg))
        else:
            texts.append(object_text(tuple(d), form, template, bg))
    target = values.index(descs[obj_index][slot])
    valid = [k == target or not consistent(spec, t) for k, t in enumerate(texts)]
    return texts, target, valid
