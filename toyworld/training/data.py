"""Training batches of the toy CLIP, each a pure function of the seed and the step: the CLIP
stage's `Batch` (scenes, views, texts, positives, attribute-contrast variants, binding negatives,
object covers), the teacher's and vision stage's single-object batches, and the stream that
renders them in a worker process."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..text import _SLOT, ATTRIBUTES, TextSpec, attribute_variants, consistent, describe, sample_text
from ..world import (
    COLOURS,
    GREEN_SCREEN,
    SCREEN_TEMPLATES,
    SINGLE_OBJECT_SIZES,
    TEXT_TEMPLATES,
    allowed_colours,
    render_scene,
    sample_spec,
)
from .config import TrainConfig
from .views import TrainingViews, grayscale, make_views


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, S, S) in [0, 1], augmented
    texts: list[str]  # unique texts
    caption_index: torch.Tensor  # (B,) index of each image's text in `texts`
    positives: torch.Tensor  # (B, B) image i consistent with the text of image j
    swap_images: dict[str, torch.Tensor]  # attribute -> (n,) image indices
    swap_texts: dict[str, torch.Tensor]  # attribute -> (n, V) indices into `texts`
    swap_targets: dict[str, torch.Tensor]  # attribute -> (n,)
    swap_valid: dict[str, torch.Tensor]  # attribute -> (n, V) bool
    shape_labels: torch.Tensor  # (B,) index of the shape of single-object scenes, -100 for two objects
    # Binding negatives (see `TrainConfig.binding_count`), k scenes of the batch:
    binding_index: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # (k,) image indices
    # (k, 2, 3, S, S): recoloured, painted
    binding_images: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2, 3, 1, 1))
    # (k,) recoloured object's text in `texts`
    binding_text: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    # colour mixing (`TrainConfig.colour_mix_weight`): (k,) blend weights and the original colour's texts
    mix_t: torch.Tensor | None = None
    binding_source_text: torch.Tensor | None = None
    # (B, P) share of each patch the objects cover (`patch_cover`), when `attention_weight` > 0
    object_cover: torch.Tensor | None = None
    # (B, 2, P) each object's own cover and (B, 2) its shape index (-100: no such object, or
    # less than half a patch of it left in the view), when `object_shape_weight` > 0
    each_object_cover: torch.Tensor | None = None
    object_shape_labels: torch.Tensor | None = None


def _swap_form(spec, rng):
    v = rng.random()
    if v < 0.35:
        return "caption", "{}"
    if v < 0.8:
        return "template", TEXT_TEMPLATES[rng.integers(len(TEXT_TEMPLATES))]
    if v < 0.92:
        return "article", "{}"
    if spec.background.colour == GREEN_SCREEN:
        return "screen", SCREEN_TEMPLATES[rng.integers(len(SCREEN_TEMPLATES))]
    return "scene", "{}"


def make_batch(cfg: TrainConfig, step: int, views: TrainingViews) -> Batch:
    """The batch of `step`: a pure function of the seed and the step."""
    rng = np.random.default_rng([cfg.seed, 1, step])
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    render = round(cfg.image_size * cfg.render_scale)
    specs = [sample_spec(rng) for _ in range(cfg.batch)]
    scenes = [render_scene(s, render) for s in specs]
    view_params = views.draw(cfg.batch, render, g)
    with torch.no_grad():
        images = views.apply(torch.stack([s.image for s in scenes]), view_params)
    gray = torch.from_numpy(rng.random(cfg.batch) < cfg.grayscale_p)
    if gray.any():
        images[gray] = grayscale(images[gray])

    text_specs: list[TextSpec] = [sample_text(s, rng) for s in specs]
    texts: dict[str, int] = {}

    def idx(t: str) -> int:
        return texts.setdefault(t, len(texts))

    caption_index = torch.tensor([idx(t.text) for t in text_specs])
    positives = torch.tensor([[consistent(s, t) for t in text_specs] for s in specs])

    swap = {a: ([], [], [], []) for a in ("colour", "shape", "texture")}
    n_swap = round(cfg.swap_fraction * cfg.batch)
    for i in range(n_swap):
        u = rng.random()
        attribute = "colour" if u < cfg.swap_colour_p else ("shape" if u < 0.8 else "texture")
        if attribute == "colour" and bool(gray[i]):
            attribute = "shape"
        spec = specs[i]
        form, template = _swap_form(spec, rng)
        obj = int(rng.integers(len(spec.objects)))
        variants, target, valid = attribute_variants(spec, attribute, obj, form, template)
        lists = swap[attribute]
        lists[0].append(i)
        lists[1].append([idx(v.text) for v in variants])
        lists[2].append(target)
        lists[3].append(valid)
    swap_images, swap_texts, swap_targets, swap_valid = {}, {}, {}, {}
    for a, (ims, txs, tg, va) in swap.items():
        if ims:
            swap_images[a] = torch.tensor(ims)
            swap_texts[a] = torch.tensor(txs)
            swap_targets[a] = torch.tensor(tg)
            swap_valid[a] = torch.tensor(va)
    shape_labels = torch.tensor([shape_label(s) if len(s.objects) == 1 else -100 for s in specs])
    batch = Batch(images, list(texts), caption_index, positives, swap_images, swap_texts, swap_targets, swap_valid,
                  shape_labels)
    if cfg.attention_weight > 0 or cfg.object_shape_weight > 0:
        from kornia.geometry.transform import warp_perspective

        # channels: all objects, then (for the per-object head) object 0, object 1 (empty for
        # single-object scenes)
        channels = 3 if cfg.object_shape_weight > 0 else 1
        masks = torch.zeros(cfg.batch, channels, render, render)
        for i, s in enumerate(scenes):
            masks[i, 0] = s.masks.any(0)
            if channels > 1:
                masks[i, 1: 1 + len(s.masks)] = s.masks[:2]
        masks = warp_perspective(masks, view_params[0], (cfg.image_size, cfg.image_size), padding_mode="zeros")
        cover = patch_cover(masks.flatten(0, 1), cfg.patch_size).unflatten(0, (cfg.batch, channels))
        if cfg.attention_weight > 0:
            batch.object_cover = cover[:, 0]
        if cfg.object_shape_weight > 0:
            labels = torch.full((cfg.batch, 2), -100, dtype=torch.long)
            for i, s in enumerate(specs):
                for k in range(min(2, len(s.objects))):
                    labels[i, k] = shape_label(s, k)
            batch.each_object_cover = cover[:, 1:]
            batch.object_shape_labels = labels.masked_fill(batch.each_object_cover.sum(-1) < 0.5, -100)
    if cfg.binding_count > 0:
        chosen = [i for i in range(cfg.batch) if len(specs[i].objects) == 1 and not bool(gray[i])][:cfg.binding_count]
        pairs, text_index, source_index = [], [], []
        for i in chosen:
            recoloured, painted, text, source_text = binding_negatives(scenes[i], rng)
            pairs.append(torch.stack([recoloured, painted]))
            text_index.append(idx(text.text))
            if cfg.colour_mix_weight > 0:
                source_index.append(idx(source_text.text))
        if chosen:
            index = torch.tensor(chosen)
            pairs_t = torch.stack(pairs)  # (k, 2, 3, s, s)
            params = [p[index].repeat_interleave(2, 0) for p in view_params]  # each pair under its scene's view
            with torch.no_grad():
                viewed = views.apply(pairs_t.flatten(0, 1), params)
            batch.binding_index, batch.binding_images = index, viewed.unflatten(0, (len(chosen), 2))
            batch.binding_text, batch.texts = torch.tensor(text_index), list(texts)
            if source_index:
                batch.binding_source_text = torch.tensor(source_index)
                batch.mix_t = torch.from_numpy(rng.random(len(chosen))).float()
    return batch


def patch_cover(masks: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, S, S) object masks in [0, 1] -> (B, (S / patch_size)^2) share of each patch (row-major,
    the ViT's token order) that they cover."""
    return F.avg_pool2d(masks.unsqueeze(1).float(), patch_size).flatten(1)


