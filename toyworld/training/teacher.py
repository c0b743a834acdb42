"""The CNN shape teacher: a small CNN trained (supervised, before the CLIP) on the shapes of
single-object scenes, whose feature map is the target of the CLIP's feature distillation."""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..text import ATTRIBUTES
from .config import TrainConfig
from .data import batch_stream
from .model import normalize_pixels

logger = logging.getLogger(__name__)


class ShapeTeacher(torch.nn.Module):
    """A small CNN trained (supervised, before the CLIP) to classify the shape of single-object
    scenes; its feature map, pooled to the ViT's patch grid, is the target of the CLIP's
    feature distillation. Colour needs no teacher (the CLIP learns it alone). Training only;
    not saved.

    `features`: (B, 3, S, S) CLIP-normalised pixels -> (B, width, S/8, S/8)."""

    def __init__(self, width: int = 64):
        super().__init__()
        act = torch.nn.GELU
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, 2, 1), act(), torch.nn.Conv2d(32, width, 3, 2, 1), act(),
            torch.nn.Conv2d(width, width, 3, 2, 1), act(), torch.nn.Conv2d(width, width, 3, 1, 1), act())
        self.head = torch.nn.Linear(width, len(ATTRIBUTES["shape"]))
        self.width = width

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.body(pixels)

    def loss(self, pixels: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Cross-entropy of the shape labels (B,) and the batch accuracy."""
        logits = self.head(self.features(pixels).mean((2, 3)))
        return F.cross_entropy(logits, labels), (logits.argmax(1) == labels).float().mean().item()

    def targets(self, pixels: torch.Tensor, grid: int) -> torch.Tensor:
        """Distillation targets: (B, grid * grid, width), layer-normalised per token."""
        with torch.no_grad():
            pooled = F.adaptive_avg_pool2d(self.features(pixels), grid).flatten(2).transpose(1, 2)
            return F.layer_norm(pooled, (self.width,))


def train_teacher(cfg: TrainConfig) -> tuple[ShapeTeacher, dict]:
    """Train the CNN teacher for `cfg.teacher_steps` steps; returns it frozen, with its final
    (moving-average) training accuracy."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed + 11)
    teacher = ShapeTeacher()
    opt = torch.optim.AdamW(teacher.parameters(), lr=cfg.teacher_lr)
    accuracy = None
    batches = batch_stream(cfg, first=0, count=cfg.teacher_steps, teacher=True)
    for step in tqdm(range(cfg.teacher_steps), desc="cnn teacher", mininterval=10):
        images, labels, _ = next(batches)
        loss, acc = teacher.loss(normalize_pixels(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accuracy = acc if accuracy is None else 0.95 * accuracy + 0.05 * acc
        if step % 200 == 0:
            logger.info(f"teacher step {step} shape accuracy {accuracy:.3f}")
    del batches
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, {"teacher_shape": round(accuracy or 0.0, 4)}
