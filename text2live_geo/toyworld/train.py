"""Train the toy CLIP: a small `transformers.CLIPModel` learned contrastively on toy-world
images and texts sampled fresh every step.

Loss per step (batch of B freshly rendered scenes, one random true text each):
  * symmetric multi-positive InfoNCE with CLIP's learnable logit scale: a text is a positive
    for every image of the batch it is true of (`text.consistent`), not only its own;
  * attribute-contrast loss: for part of the batch, cross-entropy of the image against texts
    that differ only in one attribute (colour, shape or texture) of one object, which is
    exactly the ranking the editor relies on ("blue circle" vs "red circle").
Images are rendered at 1.5x the model's size and go through views like the editor's CLIP
views (kornia: random resized crop 0.6-1 of the side, hflip, affine, perspective, mild
colour jitter with a small hue range, occasional grayscale), then CLIP mean/std.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .text import _SLOT, ATTRIBUTES, TextSpec, attribute_variants, consistent, describe, sample_text
from .world import (
    GREEN_SCREEN, SCREEN_TEMPLATES, TEXT_TEMPLATES, VOCABULARY, render_scene, sample_spec,
)

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class TrainConfig:
    out: str = "data/toy_clip"
    seed: int = 0
    steps: int = 4000
    minutes: float = 13.0  # hard wall-clock cap; training stops early (and says so) when hit
    batch: int = 64
    swap_fraction: float = 0.5  # part of the batch that gets the attribute-contrast loss
    swap_weight: float = 1.0
    swap_colour_p: float = 0.35  # attribute-contrast draws: colour this, shape up to 0.8, texture the rest
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 50
    # One thread: on the shared 2-core machine (3 busy processes) a step took 1.2 s with one
    # thread and 6 s with two (oversubscribed OpenMP threads spin against each other).
    threads: int = 1
    # architecture
    image_size: int = 64
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
    # Curriculum: for the first `curriculum` of the budget (steps or minutes), scenes are one
    # plain object on a flat background under mild views, where shape is easiest to pick up.
    curriculum: float = 0.0  # off by default: with aux heads, shape stayed at chance for 600 steps
    # Auxiliary supervised heads (linear, on the pooled vision output; training only, not
    # saved) for the shape / colour / texture of single-object scenes, weight of their loss.
    aux_weight: float = 0.0  # off by default
    mimetic: bool = False  # mimetic initialisation of the vision attention (see `mimetic_init`)


# ------------------------------------------------------------------------------------------
# Model helpers (used by training and evaluation)
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# Augmentation
# ------------------------------------------------------------------------------------------


class Views:
    """Random CLIP-like views of a batch, in one perspective warp per image (kornia).

    Like the editor's views: a random crop of 0.6-1 of the side (aspect 0.8-1.25), hflip
    p 0.5, affine (rotation 15 degrees, translation 0.1) p 0.8, perspective (distortion 0.4)
    p 0.5, all composed into one homography and applied with a single `warp_perspective`
    (white fill); then colour jitter p 0.7 (brightness, contrast, saturation 0.1; hue only
    0.02 of the circle so colour names stay learnable: 0.1 would turn red into orange or pink).
    """

    def __init__(self, size: int, crop_min: float = 0.6, degrees: float = 15.0, translate: float = 0.1,
                 distortion: float = 0.4, jitter: float = 0.1, hue: float = 0.02):
        self.size, self.crop_min, self.degrees, self.translate = size, crop_min, degrees, translate
        self.distortion, self.jitter, self.hue = distortion, jitter, hue

    def homographies(self, n: int, src_size: int, g: torch.Generator) -> torch.Tensor:
        from kornia.geometry.transform import get_perspective_transform

        def u(*shape, lo=0.0, hi=1.0):
            return lo + (hi - lo) * torch.rand(*shape, generator=g)

        corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]).expand(n, 4, 2).clone()
        # perspective: each corner moves inwards by up to distortion / 2 of the side
        persp = (u(n) < 0.5).float().view(n, 1, 1)
        inward = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
        quad = corners + persp * inward * u(n, 4, 2, hi=self.distortion / 2)
        # affine: rotate about the centre and translate
        aff = (u(n) < 0.8).float()
        theta = aff * u(n, lo=-1, hi=1) * math.radians(self.degrees)
        shift = aff.view(n, 1) * u(n, 2, lo=-self.translate, hi=self.translate)
        c, s = torch.cos(theta).view(n, 1), torch.sin(theta).view(n, 1)
        x, y = quad[..., 0] - 0.5, quad[..., 1] - 0.5
        quad = torch.stack([c * x - s * y + 0.5, s * x + c * y + 0.5], -1) + shift.view(n, 1, 2)
        # hflip
        flip = u(n) < 0.5
        quad[flip, :, 0] = 1 - quad[flip, :, 0]
        # crop window of the source
        side = u(n, lo=self.crop_min, hi=1.0)
        ratio = torch.exp(u(n, lo=math.log(0.8), hi=math.log(1.25)))
        w = (side * ratio.sqrt()).clamp(max=1.0)
        h = (side / ratio.sqrt()).clamp(max=1.0)
        x0, y0 = u(n) * (1 - w), u(n) * (1 - h)
        src = torch.stack([x0.view(n, 1) + w.view(n, 1) * quad[..., 0],
                           y0.view(n, 1) + h.view(n, 1) * quad[..., 1]], -1) * src_size - 0.5
        dst = corners * self.size - 0.5
        return get_perspective_transform(src, dst)

    def colour_matrices(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (3x3 matrix, contrast factor) of the colour jitter."""
        def u(*shape, a=1.0):
            return (2 * torch.rand(*shape, generator=g) - 1) * a

        on = (torch.rand(n, generator=g) < 0.7).float()
        bright = 1 + on * u(n, a=self.jitter)
        contrast = 1 + on * u(n, a=self.jitter)
        sat = 1 + on * u(n, a=self.jitter)
        hue = on * u(n, a=self.hue) * 2 * math.pi
        lum = torch.tensor([0.299, 0.587, 0.114])
        eye = torch.eye(3)
        sat_m = sat.view(n, 1, 1) * eye + (1 - sat.view(n, 1, 1)) * lum.view(1, 1, 3).expand(n, 3, 3)
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        rot = torch.zeros(n, 3, 3)
        rot[:, 0, 0] = 1
        rot[:, 1, 1] = torch.cos(hue)
        rot[:, 1, 2] = -torch.sin(hue)
        rot[:, 2, 1] = torch.sin(hue)
        rot[:, 2, 2] = torch.cos(hue)
        hue_m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
        return bright.view(n, 1, 1) * (hue_m @ sat_m), contrast

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        from kornia.geometry.transform import warp_perspective

        n = images.shape[0]
        H = self.homographies(n, images.shape[-1], g)
        out = warp_perspective(images - 1.0, H, (self.size, self.size), padding_mode="zeros") + 1.0
        m, contrast = self.colour_matrices(n, g)
        out = torch.einsum("nij,njhw->nihw", m, out)
        mean = out.mean((1, 2, 3), keepdim=True)
        out = contrast.view(n, 1, 1, 1) * out + (1 - contrast.view(n, 1, 1, 1)) * mean
        return out.clamp(0, 1)


