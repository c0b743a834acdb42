"""Train the toy CLIP: a small `transformers.CLIPModel` learned contrastively on toy-world
images and texts sampled fresh every step.

Stages:
1. teacher (`teacher.train_teacher`): a small CNN learns the shape of single-object scenes
   (supervised, about two minutes);
2. vision stage (`train_vision`, see `TrainConfig.vision_steps`): the vision tower alone, on
   the same kind of single-object scenes, with the distillation, the shape classifier and the
   CLS attention term below (cheap steps: no text tower);
3. CLIP stage (`train`), per step (batch of B freshly rendered scenes, one random true text
   each; `data.make_batch`, loss `losses.batch_loss`):
  * symmetric multi-positive InfoNCE with CLIP's learnable logit scale: a text is a positive
    for every image of the batch it is true of (`text.consistent`), not only its own;
  * attribute-contrast loss: for part of the batch, cross-entropy of the image against texts
    that differ only in one attribute (colour, shape or texture) of one object, which is
    exactly the ranking the editor relies on ("blue circle" vs "red circle");
  * feature distillation: the ViT's patch tokens after `distill_layer` layers, through a
    linear map, regress onto the teacher's feature map pooled to the patch grid;
  * a linear shape classifier (`losses.shape_logits`) on single-object scenes;
  * binding negatives (`data.binding_negatives`): a text naming colour c picks the scene with
    its object recoloured to c over the original and over the original with its background
    painted c;
  * CLS attention on the objects (`losses.cls_attention_on_objects`), which keeps the editor's
    relevancy map on the object.
The teacher, the distillation map and the classifiers are training-only. Images are rendered at
1.5x the model's size and go through `views.TrainingViews`, then CLIP mean/std.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from ..text import ATTRIBUTES
from .config import TrainConfig
from .data import batch_stream
from .losses import batch_loss, cls_attention_on_objects, distillation_loss, shape_logits
from .model import TextEncoder, build_model, normalize_pixels, write_known_words, write_preprocessor_config
from .teacher import ShapeTeacher, train_teacher

logger = logging.getLogger(__name__)


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Linear warmup over `cfg.warmup` steps, then cosine decay to 2% over `progress` in [0, 1]."""
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress)))))


