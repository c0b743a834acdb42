"""Zero-shot evaluation of a CLIP on held-out toy-world scenes.

Held-out scenes are `sample_scene(seed)` for integer seeds from `HELD_OUT_SEED` on; training
draws its scenes from `np.random.default_rng([seed, 1, step])` streams, so they never
coincide. Scenes are rendered at `render_size` and resized (bilinear, antialiased) to the
model's image size, as the editor resizes its views.

Accuracies (object 0 of each scene; wrong candidates that happen to be true of the scene,
e.g. the other object's colour, are excluded):
  colour / shape / texture: the full caption against captions differing only in that attribute;
  colour_prompt / shape_prompt: single-object scenes, editor-style prompts ("red circle")
      embedded as the mean over the 14 Text2LIVE templates, against the other values;
  colour_pair: the true caption ranked above one random wrong-colour caption.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .text import ATTRIBUTES, attribute_variants, describe, phrase_of
from .training.model import TextEncoder, image_features
from .world import TEXT_TEMPLATES, Scene, sample_scene

HELD_OUT_SEED = 1_000_000


def held_out_scenes(n: int, seed: int = HELD_OUT_SEED, render_size: int = 128) -> list[Scene]:
    return [sample_scene(seed + i, size=render_size) for i in range(n)]


def model_images(scenes: Sequence[Scene], size: int) -> torch.Tensor:
    images = torch.stack([s.image for s in scenes])
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return images.clamp(0, 1)


class _Embedder:
    def __init__(self, model, tokenizer, batch: int = 512):
        self.model, self.encoder, self.batch = model, TextEncoder(tokenizer), batch
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for i in range(0, len(missing), self.batch):
            chunk = missing[i: i + self.batch]
            feats = F.normalize(self.encoder.features(self.model, chunk), dim=-1)
            self.cache.update(zip(chunk, feats))
        return torch.stack([self.cache[t] for t in texts])

    def prompt(self, phrase: str) -> torch.Tensor:
        e = self([t.format(phrase) for t in TEXT_TEMPLATES]).mean(0)
        return F.normalize(e, dim=-1)


@torch.no_grad()
def evaluate(model, tokenizer, n: int = 500, seed: int = HELD_OUT_SEED, render_size: int = 128,
             batch: int = 128) -> dict[str, float]:
    """Zero-shot accuracies of `model` on `n` held-out scenes (see the module docstring)."""
    model.eval()
    size = model.config.vision_config.image_size
    scenes = held_out_scenes(n, seed, render_size)
    img = torch.cat([F.normalize(image_features(model, model_images(scenes[i: i + batch], size)), dim=-1)
                     for i in range(0, n, batch)])
    embed = _Embedder(model, tokenizer)
    rng = np.random.default_rng(seed)
    hits: dict[str, list[bool]] = {k: [] for k in
                                   ("colour", "shape", "texture", "colour_prompt", "shape_prompt", "colour_pair")}
    for i, scene in enumerate(scenes):
        for attribute in ("colour", "shape", "texture"):
            variants, target, valid = attribute_variants(scene.spec, attribute, 0, "caption")
            sims = embed([v.text for v in variants]) @ img[i]
            sims[~torch.tensor(valid)] = -torch.inf
            hits[attribute].append(int(sims.argmax()) == target)
            if attribute == "colour":
                wrong = [k for k, ok in enumerate(valid) if ok and k != target]
                k = wrong[rng.integers(len(wrong))]
                hits["colour_pair"].append(bool(sims[target] > sims[k]))
            if attribute in ("colour", "shape") and len(scene.objects) == 1:
                d = describe(scene.objects[0])
                slot = 0 if attribute == "colour" else 2
                prompts = []
                for value in ATTRIBUTES[attribute]:
                    dd = list(d)
                    dd[slot] = value
                    prompts.append(embed.prompt(phrase_of(tuple(dd))))
                sims = torch.stack(prompts) @ img[i]
                hits[f"{attribute}_prompt"].append(int(sims.argmax()) == target)
    result = {k: float(np.mean(v)) for k, v in hits.items()}
    result["n"] = n
    result["n_single_object"] = len(hits["colour_prompt"])
    return result


def load(folder: str):
    """Load a saved toy CLIP (model in float32, eval mode) and its tokenizer."""
    from transformers import CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    return model, tokenizer
