"""The toy CLIP's training pieces (toyworld/training/): batches, the CNN teacher,
the feature-distillation term, the vision stage and a tiny run of all stages. The full run is a
script (scripts/train_toy_clip.py); these check its parts on tiny settings."""
from __future__ import annotations

import math

import pytest
import torch

from toyworld.text import consistent
from toyworld.training import TrainConfig, train
from toyworld.training.data import batch_stream, binding_negatives, make_batch, make_teacher_batch, patch_cover
from toyworld.training.loop import train_vision
from toyworld.training.losses import batch_loss, cls_attention_on_objects, object_shape_logits, shape_logits
from toyworld.training.model import TextEncoder, build_model, image_features, normalize_pixels
from toyworld.training.teacher import ShapeTeacher
from toyworld.training.views import make_views
from toyworld.world import COLOURS, SHAPES, allowed_colours, render_scene, sample_spec

TINY = dict(batch=12, image_size=32, patch_size=8, vision_width=32, vision_layers=3, text_width=32, text_layers=1,
            heads=2, projection_dim=16, render_scale=1.0)


def test_batches_are_a_function_of_seed_and_step_and_stream_in_order():
    cfg = TrainConfig(**TINY, workers=0)
    first = make_batch(cfg, 3, make_views(cfg.image_size))
    again = make_batch(cfg, 3, make_views(cfg.image_size))
    other = make_batch(cfg, 4, make_views(cfg.image_size))
    assert torch.equal(first.images, again.images) and first.texts == again.texts
    assert not torch.equal(first.images, other.images)
    assert first.images.shape == (12, 3, 32, 32) and first.images.min() >= 0 and first.images.max() <= 1
    # the worker process yields exactly the batches of steps 3, 4 in that order
    streamed = list(batch_stream(TrainConfig(**TINY, workers=1), first=3, count=2))
    assert torch.equal(streamed[0].images, first.images) and torch.equal(streamed[1].images, other.images)


def test_binding_negatives_recolour_the_object_or_paint_the_background():
    import numpy as np

    for seed in range(6):
        scene = render_scene(sample_spec(seed, n_objects=1), 48)
        recoloured, painted, text, source_text = binding_negatives(scene, np.random.default_rng(seed))
        inside = scene.masks[0]
        changed_in = (recoloured != scene.image).any(0)
        # the recoloured image differs from the original inside the object only, the painted one
        # outside it only, and there it is flat in the new colour, the one the text names
        assert not changed_in[~inside].any() and changed_in[inside].float().mean() > 0.9
        assert torch.equal(painted[:, inside], scene.image[:, inside])
        colour = next(c for c in COLOURS if torch.allclose(painted[:, ~inside][:, 0], torch.tensor(COLOURS[c])))
        assert torch.allclose(painted[:, ~inside], torch.tensor(COLOURS[colour]).view(3, 1))
        obj = scene.spec.objects[0]
        assert colour != obj.colour and colour in allowed_colours(scene.spec.background.colour)
        assert text.objects[0][0] == colour and colour in text.text
        assert consistent(scene.spec.with_object(0, colour=colour), text) and not consistent(scene.spec, text)


