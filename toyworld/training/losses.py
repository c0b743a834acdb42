"""The toy CLIP's training losses: the CLIP stage's `batch_loss` (contrastive, attribute
contrast, binding negatives, colour mixing) and the terms it shares with the vision stage
(feature distillation, shape classifiers, CLS attention on the objects)."""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import Batch
from .model import TextEncoder, normalize_pixels
from .teacher import ShapeTeacher


def shape_logits(vision_out, shape_head: torch.nn.Linear, layer: int = -1) -> torch.Tensor:
    """The shape classifier's logits: linear on the pooled (CLS) output for `layer` -1, else on
    the layer-normalised mean of the patch tokens after `layer` blocks (like the teacher's head
    on its pooled features). The pooled output is the default: with the early layers the editor's
    edits leaked out of the object (the model card's experiment history has the comparison)."""
    if layer < 0:
        return shape_head(vision_out.pooler_output)
    tokens = vision_out.hidden_states[layer][:, 1:].mean(1)
    return shape_head(F.layer_norm(tokens, tokens.shape[-1:]))


def object_shape_logits(vision_out, cover: torch.Tensor, head: torch.nn.Linear, layer: int = -2) -> torch.Tensor:
    """Per-object shape logits (B, K, n_shapes): the patch tokens after `layer` blocks
    (`hidden_states[layer]`, -2 is the last block's input) averaged with each object's patch cover
    (B, K, P) as weights, layer-normalised, through the linear `head`."""
    tokens = vision_out.hidden_states[layer][:, 1:]  # (B, P, D)
    pooled = (cover @ tokens) / cover.sum(-1, keepdim=True).clamp_min(1e-6)  # (B, K, D)
    return head(F.layer_norm(pooled, pooled.shape[-1:]))