def binding_negatives(scene, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, TextSpec, TextSpec]:
    """For a single-object scene: (the scene with its object in another colour c, the scene with
    its background painted flat c instead, a true text of the first naming c, the same text with
    the object's own colour). The text naming c must rank the recoloured image above both the
    original and the painted one: the colour word binds to the object, not to whatever part of
    the image has that colour."""
    spec = scene.spec
    obj = spec.objects[0]
    colour = [c for c in allowed_colours(spec.background.colour) if c != obj.colour]
    colour = colour[int(rng.integers(len(colour)))]
    recoloured = spec.with_object(0, colour=colour)
    size = scene.image.shape[-1]
    painted = scene.image.clone()
    painted[:, ~scene.masks[0]] = torch.tensor(COLOURS[colour], dtype=painted.dtype).view(3, 1)
    form, template = _swap_form(recoloured, rng)
    variants, target, _ = attribute_variants(recoloured, "colour", 0, form, template)
    source = variants[ATTRIBUTES["colour"].index(obj.colour)]
    return render_scene(recoloured, size).image, painted, variants[target], source


def shape_label(spec, index: int = 0) -> int:
    """Index in `ATTRIBUTES["shape"]` of the shape of the scene's object `index` (the first by default)."""
    return ATTRIBUTES["shape"].index(describe(spec.objects[index])[_SLOT["shape"]])