def make_views(size: int) -> Views:
    return Views(size)


def make_easy_views(size: int) -> Views:
    """Mild views for the curriculum phase (the object stays whole and upright)."""
    return Views(size, crop_min=0.9, degrees=5.0, translate=0.05, distortion=0.1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True).expand_as(images)


# ------------------------------------------------------------------------------------------
# One training batch
# ------------------------------------------------------------------------------------------


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, S, S) in [0, 1], augmented
    texts: list[str]  # unique texts
    caption_index: torch.Tensor  # (B,) index of each image's text in `texts`
    positives: torch.Tensor  # (B, B) image i consistent with the text of image j
    swap_images: dict[str, torch.Tensor]  # attribute -> (n,) image indices
    swap_texts: dict[str, torch.Tensor]  # attribute -> (n, V) indices into `texts`
    swap_targets: dict[str, torch.Tensor]  # attribute -> (n,)
    swap_valid: dict[str, torch.Tensor]  # attribute -> (n, V) bool
    labels: dict[str, torch.Tensor] = None  # attribute -> (B,) index of object 0's value, -100 for 2 objects


def _swap_form(spec, rng):
    v = rng.random()
    if v < 0.35:
        return "caption", "{}"
    if v < 0.8:
        return "template", TEXT_TEMPLATES[rng.integers(len(TEXT_TEMPLATES))]
    if v < 0.92:
        return "article", "{}"
    if spec.background.colour == GREEN_SCREEN:
        return "screen", SCREEN_TEMPLATES[rng.integers(len(SCREEN_TEMPLATES))]
    return "scene", "{}"


