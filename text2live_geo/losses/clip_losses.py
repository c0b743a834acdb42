"""CLIP embedding losses: composition / screen (distance to a text) and directional CLIP."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .options import DirectionalPairs, Distance, TextReduction


def spherical_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """2 * arcsin(|x - y| / 2)^2 for unit vectors `(..., d)` -> `(...)`, in [0, pi^2 / 2]."""
    chord = (F.normalize(x, dim=-1) - F.normalize(y, dim=-1)).norm(dim=-1)
    return 2 * torch.arcsin((chord / 2).clamp(max=1.0)) ** 2


def cosine_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - cos(x, y) for `(..., d)` -> `(...)`, in [0, 2]."""
    return 1 - F.cosine_similarity(x, y, dim=-1)


class TextDistanceLoss(nn.Module):
    """Mean distance between image view embeddings and a text (composition and screen losses).

    forward(view_embeds `(V, d)`, text_embeds `(T, d)`, one row per template) -> scalar.
    `reduction`: "mean_distance" (default, the reference's): the mean over views and templates
    of distance(view, template embedding); "mean_embedding": the mean over views of
    distance(view, normalised mean of the template embeddings).
    `distance`: "spherical" (default) or "cosine".
    """

    def __init__(self, distance: Distance = Distance.spherical,
                 reduction: TextReduction = TextReduction.mean_distance):
        super().__init__()
        if distance not in tuple(Distance):
            raise ValueError(f"unknown distance '{distance}'")
        if reduction not in tuple(TextReduction):
            raise ValueError(f"unknown text reduction '{reduction}'")
        self.distance = spherical_distance if distance == Distance.spherical else cosine_distance
        self.reduction = TextReduction(reduction)

    def forward(self, view_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        text_embeds = text_embeds.to(view_embeds.dtype)
        if self.reduction == TextReduction.mean_embedding:
            target = F.normalize(text_embeds.mean(dim=0, keepdim=True), dim=-1)
            return self.distance(view_embeds, target).mean()
        return self.distance(view_embeds[:, None], text_embeds[None]).mean()  # (V, T) pairs


def pair_by_index(rows: torch.Tensor, count: int) -> torch.Tensor:
    """Cycle `(T, d)` rows to `(count, d)` so row i pairs with view i."""
    index = torch.arange(count, device=rows.device) % rows.shape[0]
    return rows[index]


class DirectionalLoss(nn.Module):
    """Directional CLIP loss (the baseline that IMC replaces).

    forward(image_source `(V, d)`, image_output `(V, d)`, text_source `(T, d)`,
    text_target `(T, d)`) -> scalar 1 - mean cos(dI, dT) in [0, 2], with
    dI = normalise(output - source) per paired view, dT = normalise(target - source) per
    template. `pairs`: "index" (default) pairs view i with template i mod T (templates cycled
    to V); "all" (the reference's) averages over every view-template pair. Identical source
    and output give dI = 0 and a loss of exactly 1 (no direction), with finite gradients.
    """

    def __init__(self, eps: float = 1e-8, pairs: DirectionalPairs = DirectionalPairs.index):
        super().__init__()
        if pairs not in tuple(DirectionalPairs):
            raise ValueError(f"unknown directional pairs '{pairs}'")
        self.eps, self.pairs = eps, DirectionalPairs(pairs)

    def forward(self, image_source, image_output, text_source, text_target) -> torch.Tensor:
        image_direction = F.normalize(image_output - image_source, dim=-1, eps=self.eps)
        text_direction = F.normalize(text_target - text_source, dim=-1, eps=self.eps).to(image_direction.dtype)
        if self.pairs == DirectionalPairs.all:
            return 1 - (image_direction @ text_direction.T).mean()
        text_direction = pair_by_index(text_direction, image_direction.shape[0])
        return 1 - (image_direction * text_direction).sum(dim=-1).mean()