def distillation_loss(vision_out, pixels: torch.Tensor, teacher: ShapeTeacher, distill_proj: torch.nn.Linear,
                      cfg: TrainConfig) -> torch.Tensor:
    """MSE between the patch tokens after `cfg.distill_layer` blocks (hidden_states[0] is the
    embedding), mapped by `distill_proj`, and the teacher's targets for `pixels` (B, 3, S, S)."""
    tokens = vision_out.hidden_states[cfg.distill_layer][:, 1:]
    return F.mse_loss(distill_proj(tokens), teacher.targets(pixels, cfg.image_size // cfg.patch_size))


def cls_attention_on_objects(vision_model, hidden_states, cover: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How much of the last block's CLS attention falls on the objects.

    hidden_states: the vision tower's (L + 1) hidden states (`hidden_states[-2]` (B, 1 + P, D)
    is the last block's input); cover (B, P) in [0, 1] from `patch_cover`. The CLS query's
    attention over the P patch tokens, averaged over heads and renormalised over the patches
    (the CLS key left out), gives mass = sum_p attention_p * cover_p in [0, 1] per image.
    Returns (mean of -log mass, mean mass). The attention is recomputed from the block's own
    layer norm and q/k projections (one query), so the tower can keep its fast attention kernel.
    """
    block = vision_model.encoder.layers[-1]
    attention = block.self_attn
    tokens = block.layer_norm1(hidden_states[-2])
    n, t, _ = tokens.shape
    heads = attention.num_heads
    query = attention.q_proj(tokens[:, :1]).view(n, 1, heads, -1).transpose(1, 2)  # (B, heads, 1, d)
    keys = attention.k_proj(tokens).view(n, t, heads, -1).transpose(1, 2)  # (B, heads, T, d)
    probs = ((query @ keys.transpose(-1, -2)) * attention.scale).softmax(-1)[:, :, 0, 1:].mean(1)  # (B, P)
    mass = (probs * cover).sum(-1) / probs.sum(-1)
    return -torch.log(mass.clamp_min(1e-6)).mean(), mass.mean()


def batch_loss(model, encoder: TextEncoder, batch: Batch, cfg: TrainConfig,
               teacher: ShapeTeacher | None = None, distill_proj: torch.nn.Linear | None = None,
               shape_head: torch.nn.Linear | None = None,
               object_shape_head: torch.nn.Linear | None = None) -> tuple[torch.Tensor, dict]:
    pixels = normalize_pixels(batch.images)
    n_images, n_binding = len(pixels), len(batch.binding_index)
    distill = teacher is not None and cfg.distill_weight > 0
    head = shape_head is not None and cfg.shape_head_weight > 0 and bool((batch.shape_labels >= 0).any())
    vision_in = pixels
    mix = n_binding and batch.mix_t is not None and cfg.colour_mix_weight > 0
    if n_binding:
        extra = [batch.binding_images.flatten(0, 1)]
        if mix:  # the views are linear in the pixels, so blending the views blends the scenes
            t = batch.mix_t.view(-1, 1, 1, 1)
            extra.append((1 - t) * batch.images[batch.binding_index] + t * batch.binding_images[:, 0])
        vision_in = torch.cat([pixels, normalize_pixels(torch.cat(extra))])
    attend = cfg.attention_weight > 0 and batch.object_cover is not None
    per_object = (object_shape_head is not None and cfg.object_shape_weight > 0
                  and batch.object_shape_labels is not None and bool((batch.object_shape_labels >= 0).any()))
    vision = model.vision_model(pixel_values=vision_in, output_hidden_states=distill or attend or per_object
                                or (head and cfg.shape_head_layer >= 0))
    img = F.normalize(model.visual_projection(vision.pooler_output), dim=-1)
    if n_binding:
        binding_img = img[n_images: n_images + 2 * n_binding].unflatten(0, (n_binding, 2))
        mix_img = img[n_images + 2 * n_binding:]
        img = img[:n_images]
        # the distillation and the shape head see the batch's scenes only
        hidden = vision.hidden_states and tuple(h[:n_images] for h in vision.hidden_states)
        vision = SimpleNamespace(pooler_output=vision.pooler_output[:n_images], hidden_states=hidden)
    txt = F.normalize(encoder.features(model, batch.texts), dim=-1)
    scale = model.logit_scale.exp().clamp(max=100.0)
    logits = scale * img @ txt[batch.caption_index].T  # (B images, B texts)
    pos = batch.positives
    neg_inf = torch.finfo(logits.dtype).min
    i2t = torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~pos, neg_inf), 1)
    t2i = torch.logsumexp(logits, 0) - torch.logsumexp(logits.masked_fill(~pos, neg_inf), 0)
    contrastive = 0.5 * (i2t.mean() + t2i.mean())
    swap_losses, stats = [], {"contrastive": contrastive.item(), "scale": scale.item()}
    for a, ims in batch.swap_images.items():
        sl = scale * (img[ims].unsqueeze(1) * txt[batch.swap_texts[a]]).sum(-1)
        sl = sl.masked_fill(~batch.swap_valid[a], neg_inf)
        loss_a = F.cross_entropy(sl, batch.swap_targets[a], reduction="sum")
        swap_losses.append(loss_a)
        stats[f"acc_{a}"] = (sl.argmax(1) == batch.swap_targets[a]).float().mean().item()
    swap = torch.stack(swap_losses).sum() / max(1, sum(len(v) for v in batch.swap_images.values()))
    stats["swap"] = swap.item()
    total = contrastive + cfg.swap_weight * swap
    if n_binding:
        # candidates per scene: original, recoloured (the target), background painted
        candidates = torch.cat([img[batch.binding_index].unsqueeze(1), binding_img], 1)
        binding_logits = scale * (candidates * txt[batch.binding_text].unsqueeze(1)).sum(-1)
        target = torch.ones(n_binding, dtype=torch.long)
        total = total + cfg.binding_weight * F.cross_entropy(binding_logits, target)
        stats["acc_binding"] = (binding_logits.argmax(1) == 1).float().mean().item()
    if mix:
        pair = torch.stack([txt[batch.binding_source_text], txt[batch.binding_text]], 1)  # (k, 2, D)
        mix_logits = scale * (mix_img.unsqueeze(1) * pair).sum(-1)
        mix_loss = F.cross_entropy(mix_logits, torch.stack([1 - batch.mix_t, batch.mix_t], 1))
        stats["colour_mix"] = mix_loss.item()
        total = total + cfg.colour_mix_weight * mix_loss
    if distill:
        distill_loss = distillation_loss(vision, pixels, teacher, distill_proj, cfg)
        stats["distill"] = distill_loss.item()
        total = total + cfg.distill_weight * distill_loss
    if attend:
        attention_loss, mass = cls_attention_on_objects(model.vision_model, vision.hidden_states, batch.object_cover)
        stats["cls_on_object"] = mass.item()
        total = total + cfg.attention_weight * attention_loss
    labels = batch.shape_labels
    if head:
        logits = shape_logits(vision, shape_head, cfg.shape_head_layer)
        stats["head_shape"] = (logits.argmax(1) == labels)[labels >= 0].float().mean().item()
        total = total + cfg.shape_head_weight * F.cross_entropy(logits, labels, ignore_index=-100)
    if per_object:
        labels = batch.object_shape_labels.flatten()
        logits = object_shape_logits(vision, batch.each_object_cover, object_shape_head,
                                     cfg.object_shape_layer).flatten(0, 1)
        stats["object_shape"] = (logits.argmax(1) == labels)[labels >= 0].float().mean().item()
        total = total + cfg.object_shape_weight * F.cross_entropy(logits, labels, ignore_index=-100)
    return total, stats
