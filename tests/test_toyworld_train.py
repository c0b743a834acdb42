"""The toy CLIP's training pieces (text2live_geo/toyworld/train.py): batches, the CNN teacher,
the feature-distillation term, the vision stage and a tiny run of all stages. The full run is a
script (scripts/train_toy_clip.py); these check its parts on tiny settings."""
from __future__ import annotations

import math

import pytest
import torch

from text2live_geo.toyworld.train import (
    ShapeTeacher, TextEncoder, TrainConfig, batch_loss, batch_stream, build_model, make_batch, make_teacher_batch,
    make_views, normalize_pixels, shape_logits, train, train_vision,
)

TINY = dict(batch=12, image_size=32, patch_size=8, vision_width=32, vision_layers=3, text_width=32, text_layers=1,
            heads=2, projection_dim=16, render_scale=1.0)


def test_batches_are_a_function_of_seed_and_step_and_stream_in_order():
    cfg = TrainConfig(**TINY, workers=0)
    first = make_batch(cfg, 3, make_views(cfg.image_size))
    again = make_batch(cfg, 3, make_views(cfg.image_size))
    other = make_batch(cfg, 4, make_views(cfg.image_size))
    assert torch.equal(first.images, again.images) and first.texts == again.texts
    assert not torch.equal(first.images, other.images)
    assert first.images.shape == (12, 3, 32, 32) and 0 <= first.images.min() and first.images.max() <= 1
    # the worker process yields exactly the batches of steps 3, 4 in that order
    streamed = list(batch_stream(TrainConfig(**TINY, workers=1), first=3, count=2))
    assert torch.equal(streamed[0].images, first.images) and torch.equal(streamed[1].images, other.images)


def test_teacher_targets_are_token_grid_and_normalised():
    torch.manual_seed(0)
    teacher = ShapeTeacher(width=16)
    pixels = torch.randn(2, 3, 64, 64)
    assert teacher.features(pixels).shape == (2, 16, 8, 8)
    targets = teacher.targets(pixels, grid=4)  # 16 px patches of a 64 px image
    assert targets.shape == (2, 16, 16) and not targets.requires_grad
    assert torch.allclose(targets.mean(-1), torch.zeros(2, 16), atol=1e-5)
    # unit variance up to layer norm's eps (the untrained features are small)
    assert torch.allclose(targets.var(-1, unbiased=False), torch.ones(2, 16), atol=0.05)
    # pooling: token (0, 0) is the mean of the feature map's top-left 2 x 2 block
    block = teacher.features(pixels)[:, :, :2, :2].mean((2, 3))
    assert torch.allclose(targets[:, 0], torch.nn.functional.layer_norm(block, (16,)), atol=1e-5)


