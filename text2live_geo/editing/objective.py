"""The editing objective shared by image and video steps: paired CLIP views -> embeddings ->
weighted loss terms (composition, directional or IMC + IMR, screen, structure, sparsity,
bootstrap)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..augment import ViewAugmenter, resize_short, view_shape
from ..clip import IMAGE_TEMPLATES, RAW_TEXT, SCREEN_TEMPLATES, ClipGuide
from ..common.config import Precision
from ..common.runs import autocast_context
from ..config import ClipConfig, Fill, Guidance, ImrAnchor, LossConfig, TemplateSampling, TextConfig
from ..layers import EditLayers
from ..losses import BootstrapLoss, DirectionalLoss, SparsityLoss, StructureLoss, TextDistanceLoss
from ..losses.geodesic import InterModalityConsistency, IntraModalityRegularisation

#: view roles encoded with gradient (what the generator moves); the others (input, anchor) without
GRAD_ROLES = ("composite", "screen", "composite_dir")


@dataclass
class Render:
    """One render the losses see: the untouched `source` `(1, 3, h, w)`, its edit `layers`, the
    IMR `anchor` composite (None: the input views) and the bootstrap `relevancy` `(1, 1, h, w)`."""

    source: torch.Tensor
    layers: EditLayers
    anchor: torch.Tensor | None = None
    relevancy: torch.Tensor | None = None

    def flipped(self) -> Render:
        """The render mirrored left-right (every image of it)."""
        flip = lambda image: image.flip(-1) if image is not None else None  # noqa: E731
        layers = self.layers
        return Render(flip(self.source), EditLayers(flip(layers.edit), flip(layers.alpha), flip(layers.composite),
                                                    flip(layers.greenscreen)), flip(self.anchor), flip(self.relevancy))


@dataclass
class RenderEmbeddings:
    """One render's view embeddings by role (`input`, `composite`, `screen`, ...), each `(V, d)`:
    unit-norm (`unit`), and CLIP's raw projection (`raw`, only with `loss.raw_directions` under
    directional guidance, else None)."""

    unit: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor] | None = None


@dataclass
class StepTexts:
    """The text rows one step uses, each `(rows, d)`: `src` / `comp` the directional pairs (row i
    of one with row i of the other), `comp_all` the composition rows, `screen` the screen rows;
    `src_raw` / `comp_raw` the pairs' unnormalised embeddings (for `loss.raw_directions`)."""

    src: torch.Tensor
    comp: torch.Tensor
    comp_all: torch.Tensor
    screen: torch.Tensor
    src_raw: torch.Tensor
    comp_raw: torch.Tensor