def test_batch_binding_pairs_share_their_scene_view(tmp_path):
    cfg = TrainConfig(**TINY, workers=0, binding_count=3)
    batch = make_batch(cfg, 2, make_views(cfg.image_size))
    plain = make_batch(TrainConfig(**TINY, workers=0, binding_count=0), 2, make_views(cfg.image_size))
    # the binding pairs are extra: the batch's own images are those of the run without them
    assert torch.equal(batch.images, plain.images) and batch.binding_images.shape == (3, 2, 3, 32, 32)
    for k, i in enumerate(batch.binding_index):
        original = batch.images[i]
        recolour_changed = (batch.binding_images[k, 0] - original).abs().amax(0) > 0.1
        paint_changed = (batch.binding_images[k, 1] - original).abs().amax(0) > 0.1
        # same view: the object changed in one, the background in the other, barely overlapping
        # (resampled edge pixels mix both)
        assert recolour_changed.any() and paint_changed.any()
        overlap = (recolour_changed & paint_changed).sum() / (recolour_changed | paint_changed).sum()
        assert overlap < 0.15
    model = build_model(cfg, tmp_path / "clip")
    from transformers import CLIPTokenizer

    encoder = TextEncoder(CLIPTokenizer.from_pretrained(str(tmp_path / "clip")))
    total, stats = batch_loss(model, encoder, batch, cfg)
    plain_total, _ = batch_loss(model, encoder, plain, cfg)
    # the binding term: cross-entropy of the recoloured image among (original, recoloured, painted)
    candidates = torch.cat([batch.images[batch.binding_index].unsqueeze(1), batch.binding_images], 1)
    img = torch.nn.functional.normalize(image_features(model, candidates.flatten(0, 1)), dim=-1)
    txt = torch.nn.functional.normalize(encoder.features(model, [batch.texts[t] for t in batch.binding_text]), dim=-1)
    logits = model.logit_scale.exp() * (img.unflatten(0, (3, 3)) * txt.unsqueeze(1)).sum(-1)
    expected = torch.nn.functional.cross_entropy(logits, torch.ones(3, dtype=torch.long))
    assert total.item() == pytest.approx(plain_total.item() + cfg.binding_weight * expected.item(), rel=1e-4)
    assert 0.0 <= stats["acc_binding"] <= 1.0
    assert batch.mix_t is None and "colour_mix" not in stats

    # colour mixing: the same scenes, each blend of original and recoloured view must split the
    # two colour texts (1 - t, t)
    mix_cfg = TrainConfig(**TINY, workers=0, binding_count=3, colour_mix_weight=0.5)
    mixed_batch = make_batch(mix_cfg, 2, make_views(cfg.image_size))
    assert torch.equal(mixed_batch.binding_images, batch.binding_images)
    t = mixed_batch.mix_t
    assert t.shape == (3,) and t.min() >= 0 and t.max() <= 1
    mix_total, mix_stats = batch_loss(model, encoder, mixed_batch, mix_cfg)
    weight = t.view(3, 1, 1, 1)
    blend = (1 - weight) * batch.images[batch.binding_index] + weight * batch.binding_images[:, 0]
    blend_img = torch.nn.functional.normalize(image_features(model, blend), dim=-1)
    texts = [[mixed_batch.texts[a], mixed_batch.texts[b]]
             for a, b in zip(mixed_batch.binding_source_text, mixed_batch.binding_text)]
    for source, target in texts:  # the same text but for the colour word (and its article)
        diff = [(a, b) for a, b in zip(source.split(), target.split()) if a != b and {a, b} != {"a", "an"}]
        assert len(source.split()) == len(target.split()) and len(diff) == 1
        assert diff[0][0] in COLOURS and diff[0][1] in COLOURS
    pair = torch.nn.functional.normalize(encoder.features(model, sum(texts, [])), dim=-1).unflatten(0, (3, 2))
    mix_logits = model.logit_scale.exp() * (blend_img.unsqueeze(1) * pair).sum(-1)
    soft = -(torch.stack([1 - t, t], 1) * mix_logits.log_softmax(1)).sum(1).mean()
    assert mix_stats["colour_mix"] == pytest.approx(soft.item(), rel=1e-4)
    assert mix_total.item() == pytest.approx(total.item() + 0.5 * soft.item(), rel=1e-4)


def test_patch_cover_is_the_covered_share_of_each_patch():
    masks = torch.zeros(1, 16, 16)
    masks[0, 2:8, 4:16] = 1  # rows 2-7, columns 4-15 of 8-pixel patches
    cover = patch_cover(masks, 8)
    assert cover.shape == (1, 4)  # row-major 2 x 2 grid, the ViT's token order
    assert torch.allclose(cover[0], torch.tensor([6 * 4 / 64, 6 * 8 / 64, 0.0, 0.0]))


def test_batch_object_cover_follows_the_view():
    cfg = TrainConfig(**TINY, workers=0, attention_weight=1.0)
    batch = make_batch(cfg, 0, make_views(cfg.image_size))
    cover = batch.object_cover
    assert cover.shape == (12, 16) and cover.min() >= 0 and cover.max() <= 1 and (cover.sum(1) > 0).all()
    # patches the objects fill differ from the image's corner (background) colour more than
    # patches they miss
    patches = torch.nn.functional.avg_pool2d(batch.images, 8).flatten(2)  # (B, 3, P)
    corner = batch.images[:, :, :2, :2].mean((2, 3)).unsqueeze(-1)
    distance = (patches - corner).norm(dim=1)
    filled, empty = distance[cover > 0.99], distance[cover < 0.01]
    assert filled.mean() > empty.mean() + 0.1
    assert make_batch(TrainConfig(**TINY, workers=0, attention_weight=0.0), 0,
                      make_views(cfg.image_size)).object_cover is None


def test_batch_each_object_cover_and_shape_labels():
    import numpy as np

    cfg = TrainConfig(**TINY, workers=0, object_shape_weight=1.0)
    batch = make_batch(cfg, 1, make_views(cfg.image_size))
    each, labels = batch.each_object_cover, batch.object_shape_labels
    assert each.shape == (12, 2, 16) and labels.shape == (12, 2)
    # objects never overlap and the warp is linear in the mask: the objects' covers add up to the union's
    assert torch.allclose(each.sum(1), batch.object_cover, atol=1e-5)
    rng = np.random.default_rng([cfg.seed, 1, 1])  # make_batch's first draws are the scene specs
    specs = [sample_spec(rng) for _ in range(cfg.batch)]
    assert {len(s.objects) for s in specs} == {1, 2}
    for i, spec in enumerate(specs):
        for k in range(2):
            if k >= len(spec.objects):
                assert labels[i, k] == -100 and each[i, k].sum() == 0
            elif each[i, k].sum() < 0.5:  # (almost) cropped out of the view
                assert labels[i, k] == -100
            else:
                assert labels[i, k] == SHAPES.index(spec.objects[k].shape)
    assert (labels >= 0).sum() > cfg.batch
    assert make_batch(TrainConfig(**TINY, workers=0), 1, make_views(cfg.image_size)).object_shape_labels is None