def train_vision(model, teacher: ShapeTeacher, distill_proj: torch.nn.Linear, shape_head: torch.nn.Linear,
                 cfg: TrainConfig) -> dict:
    """The vision stage: `cfg.vision_steps` steps of the vision tower (with `distill_proj` and
    `shape_head`) on fresh single-object teacher batches, distillation + shape head only.
    Returns the final (moving-average) shape accuracy of the head."""
    from tqdm import tqdm

    vision = model.vision_model
    params = list(vision.parameters()) + list(distill_proj.parameters()) + list(shape_head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay)
    accuracy = None
    # steps after the teacher's, so the scenes are new to the teacher's features too
    batches = batch_stream(cfg, first=cfg.teacher_steps, count=cfg.vision_steps, teacher=True)
    for step in tqdm(range(cfg.vision_steps), desc="vision stage", mininterval=10):
        warm = min(1.0, (step + 1) / cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = warm * lr_at(cfg, step / cfg.vision_steps)
        images, labels, cover = next(batches)
        pixels = normalize_pixels(images)
        out = vision(pixel_values=pixels, output_hidden_states=True)
        distill = distillation_loss(out, pixels, teacher, distill_proj, cfg)
        logits = shape_logits(out, shape_head, cfg.shape_head_layer)
        loss = cfg.distill_weight * distill + cfg.shape_head_weight * F.cross_entropy(logits, labels)
        if cfg.attention_weight > 0:
            attention_loss, _ = cls_attention_on_objects(vision, out.hidden_states, cover)
            loss = loss + cfg.attention_weight * attention_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        acc = (logits.argmax(1) == labels).float().mean().item()
        accuracy = acc if accuracy is None else 0.95 * accuracy + 0.05 * acc
        if step % 250 == 0:
            logger.info(f"vision step {step} distill={distill.item():.3f} shape accuracy {accuracy:.3f}")
    del batches
    return {"vision_shape": round(accuracy or 0.0, 4)}


def train(cfg: TrainConfig) -> dict:
    """Train the CNN teacher, then build, train and save the toy CLIP into `cfg.out`.
    Returns a summary dict (also written to `training.json`)."""
    from tqdm import tqdm
    from transformers import CLIPTokenizer

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    teacher, teacher_stats = (None, {})
    if cfg.teacher_steps > 0 and cfg.distill_weight > 0:
        teacher, teacher_stats = train_teacher(cfg)
    teacher_s = time.time() - start
    model = build_model(cfg, out)
    tokenizer = CLIPTokenizer.from_pretrained(str(out))
    encoder = TextEncoder(tokenizer)
    torch.manual_seed(cfg.seed + 1)
    distill_proj = torch.nn.Linear(cfg.vision_width, teacher.width) if teacher is not None else None
    shape_head = torch.nn.Linear(cfg.vision_width, len(ATTRIBUTES["shape"])) if cfg.shape_head_weight > 0 else None
    object_shape_head = (torch.nn.Linear(cfg.vision_width, len(ATTRIBUTES["shape"]))
                         if cfg.object_shape_weight > 0 else None)
    budget_start = time.time()  # the minutes cap covers the vision and CLIP stages
    vision_stats = {}
    if cfg.vision_steps > 0 and distill_proj is not None and shape_head is not None:
        model.train()
        vision_stats = train_vision(model, teacher, distill_proj, shape_head, cfg)
    clip_start = time.time()
    vision_s = clip_start - budget_start
    clip_budget_s = max(1.0, cfg.minutes * 60 - vision_s)  # what the CLIP stage's schedule runs over
    named = list(model.named_parameters())
    for name, extra in (("distill_proj", distill_proj), ("shape_head", shape_head),
                        ("object_shape_head", object_shape_head)):
        if extra is not None:
            named += [(f"{name}.{n}", p) for n, p in extra.named_parameters()]
    decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    model.train()
    done = 0
    ema: dict[str, float] = {}
    batches = batch_stream(cfg, first=0, count=cfg.steps)
    bar = tqdm(range(cfg.steps), desc="toy clip", mininterval=10)
    for step in bar:
        if time.time() - budget_start >= cfg.minutes * 60:
            logger.info(f"stopping at step {step}: the {cfg.minutes} minute cap was reached")
            break
        # The schedule runs on whichever budget is closer to its end, steps or minutes, so a
        # slow (shared) machine still ends with a decayed learning rate. With a generous
        # --minutes the run is a pure function of the seed and the steps.
        progress = max(step / cfg.steps, (time.time() - clip_start) / clip_budget_s)
        warm = min(1.0, (step + 1) / cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = warm * lr_at(cfg, progress)
        batch = next(batches)
        loss, stats = batch_loss(model, encoder, batch, cfg, teacher, distill_proj, shape_head, object_shape_head)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        for k, v in stats.items():
            ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
        done = step + 1
        if step % 10 == 0:
            bar.set_postfix({k: f"{v:.3g}" for k, v in ema.items()})
        if step % 200 == 0:
            losses = " ".join(f"{k}={v:.3f}" for k, v in ema.items())
            logger.info(f"step {step} lr={opt.param_groups[0]['lr']:.2e} {losses} elapsed={time.time() - start:.0f}s")
    del batches
    wall = time.time() - start
    model.eval()
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    write_preprocessor_config(out, cfg.image_size)
    write_known_words(out)
    summary = {"config": asdict(cfg), "steps_done": done, "wall_time_s": round(wall, 1),
               "teacher_time_s": round(teacher_s, 1), "teacher_stats": teacher_stats,
               "vision_time_s": round(vision_s, 1), "vision_stats": vision_stats,
               "final_stats": {k: round(v, 4) for k, v in ema.items()},
               "torch": torch.__version__}
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    logger.info(f"trained the teacher ({teacher_s / 60:.1f} min), the vision stage ({vision_s / 60:.1f} min) "
        f"and {done} "
        f"CLIP steps in {wall / 60:.1f} min in all; "
        f"saved to {out}")
    return summary
