"""The toy CLIP's training settings: every field is a flag of `scripts/train_toy_clip.py`.

What each default was measured against (past runs, what was tried) is in
`data/toy_clip/MODEL_CARD.md`, section "Experiment history"; the notes here say why a knob exists.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    out: str = "data/toy_clip"
    seed: int = 0
    steps: int = 8000
    minutes: float = 17.5  # cap of the vision and CLIP stages (after the teacher); stops early and says so
    batch: int = 64
    swap_fraction: float = 0.5  # part of the batch that gets the attribute-contrast loss
    swap_weight: float = 1.0
    swap_colour_p: float = 0.35  # attribute-contrast draws: colour this, shape up to 0.8, texture the rest
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: int = 50
    # One thread: on a busy 2-core machine oversubscribed OpenMP threads spin against each other
    # and a step gets several times slower.
    threads: int = 1
    # architecture
    image_size: int = 64
    # Patch 8 (64 tokens): a coarser token grid makes the editor's recolour edits coarse.
    patch_size: int = 8
    vision_width: int = 64
    vision_layers: int = 4
    text_width: int = 64
    text_layers: int = 2
    heads: int = 4
    projection_dim: int = 64
    max_text_length: int = 32
    render_scale: float = 1.5
    grayscale_p: float = 0.08
    # Feature distillation from a small CNN (`teacher.ShapeTeacher`), trained first for
    # `teacher_steps` on the shape labels of single-object scenes: a ViT with a linear patch
    # embedding learns colour-invariant outlines slowly, so its layer-`distill_layer` patch tokens
    # regress onto the CNN's features pooled to the patch grid. The teacher and the projection
    # are not saved.
    teacher_steps: int = 1000
    teacher_lr: float = 2e-3
    distill_weight: float = 1.0
    distill_layer: int = 2
    # A linear shape classifier on the pooled vision output (training only, not saved), on
    # single-object scenes: distillation alone teaches the early tokens the teacher's features
    # but does not carry shape to the contrastive embedding.
    shape_head_weight: float = 2.0
    # -1: the classifier reads the pooled (CLS) output; k >= 1: the mean patch token after k
    # blocks (see `losses.shape_logits`).
    shape_head_layer: int = -1
    # Vision stage: before the contrastive stage, the vision tower alone trains for
    # `vision_steps` on the teacher's kind of batches (single objects, mirrored only) with the
    # distillation and the shape head (+ the CLS attention term): cheap steps (no text tower)
    # on clean data. Alone it makes the CLS attend to the outline and rate a blue background
    # almost as a blue object; the binding negatives and the CLS attention term repair that.
    vision_steps: int = 1500
    # Smallest object size (fraction of the side) in the teacher's and the vision stage's
    # single-object scenes (largest 0.34). The world's single objects are 0.2-0.34, but the
    # two-object scenes' are 0.13-0.22: this lets the shape teacher see objects of that size.
    teacher_min_size: float = 0.13
    # Binding negatives: for up to `binding_count` single-object scenes per batch, the text of the
    # scene with its object recoloured to c must pick that image over the original and over the
    # original with its background painted c (`data.binding_negatives`), weight `binding_weight`.
    binding_count: int = 8
    binding_weight: float = 1.0
    # Colour mixing (needs binding_count > 0): each binding scene's original and recoloured views
    # blended with t ~ U(0, 1) (the object's colour moves from c0 to c) must split the two colour
    # texts (1 - t, t) (soft cross-entropy): the image's similarity to "c" grows along the path
    # from c0 to c, which is the direction a recolour edit moves the pixels. Off: it made the
    # recolour edits worse.
    colour_mix_weight: float = 0.0
    # CLS attention on the objects (`losses.cls_attention_on_objects`): -log of the share of the
    # last block's head-averaged CLS attention over the patches that falls on the objects
    # (weighted by how much of each patch they cover), in the vision and CLIP stages. The editor's
    # relevancy map (bootstrap) is built from these attentions.
    attention_weight: float = 1.0
    # Per-object shape classifier (`losses.object_shape_logits`, training only) in the CLIP stage:
    # the patch tokens after `object_shape_layer` blocks (default: the last block's input, what its
    # CLS query reads), averaged over each object's patch cover (the view's own warp of the exact
    # mask), classify that object's shape, for every object of every scene, two-object ones
    # included (whose objects are smaller, 0.13-0.22, and whose shapes the CLS-level head never
    # sees). Off: it did not raise held-out shape and weakened an edit.
    object_shape_weight: float = 0.0
    object_shape_layer: int = -2
    # 1: data (rendering + views) runs in a worker process next to the training thread;
    # 0: in the training process.
    workers: int = 1