def test_batch_loss_object_shape_head_pools_each_object(tmp_path):
    from transformers import CLIPTokenizer

    cfg = TrainConfig(**TINY, workers=0, object_shape_weight=0.7, attention_weight=0.0, binding_count=2)
    model = build_model(cfg, tmp_path / "clip")
    encoder = TextEncoder(CLIPTokenizer.from_pretrained(str(tmp_path / "clip")))
    batch = make_batch(cfg, 1, make_views(cfg.image_size))
    torch.manual_seed(0)
    head = torch.nn.Linear(cfg.vision_width, len(SHAPES))
    plain, _ = batch_loss(model, encoder, batch, cfg)
    total, stats = batch_loss(model, encoder, batch, cfg, object_shape_head=head)
    out = model.vision_model(pixel_values=normalize_pixels(batch.images), output_hidden_states=True)
    tokens = out.hidden_states[-2][:, 1:]  # the last block's input, without CLS
    logits, targets = [], []
    for i in range(cfg.batch):
        for k in range(2):
            if batch.object_shape_labels[i, k] >= 0:
                w = batch.each_object_cover[i, k]
                pooled = (w[:, None] * tokens[i]).sum(0) / w.sum()
                logits.append(head(torch.nn.functional.layer_norm(pooled, (cfg.vision_width,))))
                targets.append(batch.object_shape_labels[i, k])
    expected = torch.nn.functional.cross_entropy(torch.stack(logits), torch.stack(targets))
    assert total.item() == pytest.approx(plain.item() + 0.7 * expected.item(), rel=1e-5)
    assert 0.0 <= stats["object_shape"] <= 1.0
    direct = object_shape_logits(out, batch.each_object_cover, head)
    assert direct.shape == (cfg.batch, 2, len(SHAPES))


def test_cls_attention_on_objects_matches_the_blocks_attention(tmp_path):
    cfg = TrainConfig(**TINY, workers=0, attention_weight=1.0)
    model = build_model(cfg, tmp_path / "clip")
    model.set_attn_implementation("eager")
    batch = make_batch(cfg, 0, make_views(cfg.image_size))
    out = model.vision_model(pixel_values=normalize_pixels(batch.images), output_hidden_states=True,
                             output_attentions=True)
    loss, mass = cls_attention_on_objects(model.vision_model, out.hidden_states, batch.object_cover)
    cls_to_patches = out.attentions[-1][:, :, 0, 1:].mean(1)  # (B, P), the heads' mean
    expected = (cls_to_patches * batch.object_cover).sum(-1) / cls_to_patches.sum(-1)
    assert mass.item() == pytest.approx(expected.mean().item(), rel=1e-5)
    assert loss.item() == pytest.approx(-torch.log(expected).mean().item(), rel=1e-5)
    # a few steps on this term alone move the CLS attention onto the objects
    opt = torch.optim.Adam(model.vision_model.parameters(), lr=3e-3)
    for _ in range(30):
        out = model.vision_model(pixel_values=normalize_pixels(batch.images), output_hidden_states=True)
        loss, after = cls_attention_on_objects(model.vision_model, out.hidden_states, batch.object_cover)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert after.item() > mass.item() + 0.2


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
    images, labels, cover = make_teacher_batch(cfg, 0)
    again, _, _ = make_teacher_batch(cfg, 0)
    assert images.shape == (12, 3, 32, 32) and torch.equal(images, again)
    assert labels.shape == (12,) and labels.min() >= 0 and labels.max() < 6
    assert cover.shape == (12, 16) and (cover.sum(1) > 0).all()  # 4 x 4 patches, each scene's object
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


def test_teacher_batch_object_sizes_reach_down_to_teacher_min_size():
    # same draws, only the size range differs: the same shapes, drawn smaller
    _, small_labels, small_cover = make_teacher_batch(TrainConfig(**TINY, teacher_min_size=0.13), 0)
    _, large_labels, large_cover = make_teacher_batch(TrainConfig(**TINY, teacher_min_size=0.2), 0)
    assert torch.equal(small_labels, large_labels)
    small_area, large_area = small_cover.sum(1), large_cover.sum(1)
    assert (small_area <= large_area + 0.05).all() and small_area.mean() < 0.9 * large_area.mean()


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
    images, labels, _ = make_teacher_batch(cfg, cfg.teacher_steps)
    distill0, head0 = _vision_stage_loss(model, teacher, proj, head, cfg, images, labels)
    stats = train_vision(model, teacher, proj, head, cfg)
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
    summary = train(cfg)
    assert summary["steps_done"] == 6
    assert set(summary["teacher_stats"]) == {"teacher_shape"} and set(summary["vision_stats"]) == {"vision_shape"}
    assert summary["wall_time_s"] >= summary["teacher_time_s"] + summary["vision_time_s"]
    model = CLIPModel.from_pretrained(str(out))
    assert model.config.vision_config.image_size == 32 and model.config.vision_config.patch_size == 8
    assert (out / "training.json").exists() and (out / "preprocessor_config.json").exists()
    assert (out / "known_words.json").exists()
