"""Structure loss: keep the token self-similarity of the input."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def self_similarity(tokens: torch.Tensor) -> torch.Tensor:
    """Cosine self-similarity `(B, N, C)` -> `(B, N, N)` in [-1, 1]."""
    unit = F.normalize(tokens.float(), dim=-1)
    return unit @ unit.transpose(1, 2)


class StructureLoss(nn.Module):
    """MSE between token self-similarity matrices of input and output.

    forward(input_tokens `(B, N, C)`, output_tokens `(B, N, C)`) -> scalar >= 0; 0 when the
    token sets are equal (or differ by a per-token positive scale).
    """

    def forward(self, input_tokens: torch.Tensor, output_tokens: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self_similarity(output_tokens), self_similarity(input_tokens).detach())
