"""The SP benchmark's judges: what an edited toy-world object is, read from pixels.

No CLIP anywhere: the judges use what the world itself knows (`toyworld.world`): its colour
prototypes and the darker shade it draws textures with, its texture classifier, and the
background it rendered under the object.

- Colour (`colour_shares`, `colour_hit`): every pixel of the object is labelled with the nearest
  colour, a colour being its prototype *or* its texture shade (`world.texture_shade`), so a
  striped red object is red on both its stripes. A pixel whose two nearest colours are closer
  than `COLOUR_MARGIN` to each other is labelled ambiguous and counts for no colour. An object
  *is* colour c when more than half of its pixels are labelled c (a half-recoloured object is
  no hit; the world's own `classify_colour` reads the brighter half and would call it one).
- Texture: `world.classify_texture` inside the object's mask.
- Shape (`after_mask`, `shape_iou`): the object after the edit is every pixel that differs from
  the world's render of the bare background (`world.render_background`, the exact pixels the
  object was drawn over) by more than `SHAPE_THRESHOLD` in some channel; its IoU with the mask
  the world drew measures how much of the shape the edit kept (an edit that paints over the
  background, or that turns part of the object into background, lowers it).

`calibrate` renders known-colour, known-texture objects with the world's own sampler (seeds
disjoint from the benchmark's cases) and reports each judge's accuracy and confusions.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from toyworld import world

#: a pixel whose two nearest colours are closer than this (RGB distance) is ambiguous
COLOUR_MARGIN = 0.03
#: a pixel belongs to the object after the edit when it differs from the bare background by more
#: than this in some channel (object colours are >= 0.35 from their background's colour)
SHAPE_THRESHOLD = 0.1
#: seeds of the judge's calibration scenes (the cases use 7_000_000 and 8_000_000 onwards)
CALIBRATION_SEED = 9_000_000
AMBIGUOUS = "ambiguous"

COLOUR_NAMES: tuple[str, ...] = tuple(world.COLOURS)


def _prototypes() -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) RGB of every colour's prototype and texture shade, and (P,) the colour index of each."""
    rgb, owner = [], []
    for index, name in enumerate(COLOUR_NAMES):
        base = np.asarray(world.COLOURS[name], dtype=np.float64)
        rgb += [base, world.texture_shade(base)]
        owner += [index, index]
    return np.stack(rgb), np.asarray(owner)


PROTOTYPES, PROTOTYPE_OWNER = _prototypes()


def _pixels(pixels) -> np.ndarray:
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.detach().float().cpu().numpy()
    return np.asarray(pixels, dtype=np.float64).reshape(-1, 3)


def pixel_labels(pixels) -> np.ndarray:
    """(N,) colour index of each of the (N, 3) pixels, or -1 where ambiguous (see the module)."""
    p = _pixels(pixels)
    distance = np.linalg.norm(p[:, None, :] - PROTOTYPES[None], axis=-1)  # (N, P)
    per_colour = np.full((len(p), len(COLOUR_NAMES)), np.inf)
    owner = PROTOTYPE_OWNER
    for index in range(len(COLOUR_NAMES)):
        per_colour[:, index] = distance[:, owner == index].min(axis=1)
    order = np.argsort(per_colour, axis=1)
    nearest = per_colour[np.arange(len(p)), order[:, 0]]
    second = per_colour[np.arange(len(p)), order[:, 1]]
    return np.where(second - nearest >= COLOUR_MARGIN, order[:, 0], -1)


def colour_shares(pixels) -> dict[str, float]:
    """Share of the pixels labelled each colour (and `ambiguous`); the shares sum to 1."""
    labels = pixel_labels(pixels)
    if len(labels) == 0:
        raise ValueError("no pixels to judge")
    shares = {name: float(np.mean(labels == index)) for index, name in enumerate(COLOUR_NAMES)}
    shares[AMBIGUOUS] = float(np.mean(labels == -1))
    return shares


def judge_colour(pixels) -> str:
    """The colour more than half of the pixels are labelled, else 'none'."""
    shares = colour_shares(pixels)
    best = max(COLOUR_NAMES, key=shares.get)
    return best if shares[best] > 0.5 else "none"


