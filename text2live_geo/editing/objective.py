"""The editing objective shared by image and video steps: paired CLIP views -> embeddings ->
weighted loss terms (composition, directional or IMC + IMR, screen, structure, sparsity,
bootstrap)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..augment import ViewAugmenter, resize_short, view_shape
from ..clip import IMAGE_TEMPLATES, SCREEN_TEMPLATES, ClipGuide
from ..config import ClipConfig, LossConfig, TextConfig
from ..layers import EditLayers
from ..losses import BootstrapLoss, DirectionalLoss, SparsityLoss, StructureLoss, TextDistanceLoss
from ..losses.geodesic import InterModalityConsistency, IntraModalityRegularisation
from .run import autocast_context


@dataclass
class Render:
    """One render the losses see: the untouched `source` `(1, 3, h, w)`, its edit `layers`, the
    IMR `anchor` composite (None: the input views) and the bootstrap `relevancy` `(1, 1, h, w)`."""

    source: torch.Tensor
    layers: EditLayers
    anchor: torch.Tensor | None = None
    relevancy: torch.Tensor | None = None


class EditObjective:
    """Loss terms for one (input, edit layers) pair, from the text / clip / loss configs.

    `fill` is the colour the view warps reveal (1.0 white for images, 0.0 black for video).
    """

    def __init__(self, text_cfg: TextConfig, clip_cfg: ClipConfig, loss_cfg: LossConfig, clip: ClipGuide,
                 device: torch.device, precision: str = "fp32", fill: float | None = None):
        self.text_cfg, self.clip_cfg, self.loss_cfg = text_cfg, clip_cfg, loss_cfg
        self.clip, self.device, self.precision = clip, device, precision
        self.view_size = clip_cfg.view_size or clip.image_size
        self.checkpoint_layers = clip_cfg.checkpoint_layers
        if self.checkpoint_layers is None:  # 2-core CPU, 256 px: 0.1-0.2 GiB less for ~2 % more time
            self.checkpoint_layers = 3 * clip.num_layers // 4 if torch.device(device).type == "cpu" else 0
        self.structure_size = clip_cfg.structure_size or self.view_size
        if fill is None:
            fill = 1.0 if clip_cfg.fill == "white" else 0.0
        self.augment = ViewAugmenter(clip_cfg.n_aug, self.view_size, clip_cfg.max_view_ratio, clip_cfg.crop_min,
                                     fill=fill)
        self.composition_loss = TextDistanceLoss(loss_cfg.distance)
        self.directional_loss = DirectionalLoss()
        gfk = dict(null_dim=loss_cfg.gfk_null_dim, max_subspace_dim=loss_cfg.gfk_max_subspace_dim,
                   solver=loss_cfg.gfk_solver)
        self.imc_loss = InterModalityConsistency(**gfk, pairing=loss_cfg.imc_pairing)
        self.imr_loss = IntraModalityRegularisation(**gfk)
        self.structure_loss = StructureLoss()
        self.sparsity_loss = SparsityLoss(loss_cfg.sparsity_l1, loss_cfg.sparsity_l0)
        self.bootstrap_loss = BootstrapLoss()
        # text embeddings: computed once per run (cached in the CLIP wrapper)
        self.src_text = clip.text_embeddings(text_cfg.src, IMAGE_TEMPLATES)
        self.comp_text = clip.text_embeddings(text_cfg.comp, IMAGE_TEMPLATES)
        self.screen_text = clip.text_embeddings(text_cfg.screen, SCREEN_TEMPLATES)

    @property
    def uses_previous_anchor(self) -> bool:
        loss = self.loss_cfg
        return loss.guidance == "geodesic" and loss.imr > 0 and loss.imr_anchor == "previous"

    def template_rows(self) -> torch.Tensor:
        count = min(self.text_cfg.templates_per_step, len(IMAGE_TEMPLATES))
        return torch.randperm(len(IMAGE_TEMPLATES))[:count].to(self.device)

    def __call__(self, source: torch.Tensor, layers: EditLayers, anchor: torch.Tensor | None = None,
                 relevancy: torch.Tensor | None = None, bootstrap_weight: float = 0.0,
                 sparsity: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Loss terms and weights for one render.

        source `(1, 3, h, w)`: the untouched input; layers: its edit layers (same size);
        anchor `(1, 3, h, w)`: the previous step's composite for IMR (None: the input views);
        relevancy `(1, 1, h, w)`: bootstrap target for the alpha.
        """
        return self.batched([Render(source, layers, anchor, relevancy)], bootstrap_weight, sparsity)

    def batched(self, renders: Sequence[Render], bootstrap_weight: float = 0.0,
                sparsity: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Loss terms (each the mean over `renders`) and weights for several renders of one step
        (e.g. the frame crops of a video step), with ONE CLIP forward with gradient and ONE
        without for all of them: every render's views are drawn at the first render's view size."""
        first = renders[0].source
        size = view_shape(first.shape[-2], first.shape[-1], self.view_size, self.clip_cfg.max_view_ratio)

        # CLIP views: per render ONE paired draw shared by input, composite, green screen (and anchor)
        grad_views, fixed_views = [], []
        for render in renders:
            paired = [render.source, render.layers.composite, render.layers.greenscreen]
            paired += [render.anchor] if render.anchor is not None else []
            views = self.augment(*paired, size=size)
            grad_views += views[1:3]
            fixed_views += [views[0]] + views[3:]
        n_views = grad_views[0].shape[0]

        # embeddings: one forward with gradient for everything the generator must move, one
        # without for the input (and anchor) views; the input views serve every loss
        with autocast_context(self.device, self.precision):
            output_embeds = self.clip.encode_images(torch.cat(grad_views),
                                                    checkpoint_chunk=self.clip_cfg.checkpoint_chunk,
                                                    memory_efficient=self.clip_cfg.memory_efficient,
                                                    checkpoint_layers=self.checkpoint_layers)
            with torch.no_grad():
                fixed_embeds = self.clip.encode_images(torch.cat(fixed_views))

        rows = self.template_rows()
        src_text, comp_text = self.src_text[rows], self.comp_text[rows]
        sums: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
        fixed_start = 0
        for index, render in enumerate(renders):
            composite_embeds = output_embeds[2 * index * n_views:(2 * index + 1) * n_views]
            screen_embeds = output_embeds[(2 * index + 1) * n_views:(2 * index + 2) * n_views]
            input_embeds = fixed_embeds[fixed_start:fixed_start + n_views]
            fixed_start += n_views
            anchor_embeds = input_embeds
            if render.anchor is not None:
                anchor_embeds = fixed_embeds[fixed_start:fixed_start + n_views]
                fixed_start += n_views
            terms, weights = self._terms(render, composite_embeds, screen_embeds, input_embeds, anchor_embeds,
                                         src_text, comp_text, bootstrap_weight, sparsity)
            for name, value in terms.items():
                sums[name] = sums[name] + value if name in sums else value
        return {name: value / len(renders) for name, value in sums.items()}, weights

    def _terms(self, render: Render, composite_embeds, screen_embeds, input_embeds, anchor_embeds, src_text,
               comp_text, bootstrap_weight: float, sparsity: bool):
        loss_cfg, layers = self.loss_cfg, render.layers
        terms: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
        terms["composition"] = self.composition_loss(composite_embeds, comp_text)
        weights["composition"] = loss_cfg.composition
        if loss_cfg.guidance == "directional":
            terms["directional"] = self.directional_loss(input_embeds, composite_embeds, src_text, comp_text)
            weights["directional"] = loss_cfg.directional
        else:
            terms["imc"] = self.imc_loss(input_embeds, composite_embeds, src_text, comp_text)  # IMC
            weights["imc"] = loss_cfg.directional
            if loss_cfg.imr > 0:
                terms["imr"] = self.imr_loss(anchor_embeds, composite_embeds)  # IMR
                weights["imr"] = loss_cfg.imr
        if loss_cfg.screen > 0:
            terms["screen"] = self.composition_loss(screen_embeds, self.screen_text)
            weights["screen"] = loss_cfg.screen
        if loss_cfg.structure > 0:
            ratio = self.clip_cfg.max_structure_ratio
            with autocast_context(self.device, self.precision):
                with torch.no_grad():
                    input_tokens = self.clip.structure_tokens(resize_short(render.source, self.structure_size, ratio))
                output_tokens = self.clip.structure_tokens(resize_short(layers.composite, self.structure_size, ratio))
            terms["structure"] = self.structure_loss(input_tokens, output_tokens)
            weights["structure"] = loss_cfg.structure
        if loss_cfg.sparsity > 0 and sparsity:
            terms["sparsity"] = self.sparsity_loss(layers.alpha)
            weights["sparsity"] = loss_cfg.sparsity
        if render.relevancy is not None and bootstrap_weight > 0:
            terms["bootstrap"] = self.bootstrap_loss(layers.alpha, render.relevancy)
            weights["bootstrap"] = bootstrap_weight
        return terms, weights