def make_batch(cfg: TrainConfig, step: int, views, easy: bool = False) -> Batch:
    """One batch; `easy` (curriculum): one plain object on a flat background per scene."""
    rng = np.random.default_rng([cfg.seed, 1, step])
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    render = int(round(cfg.image_size * cfg.render_scale))
    if easy:
        specs = [sample_spec(rng, n_objects=1, plain_p=1.0).with_background(style="flat")
                 for _ in range(cfg.batch)]
    else:
        specs = [sample_spec(rng) for _ in range(cfg.batch)]
    images = torch.stack([render_scene(s, render).image for s in specs])
    with torch.no_grad():
        images = views(images, g)
    gray = torch.from_numpy(rng.random(cfg.batch) < cfg.grayscale_p)
    if gray.any():
        images[gray] = grayscale(images[gray])

    text_specs: list[TextSpec] = [sample_text(s, rng) for s in specs]
    texts: dict[str, int] = {}

    def idx(t: str) -> int:
        return texts.setdefault(t, len(texts))

    caption_index = torch.tensor([idx(t.text) for t in text_specs])
    positives = torch.tensor([[consistent(s, t) for t in text_specs] for s in specs])

    swap = {a: ([], [], [], []) for a in ("colour", "shape", "texture")}
    n_swap = int(round(cfg.swap_fraction * cfg.batch))
    for i in range(n_swap):
        u = rng.random()
        attribute = "colour" if u < cfg.swap_colour_p else ("shape" if u < 0.8 else "texture")
        if attribute == "colour" and bool(gray[i]):
            attribute = "shape"
        spec = specs[i]
        form, template = _swap_form(spec, rng)
        obj = int(rng.integers(len(spec.objects))) if form != "caption" else int(rng.integers(len(spec.objects)))
        variants, target, valid = attribute_variants(spec, attribute, obj, form, template)
        lists = swap[attribute]
        lists[0].append(i)
        lists[1].append([idx(v.text) for v in variants])
        lists[2].append(target)
        lists[3].append(valid)
    swap_images, swap_texts, swap_targets, swap_valid = {}, {}, {}, {}
    for a, (ims, txs, tg, va) in swap.items():
        if ims:
            swap_images[a] = torch.tensor(ims)
            swap_texts[a] = torch.tensor(txs)
            swap_targets[a] = torch.tensor(tg)
            swap_valid[a] = torch.tensor(va)
    labels = {a: torch.tensor([ATTRIBUTES[a].index(describe(s.objects[0])[_SLOT[a]]) if len(s.objects) == 1
                               else -100 for s in specs]) for a in ("colour", "shape", "texture")}
    return Batch(images, list(texts), caption_index, positives, swap_images, swap_texts, swap_targets, swap_valid,
                 labels)