def object_pixels(image, mask) -> np.ndarray:
    """(N, 3) pixels of a (3, H, W) image under a (H, W) bool mask."""
    image = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    mask = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    return image[:, mask.astype(bool)].T


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` with every region of False pixels that does not reach the border (4-connected) set True."""
    outside = np.zeros_like(mask)
    outside[0, :], outside[-1, :], outside[:, 0], outside[:, -1] = ~mask[0, :], ~mask[-1, :], ~mask[:, 0], ~mask[:, -1]
    while True:  # grow the border-connected background one pixel per pass
        grown = outside.copy()
        grown[1:, :] |= outside[:-1, :]
        grown[:-1, :] |= outside[1:, :]
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown &= ~mask
        if (grown == outside).all():
            return ~outside
        outside = grown


def after_mask(image, background) -> np.ndarray:
    """(H, W) bool: the pixels of a (3, H, W) image that differ from the bare background by more
    than SHAPE_THRESHOLD in some channel, holes filled (a texture's shade can match the background
    inside the object)."""
    image = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    background = (background.detach().float().cpu().numpy() if isinstance(background, torch.Tensor)
                  else np.asarray(background))
    return fill_holes(np.abs(image - background).max(axis=0) > SHAPE_THRESHOLD)


def shade_distinct(colour: str, background) -> bool:
    """Whether `colour`'s prototype and its texture shade both differ from every pixel of the
    (3, H, W) bare background by more than 2 SHAPE_THRESHOLD in some channel (the shape judge then
    sees a textured object whole)."""
    background = np.asarray(background, dtype=np.float64).reshape(3, -1)
    base = np.asarray(world.COLOURS[colour])
    return all(np.abs(background - rgb[:, None]).max(axis=0).min() > 2 * SHAPE_THRESHOLD
               for rgb in (base, world.texture_shade(base)))


def shape_iou(image, background, mask) -> float:
    """IoU of `after_mask(image, background)` with the (H, W) mask the world drew."""
    mask = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask, dtype=bool)
    after = after_mask(image, background)
    union = np.logical_or(after, mask).sum()
    return float(np.logical_and(after, mask).sum() / union) if union else 1.0


def close_colour_pairs(limit: float = 0.15) -> list[dict]:
    """Pairs of colours with a prototype or shade of one within `limit` (RGB) of one of the other's:
    an object's jitter (up to 0.07) and an edit's tint can cross between them."""
    pairs, owner = [], PROTOTYPE_OWNER
    for a, b in itertools.combinations(range(len(COLOUR_NAMES)), 2):
        gap = np.linalg.norm(PROTOTYPES[owner == a][:, None] - PROTOTYPES[owner == b][None], axis=-1).min()
        if gap < limit:
            pairs.append({"pair": [COLOUR_NAMES[a], COLOUR_NAMES[b]], "rgb_distance": round(float(gap), 4)})
    return sorted(pairs, key=lambda item: item["rgb_distance"])


def calibration_scenes(count: int, size: int):
    """`count` single-object scenes of known colour and texture (colour cycling fastest, then the
    texture; each on a background it is allowed on), from seeds CALIBRATION_SEED onwards."""
    seed = CALIBRATION_SEED
    made = 0
    while made < count:
        colour = COLOUR_NAMES[made % len(COLOUR_NAMES)]
        texture = world.TEXTURES[(made // len(COLOUR_NAMES)) % len(world.TEXTURES)]
        rng = np.random.default_rng(seed)
        seed += 1
        spec = world.sample_spec(rng, n_objects=1, colour=colour, texture=texture)
        if spec.background.colour == world.GREEN_SCREEN or colour not in world.allowed_colours(spec.background.colour):
            continue
        if spec.objects[0].size < 0.26:  # the benchmark's cases are at least this large (texture needs pixels)
            spec = spec.with_object(0, size=0.3, cx=0.5, cy=0.5)
        made += 1
        yield seed - 1, spec, world.render_scene(spec, size=size)


def calibrate(count: int = 440, size: int = 96) -> dict:
    """Each judge on `count` rendered objects of known colour and texture: the colour judge's
    accuracy and confusion per colour, the texture judge's per texture, and the shape judge's IoU on
    the unedited renders (1 when it finds exactly the drawn object)."""
    colour_confusion = {name: {} for name in COLOUR_NAMES}
    texture_confusion = {name: {} for name in world.TEXTURES}
    ious, distinct_ious, ambiguous, colour_right, texture_right = [], [], [], 0, 0
    seeds = []
    for seed, spec, scene in calibration_scenes(count, size):
        seeds.append(seed)
        obj, mask = spec.objects[0], scene.masks[0]
        pixels = object_pixels(scene.image, mask)
        judged = judge_colour(pixels)
        colour_confusion[obj.colour][judged] = colour_confusion[obj.colour].get(judged, 0) + 1
        colour_right += judged == obj.colour
        ambiguous.append(colour_shares(pixels)[AMBIGUOUS])
        texture = world.classify_texture(scene.image, mask)
        texture_confusion[obj.texture][texture] = texture_confusion[obj.texture].get(texture, 0) + 1
        texture_right += texture == obj.texture
        background = world.render_background(spec.background, size)
        ious.append(shape_iou(scene.image, background, mask))
        if shade_distinct(obj.colour, background):
            distinct_ious.append(ious[-1])
    confused = sorted({tuple(sorted((true, judged))) for true, row in colour_confusion.items() for judged in row
                       if judged != true and judged in colour_confusion})
    return {
        "scenes": count, "size": size, "seeds": [min(seeds), max(seeds)], "colour_margin": COLOUR_MARGIN,
        "shape_threshold": SHAPE_THRESHOLD,
        "colour_accuracy": colour_right / count,
        "colour_accuracy_per_colour": {name: row.get(name, 0) / max(1, sum(row.values()))
                                       for name, row in colour_confusion.items()},
        "colour_confusion": colour_confusion, "confused_colour_pairs": [list(pair) for pair in confused],
        "close_colour_pairs": close_colour_pairs(),
        "ambiguous_pixel_share_mean": float(np.mean(ambiguous)),
        "texture_accuracy": texture_right / count,
        "texture_accuracy_per_texture": {name: row.get(name, 0) / max(1, sum(row.values()))
                                         for name, row in texture_confusion.items()},
        "texture_confusion": texture_confusion,
        "shape_iou_unedited_mean": float(np.mean(ious)), "shape_iou_unedited_min": float(np.min(ious)),
        # the benchmark's retexture cases draw only colours whose shade is distinct from the background
        "shape_iou_unedited_shade_distinct": {"scenes": len(distinct_ious), "mean": float(np.mean(distinct_ious)),
                                              "min": float(np.min(distinct_ious))},
    }