class EditObjective:
    """Loss terms for one (input, edit layers) pair, from the text / clip / loss configs.

    `fill` is the colour the view warps reveal (1.0 white for images, 0.0 black for video).
    """

    def __init__(self, text_cfg: TextConfig, clip_cfg: ClipConfig, loss_cfg: LossConfig, clip_guide: ClipGuide,
                 device: torch.device, precision: Precision = Precision.fp32, fill: float | None = None):
        self.text_cfg, self.clip_cfg, self.loss_cfg = text_cfg, clip_cfg, loss_cfg
        self.clip_guide, self.device, self.precision = clip_guide, device, precision
        self.view_size = clip_cfg.view_size or clip_guide.image_size
        self.checkpoint_layers = clip_cfg.checkpoint_layers
        if self.checkpoint_layers is None:  # 2-core CPU, 256 px: 0.1-0.2 GiB less for ~2 % more time
            self.checkpoint_layers = 3 * clip_guide.num_layers // 4 if torch.device(device).type == "cpu" else 0
        self.structure_size = clip_cfg.structure_size or self.view_size
        if fill is None:
            fill = 1.0 if clip_cfg.fill == Fill.white else 0.0
        self.augment = ViewAugmenter(clip_cfg.n_aug, self.view_size, clip_cfg.max_view_ratio, clip_cfg.crop_min,
                                     fill=fill)
        self.composition_loss = TextDistanceLoss(loss_cfg.distance, loss_cfg.text_reduction)
        self.directional_loss = DirectionalLoss(pairs=loss_cfg.directional_pairs)
        gfk = dict(null_dim=loss_cfg.gfk_null_dim, max_subspace_dim=loss_cfg.gfk_max_subspace_dim,
                   centring=loss_cfg.gfk_centring, solver=loss_cfg.gfk_solver)
        self.imc_loss = InterModalityConsistency(**gfk, pairing=loss_cfg.imc_pairing)
        self.imr_loss = IntraModalityRegularisation(**gfk)
        self.structure_loss = StructureLoss()
        self.sparsity_loss = SparsityLoss(loss_cfg.sparsity_l1, loss_cfg.sparsity_l0)
        self.bootstrap_loss = BootstrapLoss()
        # text embeddings `(texts, templates, d)`: computed once per run (cached in the CLIP wrapper)
        self.src_text = self._embed_texts(text_cfg.src, IMAGE_TEMPLATES)
        self.comp_text = self._embed_texts(text_cfg.comp, IMAGE_TEMPLATES)
        self.screen_text = self._embed_texts(text_cfg.screen, SCREEN_TEMPLATES)
        if loss_cfg.relevancy_per_crop and text_cfg.relevancy_text():
            # embedded now, while the text tower is loaded (a run releases it after set-up)
            clip_guide.text_embeddings(text_cfg.relevancy_text(), RAW_TEXT)
        self.src_raw = self._embed_texts(text_cfg.src, IMAGE_TEMPLATES, normalize=False)
        self.comp_raw = self._embed_texts(text_cfg.comp, IMAGE_TEMPLATES, normalize=False)

    @property
    def uses_previous_anchor(self) -> bool:
        loss = self.loss_cfg
        return loss.guidance == Guidance.geodesic and loss.imr > 0 and loss.imr_anchor == ImrAnchor.previous

    def _embed_texts(self, texts: str | Sequence[str], templates: Sequence[str], normalize: bool = True
                     ) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return torch.stack([self.clip_guide.text_embeddings(text, templates, normalize=normalize) for text in texts])

    def template_rows(self) -> torch.Tensor:
        """The image templates drawn this step: `text.templates_per_step` of them, at random."""
        count = min(self.text_cfg.templates_per_step, len(IMAGE_TEMPLATES))
        return torch.randperm(len(IMAGE_TEMPLATES))[:count].to(self.device)

    def step_texts(self) -> StepTexts:
        """The text embeddings one step uses (`StepTexts`), text-major.

        `text.template_sampling=subset` (default): the templates drawn this step
        (`template_rows`) for every term: the `src` and `comp` rows of the directional / IMC pairs
        (`src[k]` with `comp[k]` under the same template, k < min(len(src), len(comp))), every
        `comp` text (composition) and every `screen` text under both screen templates.
        `reference`: each term draws its own rows, as the reference: n uniform in 1..rows, then
        n rows uniformly with replacement, from all the pair rows, all the comp rows and all the
        screen rows respectively."""
        pairs = min(self.src_text.shape[0], self.comp_text.shape[0])
        if self.text_cfg.template_sampling == TemplateSampling.reference:
            def draw(rows: int) -> torch.Tensor:
                count = int(torch.randint(1, rows + 1, ()))
                return torch.randint(rows, (count,)).to(self.device)

            flat = lambda embeds: embeds.flatten(0, 1)  # noqa: E731
            pair_rows = draw(pairs * self.src_text.shape[1])
            comp_rows = draw(self.comp_text.shape[0] * self.comp_text.shape[1])
            screen_rows = draw(self.screen_text.shape[0] * self.screen_text.shape[1])
            return StepTexts(flat(self.src_text[:pairs])[pair_rows], flat(self.comp_text[:pairs])[pair_rows],
                             flat(self.comp_text)[comp_rows], flat(self.screen_text)[screen_rows],
                             flat(self.src_raw[:pairs])[pair_rows], flat(self.comp_raw[:pairs])[pair_rows])
        rows = self.template_rows()
        return StepTexts(self.src_text[:pairs, rows].flatten(0, 1), self.comp_text[:pairs, rows].flatten(0, 1),
                         self.comp_text[:, rows].flatten(0, 1), self.screen_text.flatten(0, 1),
                         self.src_raw[:pairs, rows].flatten(0, 1), self.comp_raw[:pairs, rows].flatten(0, 1))

    def __call__(self, source: torch.Tensor, layers: EditLayers, anchor: torch.Tensor | None = None,
                 relevancy: torch.Tensor | None = None, bootstrap_weight: float = 0.0,
                 sparsity: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Loss terms and weights for one render.

        source `(1, 3, h, w)`: the untouched input; layers: its edit layers (same size);
        anchor `(1, 3, h, w)`: the previous step's composite for IMR (None: the input views);
        relevancy `(1, 1, h, w)`: bootstrap target for the alpha.
        """
        return self.batched([Render(source, layers, anchor, relevancy)], bootstrap_weight, sparsity)

    def view_size_of(self, image: torch.Tensor) -> tuple[int, int]:
        """The CLIP view size `(h, w)` of an image: its aspect kept, short side `view_size`, long
        side at most `max_view_ratio` x that (`augment.view_shape`)."""
        return view_shape(image.shape[-2], image.shape[-1], self.view_size, self.clip_cfg.max_view_ratio)

    def draw_views(self, render: Render, size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The CLIP views of one render, `(V, 3, h, w)` each, by role: `input`, `composite`,
        `screen` (and `anchor`; and `composite_dir` with `clip.encode_composite_twice`).

        Default: one paired draw, view i of each image sharing its parameters. With
        `clip.paired_views=false` every image gets its own draw (the reference: input and output
        views differ by augmentation noise besides the edit). With `encode_composite_twice` the
        directional terms (input, composite, anchor) get a draw of their own and the composite
        views for composition and screen another (the reference encodes the composite once per
        loss)."""
        layers = render.layers
        anchor = {"anchor": render.anchor} if render.anchor is not None else {}
        if self.clip_cfg.encode_composite_twice:
            groups = [{"composite": layers.composite, "screen": layers.greenscreen},
                      {"input": render.source, "composite_dir": layers.composite, **anchor}]
        else:
            groups = [{"input": render.source, "composite": layers.composite, "screen": layers.greenscreen,
                       **anchor}]
        views: dict[str, torch.Tensor] = {}
        for images in groups:
            if self.clip_cfg.paired_views:
                views.update(zip(images, self.augment(*images.values(), size=size)))
            else:
                views.update({role: self.augment(image, size=size)[0] for role, image in images.items()})
        return views

    def encode(self, views: dict[object, torch.Tensor], grad: bool, normalize: bool = True
               ) -> dict[object, torch.Tensor]:
        """Embeddings of every `(V, 3, h, w)` tensor of `views` (unit-norm, or CLIP's raw projection
        without `normalize`), one CLIP forward per distinct view size (views of one size from every
        render in one batch). `grad`: the forward keeps the graph (checkpointing and fused MLP
        tails as configured); else no gradient."""
        by_size: dict[tuple[int, int], list] = {}
        for key, tensor in views.items():
            by_size.setdefault(tuple(tensor.shape[-2:]), []).append(key)
        embeds: dict[object, torch.Tensor] = {}
        for keys in by_size.values():
            batch = torch.cat([views[key] for key in keys])
            with autocast_context(self.device, self.precision):
                if grad:
                    encoded = self.clip_guide.encode_images(batch, checkpoint_chunk=self.clip_cfg.checkpoint_chunk,
                                                      memory_efficient=self.clip_cfg.memory_efficient,
                                                      checkpoint_layers=self.checkpoint_layers, normalize=normalize)
                else:
                    with torch.no_grad():
                        encoded = self.clip_guide.encode_images(batch, normalize=normalize)
            embeds.update(zip(keys, encoded.split([views[key].shape[0] for key in keys])))
        return embeds

    def view_embeddings(self, renders: Sequence[Render]) -> list[RenderEmbeddings]:
        """CLIP views -> embeddings of several renders of one step (e.g. the frame crops of a video
        step). Each render's views keep its aspect (`view_size_of`; with `clip.shared_view_size` all
        are drawn at the first render's size); per render ONE paired draw shared by input,
        composite, green screen (and anchor) (the reference's unpaired / twice-drawn views with
        `clip.paired_views` / `encode_composite_twice`). Views of one size from all renders go
        through CLIP together: one forward with gradient (what the generator must move) and one
        without (the input and anchor views) per distinct size."""
        sizes = [self.view_size_of(render.source) for render in renders]
        if self.clip_cfg.shared_view_size:
            sizes = [sizes[0]] * len(renders)
        views = [self.draw_views(render, size) for render, size in zip(renders, sizes)]

        keyed = {(index, role): tensor for index, drawn in enumerate(views) for role, tensor in drawn.items()}
        raw = self.loss_cfg.raw_directions and self.loss_cfg.guidance == Guidance.directional
        embeds = self.encode({key: t for key, t in keyed.items() if key[1] in GRAD_ROLES}, grad=True,
                             normalize=not raw)
        embeds.update(self.encode({key: t for key, t in keyed.items() if key[1] not in GRAD_ROLES}, grad=False,
                                  normalize=not raw))
        raw_embeds = embeds if raw else None
        if raw:  # unit embeddings for everything but the directional term
            embeds = {key: F.normalize(value, dim=-1, eps=1e-6) for key, value in embeds.items()}
        return [RenderEmbeddings({role: embeds[index, role] for role in drawn},
                                 {role: raw_embeds[index, role] for role in drawn} if raw else None)
                for index, drawn in enumerate(views)]

    def loss_terms(self, renders: Sequence[Render], embeddings: Sequence[RenderEmbeddings],
                   bootstrap_weight: float = 0.0, sparsity: bool = True
                   ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Loss terms (each the mean over `renders`) and their weights, from each render's view
        embeddings (`view_embeddings`); this step's text rows are drawn here."""
        texts = self.step_texts()
        sums: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
        for render, embedded in zip(renders, embeddings):
            terms, weights = self._terms(render, embedded.unit, embedded.raw, texts, bootstrap_weight, sparsity)
            for name, value in terms.items():
                sums[name] = sums[name] + value if name in sums else value
        return {name: value / len(renders) for name, value in sums.items()}, weights

    def batched(self, renders: Sequence[Render], bootstrap_weight: float = 0.0,
                sparsity: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """`loss_terms` of `view_embeddings`: loss terms and weights for several renders of one step."""
        return self.loss_terms(renders, self.view_embeddings(renders), bootstrap_weight, sparsity)

    def crop_relevancy(self, image: torch.Tensor) -> torch.Tensor:
        """`loss.relevancy_per_crop`: the relevancy of `text.bootstrap` over `image` squashed to
        `(view_size, view_size)`, as the reference computes it for every crop -> `(1, 1, s, s)`."""
        size = (self.view_size, self.view_size)
        square = F.interpolate(image.detach().float(), size=size, mode="bilinear", align_corners=False)
        return self.clip_guide.relevancy(square, self.text_cfg.relevancy_text())

    def _terms(self, render: Render, embeds: dict[str, torch.Tensor], raw_embeds: dict[str, torch.Tensor] | None,
               texts: StepTexts, bootstrap_weight: float, sparsity: bool):
        """One render's loss terms from its view embeddings by role (unit-norm; `raw_embeds`: the
        unnormalised ones, only with `loss.raw_directions` under directional guidance)."""
        loss_cfg, layers = self.loss_cfg, render.layers
        input_embeds = embeds["input"]
        directional_embeds = embeds.get("composite_dir", embeds["composite"])  # paired with the input views
        anchor_embeds = embeds.get("anchor", input_embeds)
        terms: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
        terms["composition"] = self.composition_loss(embeds["composite"], texts.comp_all)
        weights["composition"] = loss_cfg.composition
        if loss_cfg.guidance == Guidance.directional:
            if raw_embeds is not None:
                terms["directional"] = self.directional_loss(
                    raw_embeds["input"], raw_embeds.get("composite_dir", raw_embeds["composite"]), texts.src_raw,
                    texts.comp_raw)
            else:
                terms["directional"] = self.directional_loss(input_embeds, directional_embeds, texts.src, texts.comp)
            weights["directional"] = loss_cfg.directional
        else:
            terms["imc"] = self.imc_loss(input_embeds, directional_embeds, texts.src, texts.comp)  # IMC
            weights["imc"] = loss_cfg.imc
            if loss_cfg.imr > 0:
                terms["imr"] = self.imr_loss(anchor_embeds, directional_embeds)  # IMR
                weights["imr"] = loss_cfg.imr
        if loss_cfg.screen > 0:
            terms["screen"] = self.composition_loss(embeds["screen"], texts.screen)
            weights["screen"] = loss_cfg.screen
        if loss_cfg.structure > 0:
            ratio, size = self.clip_cfg.max_structure_ratio, self.structure_size
            with autocast_context(self.device, self.precision):
                with torch.no_grad():
                    input_tokens = self.clip_guide.structure_tokens(resize_short(render.source, size, ratio))
                output_tokens = self.clip_guide.structure_tokens(resize_short(layers.composite, size, ratio))
            terms["structure"] = self.structure_loss(input_tokens, output_tokens)
            weights["structure"] = loss_cfg.structure
        if loss_cfg.sparsity > 0 and sparsity:
            terms["sparsity"] = self.sparsity_loss(layers.alpha)
            weights["sparsity"] = loss_cfg.sparsity
        if bootstrap_weight > 0:
            if loss_cfg.relevancy_per_crop and self.text_cfg.relevancy_text():
                target = self.crop_relevancy(render.source)
                alpha = F.interpolate(layers.alpha, size=target.shape[-2:], mode="bilinear", align_corners=False)
                terms["bootstrap"] = self.bootstrap_loss(alpha, target)
                weights["bootstrap"] = bootstrap_weight
            elif render.relevancy is not None:
                terms["bootstrap"] = self.bootstrap_loss(layers.alpha, render.relevancy)
                weights["bootstrap"] = bootstrap_weight
        return terms, weights
