"""Alpha regularisers: sparsity (L1 + pseudo-L0) and relevancy bootstrap."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pseudo_l0(alpha: torch.Tensor) -> torch.Tensor:
    """mean(2 * (sigmoid(5 a) - 0.5)) for alpha in [0, 1]; 0 for all-zero alpha."""
    return (2 * (torch.sigmoid(5 * alpha) - 0.5)).mean()


class SparsityLoss(nn.Module):
    """l1_weight * mean|a| + l0_weight * pseudo_l0(a) for alpha `(B, 1, H, W)` in [0, 1] -> scalar."""

    def __init__(self, l1_weight: float = 0.01, l0_weight: float = 0.01):
        super().__init__()
        self.l1_weight, self.l0_weight = l1_weight, l0_weight

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        return self.l1_weight * alpha.abs().mean() + self.l0_weight * pseudo_l0(alpha)


class BootstrapLoss(nn.Module):
    """MSE(alpha, relevancy) for alpha and relevancy `(B, 1, H, W)` in [0, 1] -> scalar."""

    def forward(self, alpha: torch.Tensor, relevancy: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(alpha, relevancy.detach().to(alpha.dtype))