def make_teacher_batch(cfg: TrainConfig, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The teacher's (and the vision stage's) batch of `step`: (images (B, 3, S, S) in [0, 1],
    shape labels (B,), the objects' `patch_cover` (B, P)).
    One object per scene (size `cfg.teacher_min_size` to the world's largest), rendered at the model's
    size, only mirrored: clean data the CNN learns shape from quickly, which the CLIP's views
    (crops that cut objects, perspective, colour jitter) are not."""
    rng = np.random.default_rng([cfg.seed, 2, step])
    sizes = (cfg.teacher_min_size, SINGLE_OBJECT_SIZES[1])
    specs = [sample_spec(rng, n_objects=1, size_range=sizes) for _ in range(cfg.batch)]
    scenes = [render_scene(s, cfg.image_size) for s in specs]
    images = torch.stack([s.image for s in scenes]).float()
    masks = torch.stack([s.masks[0] for s in scenes])
    flip = torch.from_numpy(rng.random(cfg.batch) < 0.5)
    images[flip] = images[flip].flip(-1)
    masks[flip] = masks[flip].flip(-1)
    return images, torch.tensor([shape_label(s) for s in specs]), patch_cover(masks, cfg.patch_size)


class BatchStream(torch.utils.data.IterableDataset):
    """The batches of steps `first, first + 1, ...` in order (one worker keeps the order), so
    rendering overlaps with training on the second core: `make_batch` for the CLIP,
    `make_teacher_batch` for the teacher."""

    def __init__(self, cfg: TrainConfig, first: int, count: int, teacher: bool = False):
        super().__init__()
        self.cfg, self.first, self.count, self.teacher = cfg, first, count, teacher

    def __iter__(self):
        views = make_views(self.cfg.image_size)
        for step in range(self.first, self.first + self.count):
            yield make_teacher_batch(self.cfg, step) if self.teacher else make_batch(self.cfg, step, views)


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)


def batch_stream(cfg: TrainConfig, first: int, count: int, teacher: bool = False):
    """An iterator over the batches of steps `first ...` (rendered in a worker process unless
    `cfg.workers` is 0)."""
    stream = BatchStream(cfg, first, count, teacher)
    if cfg.workers <= 0:
        return iter(stream)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1,
                                         prefetch_factor=4, worker_init_fn=_single_thread_worker,
                                         persistent_workers=False)
    return iter(loader)
