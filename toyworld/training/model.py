"""The toy CLIP model: building a fresh one, saving its image processor config, and the
pixel normalisation, image and text embeddings that training and evaluation share."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from text2live_geo.clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from ..world import VOCABULARY, known_words
from .config import TrainConfig


def normalize_pixels(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(OPENAI_CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def image_features(model, images: torch.Tensor) -> torch.Tensor:
    """Projected image embeddings of images in [0, 1] (B, 3, S, S) at the model's size."""
    out = model.vision_model(pixel_values=normalize_pixels(images))
    return model.visual_projection(out.pooler_output)


class TextEncoder:
    """Tokenises (with a cache) and embeds texts."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[str, list[int]] = {}
        self.pad = tokenizer.pad_token_id

    def ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, ids in zip(missing, self.tokenizer(missing)["input_ids"]):
                self.cache[t] = ids
        rows = [self.cache[t] for t in texts]
        n = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), n), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return input_ids, mask

    def features(self, model, texts: list[str]) -> torch.Tensor:
        input_ids, mask = self.ids(texts)
        out = model.text_model(input_ids=input_ids, attention_mask=mask)
        return model.text_projection(out.pooler_output)


def sincos_position_embedding(grid: int, width: int, cls: bool = True) -> torch.Tensor:
    """2D sine-cosine position embeddings (MAE / MoCo v3), with a zero row for CLS first."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                            indexing="ij")
    out = []
    for pos in (xs.reshape(-1), ys.reshape(-1)):
        angle = pos[:, None] * omega[None]
        out += [torch.sin(angle), torch.cos(angle)]
    emb = torch.cat(out, 1)
    emb = torch.cat([emb, torch.zeros(grid * grid, width - emb.shape[1], dtype=emb.dtype)], 1)
    if cls:
        emb = torch.cat([torch.zeros(1, width, dtype=emb.dtype), emb], 0)
    return emb.float()


def build_model(cfg: TrainConfig, folder: Path):
    """A fresh CLIPModel (via `tiny_clip.build_clip`) whose vision position embeddings start
    as 2D sine-cosine (still learnable), which makes shape learnable in few steps."""
    from text2live_geo.tiny_clip import build_clip

    model = build_clip(
        folder, VOCABULARY, image_size=cfg.image_size, patch_size=cfg.patch_size,
        vision_width=cfg.vision_width, vision_layers=cfg.vision_layers, text_width=cfg.text_width,
        text_layers=cfg.text_layers, heads=cfg.heads, projection_dim=cfg.projection_dim,
        max_text_length=cfg.max_text_length, seed=cfg.seed,
    )
    emb = model.vision_model.embeddings.position_embedding
    with torch.no_grad():
        sincos = sincos_position_embedding(cfg.image_size // cfg.patch_size, cfg.vision_width)
        emb.weight.copy_(0.2 * sincos)  # std about 0.14, comparable to the patch embeddings
    return model


def write_preprocessor_config(folder: Path, size: int) -> None:
    """A CLIPImageProcessor-compatible preprocessor_config.json (resize + centre crop to the
    model's size, CLIP mean/std)."""
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": size},
        "resample": 3, "do_center_crop": True, "crop_size": {"height": size, "width": size},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD), "do_convert_rgb": True,
    }, indent=2))


KNOWN_WORDS_FILE = "known_words.json"


def write_known_words(folder: Path | str) -> None:
    """`known_words.json` in a toy CLIP folder: the words it saw in training, grouped
    (`world.known_words`). The editor (`text2live_geo.clip`) reads it to warn about words of an
    edit's texts the model never saw, which its tokenizer splits into letters."""
    (Path(folder) / KNOWN_WORDS_FILE).write_text(json.dumps(
        {"model": "toy CLIP", **known_words()}, indent=2) + "\n")