class AuxHeads(torch.nn.Module):
    """Linear shape / colour / texture classifiers on the pooled vision output (training only)."""

    def __init__(self, width: int):
        super().__init__()
        self.heads = torch.nn.ModuleDict({a: torch.nn.Linear(width, len(v)) for a, v in ATTRIBUTES.items()})

    def forward(self, pooled: torch.Tensor, labels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        losses, stats = [], {}
        for a, head in self.heads.items():
            y = labels[a]
            if (y >= 0).any():
                logits = head(pooled)
                losses.append(F.cross_entropy(logits, y, ignore_index=-100))
                stats[f"aux_{a}"] = (logits.argmax(1) == y)[y >= 0].float().mean().item()
        return (torch.stack(losses).mean() if losses else pooled.sum() * 0), stats


def batch_loss(model, encoder: TextEncoder, batch: Batch, cfg: TrainConfig, aux: Optional[AuxHeads] = None
               ) -> tuple[torch.Tensor, dict]:
    pooled = model.vision_model(pixel_values=normalize_pixels(batch.images)).pooler_output
    img = F.normalize(model.visual_projection(pooled), dim=-1)
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
    if aux is not None and cfg.aux_weight > 0 and batch.labels is not None:
        aux_loss, aux_stats = aux(pooled, batch.labels)
        stats.update(aux_stats)
        total = total + cfg.aux_weight * aux_loss
    return total, stats


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


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


def mimetic_init(vision_model, heads: int, seed: int, alpha1: float = 0.7, beta1: float = 0.7,
                 alpha2: float = 0.4, beta2: float = 0.4) -> None:
    """Mimetic initialisation of self-attention (Trockman & Kolter, 2023): per head,
    W_q^T W_k ~ alpha1 Z + beta1 I (tokens attend to similar tokens, i.e. nearby positions and
    the same object) and W_o W_v ~ alpha2 Z - beta2 I, with Z random (d x d, variance 1/d)."""
    g = torch.Generator().manual_seed(seed + 7)
    for layer in vision_model.encoder.layers:
        att = layer.self_attn
        d = att.q_proj.weight.shape[1]
        k = d // heads
        eye = torch.eye(d)
        with torch.no_grad():
            for h in range(heads):
                rows = slice(h * k, (h + 1) * k)
                z = torch.randn(d, d, generator=g) / math.sqrt(d)
                u, s, vh = torch.linalg.svd(alpha1 * z + beta1 * eye)
                r = s[:k].sqrt()
                att.q_proj.weight[rows] = (u[:, :k] * r).T * (k ** 0.25)  # q is scaled by k^-0.5
                att.k_proj.weight[rows] = (vh[:k].T * r).T * (k ** 0.25)
            z = torch.randn(d, d, generator=g) / math.sqrt(d)
            u, s, vh = torch.linalg.svd(alpha2 * z - beta2 * eye)
            att.out_proj.weight.copy_(u * s.sqrt())
            att.v_proj.weight.copy_(s.sqrt().view(-1, 1) * vh)
            for lin in (att.q_proj, att.k_proj, att.v_proj, att.out_proj):
                lin.bias.zero_()


def build_model(cfg: TrainConfig, folder: Path):
    """A fresh CLIPModel (via `tiny_clip.build_clip`) whose vision position embeddings start
    as 2D sine-cosine (still learnable), which makes shape learnable in few steps."""
    from ..tiny_clip import build_clip

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
    if cfg.mimetic:
        mimetic_init(model.vision_model, cfg.heads, cfg.seed)
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


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Linear warmup over `cfg.warmup` steps, then cosine decay to 2% over `progress` in [0, 1]."""
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress)))))


def train(cfg: TrainConfig, log=print) -> dict:
    """Build, train and save the toy CLIP into `cfg.out`. Returns a summary dict."""
    from tqdm import tqdm
    from transformers import CLIPTokenizer

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg, out)
    tokenizer = CLIPTokenizer.from_pretrained(str(out))
    encoder = TextEncoder(tokenizer)
    views = make_views(cfg.image_size)
    easy_views = make_easy_views(cfg.image_size)
    aux = None
    if cfg.aux_weight > 0:
        torch.manual_seed(cfg.seed + 1)
        aux = AuxHeads(cfg.vision_width)
    named = list(model.named_parameters()) + (list(aux.named_parameters()) if aux is not None else [])
    decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    model.train()
    start = time.time()
    done = 0
    curriculum_steps = 0
    ema: dict[str, float] = {}
    bar = tqdm(range(cfg.steps), desc="toy clip", mininterval=10)
    for step in bar:
        if time.time() - start >= cfg.minutes * 60:
            log(f"stopping at step {step}: the {cfg.minutes} minute cap was reached")
            break
        # The schedule runs on whichever budget is closer to its end, steps or minutes, so a
        # slow (shared) machine still ends with a decayed learning rate. With a generous
        # --minutes the run is a pure function of the seed and the steps.
        progress = max(step / cfg.steps, (time.time() - start) / (cfg.minutes * 60))
        warm = min(1.0, (step + 1) / cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = warm * lr_at(cfg, progress)
        easy = progress < cfg.curriculum
        batch = make_batch(cfg, step, easy_views if easy else views, easy=easy)
        loss, stats = batch_loss(model, encoder, batch, cfg, aux)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        for k, v in stats.items():
            ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
        if easy:
            curriculum_steps = step + 1
        done = step + 1
        if step % 10 == 0:
            bar.set_postfix({k: f"{v:.3g}" for k, v in ema.items()})
        if step % 100 == 0:
            log(f"step {step} lr={opt.param_groups[0]['lr']:.2e} " + " ".join(f"{k}={v:.3f}" for k, v in ema.items())
                + f" elapsed={time.time() - start:.0f}s")
    wall = time.time() - start
    model.eval()
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    write_preprocessor_config(out, cfg.image_size)
    summary = {"config": asdict(cfg), "steps_done": done, "wall_time_s": round(wall, 1),
               "curriculum_steps": curriculum_steps,
               "final_stats": {k: round(v, 4) for k, v in ema.items()},
               "torch": torch.__version__}
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    log(f"trained {done} steps in {wall / 60:.1f} min; saved to {out}")
    return summary