def test_teacher_batches_and_teacher_fits_them():
    cfg = TrainConfig(**TINY, workers=0)
    images, labels = make_teacher_batch(cfg, 0)
    again, _ = make_teacher_batch(cfg, 0)
    assert images.shape == (12, 3, 32, 32) and torch.equal(images, again)
    assert labels.shape == (12,) and 0 <= labels.min() and labels.max() < 6
    torch.manual_seed(0)
    teacher = ShapeTeacher(width=16)
    opt = torch.optim.AdamW(teacher.parameters(), lr=3e-3)
    pixels = normalize_pixels(images)
    first, _ = teacher.loss(pixels, labels)
    for _ in range(40):  # fit one batch: the loss must fall
        loss, accuracy = teacher.loss(pixels, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first.item() and accuracy > 0.5


def test_batch_loss_with_distillation(tmp_path):
    cfg = TrainConfig(**TINY, workers=0, distill_layer=2)
    model = build_model(cfg, tmp_path / "clip")
    from transformers import CLIPTokenizer

    encoder = TextEncoder(CLIPTokenizer.from_pretrained(str(tmp_path / "clip")))
    batch = make_batch(cfg, 0, make_views(cfg.image_size))
    torch.manual_seed(0)
    teacher = ShapeTeacher(width=16).eval()
    proj = torch.nn.Linear(cfg.vision_width, 16)
    plain, plain_stats = batch_loss(model, encoder, batch, cfg)
    total, stats = batch_loss(model, encoder, batch, cfg, teacher, proj)
    assert "distill" not in plain_stats and stats["distill"] > 0
    assert math.isclose(total.item(), plain.item() + cfg.distill_weight * stats["distill"], rel_tol=1e-5)
    total.backward()
    # the distillation reaches the patch embedding and the projection, not the teacher
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    assert model.vision_model.embeddings.patch_embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    # layers after `distill_layer` get gradient only from the CLIP losses: with weight 0 the
    # distillation term changes nothing
    model.zero_grad()
    zero_cfg = TrainConfig(**TINY, workers=0, distill_weight=0.0)
    loss0, stats0 = batch_loss(model, encoder, batch, zero_cfg, teacher, proj)
    assert "distill" not in stats0 and loss0.item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize("layer", [-1, 2])
def test_batch_loss_shape_head_uses_single_object_scenes_only(tmp_path, layer):
    cfg = TrainConfig(**TINY, workers=0, shape_head_layer=layer)
    model = build_model(cfg, tmp_path / "clip")
    from transformers import CLIPTokenizer

    encoder = TextEncoder(CLIPTokenizer.from_pretrained(str(tmp_path / "clip")))
    batch = make_batch(cfg, 1, make_views(cfg.image_size))
    labels = batch.shape_labels
    assert (labels >= 0).any() and (labels == -100).any()  # step 1 has one- and two-object scenes
    torch.manual_seed(0)
    head = torch.nn.Linear(cfg.vision_width, 6)
    plain, _ = batch_loss(model, encoder, batch, cfg)
    total, stats = batch_loss(model, encoder, batch, cfg, shape_head=head)
    out = model.vision_model(pixel_values=normalize_pixels(batch.images), output_hidden_states=True)
    if layer < 0:  # the pooled (CLS) output
        features = out.pooler_output
    else:  # the layer-normalised mean patch token after `layer` blocks
        features = torch.nn.functional.layer_norm(out.hidden_states[layer][:, 1:].mean(1), (cfg.vision_width,))
    single = labels >= 0
    expected = torch.nn.functional.cross_entropy(head(features[single]), labels[single])
    assert total.item() == pytest.approx(plain.item() + cfg.shape_head_weight * expected.item(), rel=1e-5)
    assert 0.0 <= stats["head_shape"] <= 1.0


def _vision_stage_loss(model, teacher, proj, head, cfg, images, labels):
    pixels = normalize_pixels(images)
    out = model.vision_model(pixel_values=pixels, output_hidden_states=True)
    grid = cfg.image_size // cfg.patch_size
    distill = torch.nn.functional.mse_loss(proj(out.hidden_states[cfg.distill_layer][:, 1:]),
                                           teacher.targets(pixels, grid))
    logits = shape_logits(out, head, cfg.shape_head_layer)
    return distill.item(), torch.nn.functional.cross_entropy(logits, labels).item()


def test_vision_stage_trains_the_vision_tower_only(tmp_path):
    cfg = TrainConfig(**TINY, workers=0, vision_steps=40, teacher_steps=5, warmup=5, distill_layer=2)
    model = build_model(cfg, tmp_path / "clip")
    torch.manual_seed(0)
    teacher = ShapeTeacher(width=16).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    proj, head = torch.nn.Linear(cfg.vision_width, 16), torch.nn.Linear(cfg.vision_width, 6)
    text_before = {n: p.detach().clone() for n, p in model.text_model.named_parameters()}
    embed_before = model.vision_model.embeddings.patch_embedding.weight.detach().clone()
    # its first batch (the stage starts after the teacher's steps)
    images, labels = make_teacher_batch(cfg, cfg.teacher_steps)
    distill0, head0 = _vision_stage_loss(model, teacher, proj, head, cfg, images, labels)
    stats = train_vision(model, teacher, proj, head, cfg, log=lambda _: None)
    distill1, head1 = _vision_stage_loss(model, teacher, proj, head, cfg, images, labels)
    assert distill1 < 0.9 * distill0 and head1 < head0  # both terms fall
    assert 0.0 <= stats["vision_shape"] <= 1.0
    assert not torch.equal(model.vision_model.embeddings.patch_embedding.weight, embed_before)
    assert all(torch.equal(p, text_before[n]) for n, p in model.text_model.named_parameters())


def test_train_runs_all_stages_and_saves_a_loadable_clip(tmp_path):
    from transformers import CLIPModel

    out = tmp_path / "toy_clip"
    cfg = TrainConfig(**TINY, workers=0, out=str(out), teacher_steps=10, vision_steps=10, steps=6, warmup=2,
                      minutes=10.0)
    summary = train(cfg, log=lambda _: None)
    assert summary["steps_done"] == 6
    assert set(summary["teacher_stats"]) == {"teacher_shape"} and set(summary["vision_stats"]) == {"vision_shape"}
    assert summary["wall_time_s"] >= summary["teacher_time_s"] + summary["vision_time_s"]
    model = CLIPModel.from_pretrained(str(out))
    assert model.config.vision_config.image_size == 32 and model.config.vision_config.patch_size == 8
    assert (out / "training.json").exists() and (out / "preprocessor_config.json").exists()
