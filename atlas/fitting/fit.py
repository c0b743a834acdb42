"""Fitting a layered atlas to a clip: the model, the pixel sampler and the iteration.

One iteration (:meth:`AtlasFitter.iteration_step`, read top to bottom): draw random pixels ->
query the atlas there (uv, alpha, colours, reconstruction) -> loss terms (reconstruction, flow
consistency of uv and alpha, mask bootstrapping, regularisers) -> weighted sum -> backward ->
Adam step. The same loop fits our :class:`~atlas.grid_model.GridAtlas` (the default) and NLA's
:class:`~atlas.model.NeuralAtlas` (``fit.model=nla``, configs/atlas/nla.yaml), so the two
recipes can be timed side by side.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm

from text2live_geo.common.video_io import FrameShape, frames_as_float

from ..chunking import DEFAULT_CHUNK_SIZE, chunk_ranges
from ..config import AtlasConfig
from ..flow import FlowField
from ..grid_model import GridAtlas, GridAtlasConfig
from ..model import LayeredAtlas, NeuralAtlas
from ..render import reconstruction_psnr
from ..settings import AtlasModel, FitConfig
from .initialise import initial_grid_atlas
from .losses import (
    alpha_flow_loss,
    flow_loss,
    gradient_loss,
    mask_loss,
    query_pixels,
    rigidity_loss,
    sparsity_loss,
)

__all__ = ["AtlasFitter", "ClipData", "PixelBatch", "PixelSampler", "build_atlas"]


@dataclass
class ClipData(FrameShape):
    """What fitting reads: ``frames`` ``(N, 3, H, W)``, uint8 (0..255, as read) or float in [0, 1];
    ``masks`` ``(N, 1, H, W)`` in [0, 1] (bool or float) or None (background only); and the optical
    flow both ways."""

    frames: torch.Tensor
    masks: torch.Tensor | None
    flows: FlowField


@dataclass
class PixelBatch:
    """Random pixels of one iteration: coordinates ``x``, ``y``, ``t`` (float, pixel units),
    their ``colour`` ``(P, 3)``, ``mask`` ``(P, 1)`` (or None); the colours of the right and lower
    neighbours (``colour_right``, ``colour_down``; the gradient loss); and for the rows in
    ``flow_index``, where a reliable flow vector takes them in the next or previous frame
    (``x_to``, ``y_to``, ``t_to``)."""

    x: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor
    colour: torch.Tensor
    mask: torch.Tensor | None
    colour_right: torch.Tensor
    colour_down: torch.Tensor
    flow_index: torch.Tensor
    x_to: torch.Tensor
    y_to: torch.Tensor
    t_to: torch.Tensor


class PixelSampler:
    """Uniform random pixels over the whole clip, reproducible from (seed, iteration), so a
    resumed fit draws exactly what an uninterrupted one would."""

    def __init__(self, clip: ClipData, samples: int, seed: int) -> None:
        self.clip = clip
        self.samples = samples
        self.seed = seed
        n, h, w = clip.num_frames, clip.height, clip.width
        # (N, H, W, 3) a view of the frames, indexed per pixel: no channels-last copy of the clip; the
        # drawn pixels become float per batch (frames_as_float), the clip stays in 8 bits
        self.colours = clip.frames.permute(0, 2, 3, 1)
        self.masks = None if clip.masks is None else clip.masks.reshape(n, h * w, 1)  # as given; floats per draw
        flows = clip.flows
        self.forward = flows.forward.reshape(n - 1, h * w, 2)
        self.backward = flows.backward.reshape(n - 1, h * w, 2)
        self.forward_valid = flows.forward_valid.reshape(n - 1, h * w)
        self.backward_valid = flows.backward_valid.reshape(n - 1, h * w)

    def sample(self, iteration: int) -> PixelBatch:
        clip = self.clip
        n, h, w = clip.num_frames, clip.height, clip.width
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration)
        t = torch.randint(0, n, (self.samples,), generator=generator)
        pixel = torch.randint(0, h * w, (self.samples,), generator=generator)
        y, x = pixel // w, pixel % w
        right = y * w + (x + 1).clamp(max=w - 1)
        down = (y + 1).clamp(max=h - 1) * w + x
        # half the rows follow the forward flow, half the backward one (where it exists and is reliable)
        use_forward = (torch.rand(self.samples, generator=generator) < 0.5) | (t == 0)
        use_forward &= t < n - 1
        use_backward = ~use_forward & (t > 0)
        delta = torch.zeros(self.samples, 2)
        valid = torch.zeros(self.samples, dtype=torch.bool)
        forward_rows = use_forward.nonzero()[:, 0]
        backward_rows = use_backward.nonzero()[:, 0]
        delta[forward_rows] = self.forward[t[forward_rows], pixel[forward_rows]].float()  # flows may be float16
        valid[forward_rows] = self.forward_valid[t[forward_rows], pixel[forward_rows]]
        delta[backward_rows] = self.backward[t[backward_rows] - 1, pixel[backward_rows]].float()
        valid[backward_rows] = self.backward_valid[t[backward_rows] - 1, pixel[backward_rows]]
        x_to, y_to = x.float() + delta[:, 0], y.float() + delta[:, 1]
        valid &= (x_to >= 0) & (x_to <= w - 1) & (y_to >= 0) & (y_to <= h - 1)
        flow_index = valid.nonzero()[:, 0]
        t_to = torch.where(use_forward, t + 1, t - 1)
        return PixelBatch(
            x=x.float(), y=y.float(), t=t.float(), colour=frames_as_float(self.colours[t, y, x]),
            mask=None if self.masks is None else self.masks[t, pixel].float(),
            colour_right=frames_as_float(self.colours[t, y, right - y * w]),
            colour_down=frames_as_float(self.colours[t, down // w, x]),
            flow_index=flow_index, x_to=x_to[flow_index], y_to=y_to[flow_index], t_to=t_to[flow_index].float())


def build_atlas(cfg: FitConfig, clip: ClipData) -> LayeredAtlas:
    """A fresh model for ``cfg.model``: a GridAtlas initialised from the clip's flow and masks,
    or an NLA with the reference sizes (widths ``cfg.nla_width``)."""
    layers = cfg.layers if clip.masks is not None else 1
    if cfg.model == AtlasModel.nla:
        width = cfg.nla_width
        return NeuralAtlas(AtlasConfig(width=clip.width, height=clip.height, num_frames=clip.num_frames,
                                       foreground_mapping_width=width, background_mapping_width=width,
                                       atlas_width=width, alpha_width=width))
    config = GridAtlasConfig(width=clip.width, height=clip.height, num_frames=clip.num_frames, layers=layers,
                             residual_cells=cfg.residual_cells, residual_frames=cfg.residual_frames,
                             alpha_downscale=cfg.alpha_downscale)
    return initial_grid_atlas(clip.frames, clip.masks if layers == 2 else None, clip.flows.forward,
                              clip.flows.forward_valid, config, texel_density=cfg.texel_density,
                              texture_limits=(32, cfg.max_texture))


def _parameter_groups(atlas: LayeredAtlas, cfg: FitConfig) -> list[dict]:
    if isinstance(atlas, GridAtlas):
        return [
            {"params": [atlas.background_texture, atlas.foreground_texture], "lr": cfg.lr_textures},
            {"params": [atlas.background_residual, atlas.foreground_residual, atlas.alpha_logits],
             "lr": cfg.lr_grids},
            {"params": [atlas.background_transform, atlas.foreground_transform], "lr": cfg.lr_transforms},
        ]
    return [{"params": list(atlas.parameters()), "lr": cfg.lr_networks}]


class AtlasFitter:
    """Fits ``atlas`` to ``clip`` with ``cfg``; holds the optimiser, the sampler and the iteration.

    Args:
        atlas: a fresh model from :func:`build_atlas` (or one being resumed).
        clip: the clip's frames, masks and flows, on the atlas's device.
        cfg: the fitting config.
        seed: seeds the pixel draws.
    """

    def __init__(self, atlas: LayeredAtlas, clip: ClipData, cfg: FitConfig, seed: int = 0) -> None:
        self.atlas = atlas
        self.clip = clip
        self.cfg = cfg
        self.foreground = clip.masks is not None and (not isinstance(atlas, GridAtlas) or atlas.config.layers == 2)
        self.sampler = PixelSampler(clip, cfg.samples, seed)
        self.optimizer = torch.optim.Adam(_parameter_groups(atlas, cfg))
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.iteration = 0
        evaluation = torch.Generator().manual_seed(seed + 7)
        count = min(cfg.eval_pixels, clip.num_frames * clip.height * clip.width)
        index = torch.randperm(clip.num_frames * clip.height * clip.width, generator=evaluation)[:count]
        self.eval_t = (index // (clip.height * clip.width)).float()
        self.eval_y = ((index // clip.width) % clip.height).float()
        self.eval_x = (index % clip.width).float()
        # gathered from a view of the frames (reshaping the permuted frames would copy the whole clip)
        self.eval_colour = frames_as_float(
            clip.frames.permute(0, 2, 3, 1)[self.eval_t.long(), self.eval_y.long(), self.eval_x.long()])

    def learning_rate_scale(self, iteration: int) -> float:
        """Cosine from 1 to ``lr_decay`` over the iterations."""
        progress = min(iteration / max(self.cfg.iterations, 1), 1.0)
        return self.cfg.lr_decay + (1 - self.cfg.lr_decay) * 0.5 * (1 + math.cos(math.pi * progress))

    def weights(self, iteration: int) -> dict[str, float]:
        """Each loss term's weight at ``iteration`` (the mask loss and global rigidity switch off)."""
        cfg = self.cfg
        return {
            "rgb": cfg.rgb, "gradient": cfg.gradient, "flow": cfg.flow, "alpha_flow": cfg.alpha_flow,
            "mask": cfg.mask_loss if iteration < cfg.mask_loss_until else 0.0,
            "sparsity": cfg.sparsity, "rigidity": cfg.rigidity,
            "global_rigidity": cfg.global_rigidity if iteration < cfg.global_rigidity_until else 0.0,
            "global_rigidity_background": (cfg.global_rigidity_background
                                           if iteration < cfg.global_rigidity_until else 0.0),
            "smoothness": cfg.smoothness,
        }

    def iteration_step(self) -> dict[str, float]:
        """One fitting iteration (see the module docstring). Returns every term and the total."""
        weights = self.weights(self.iteration)
        batch = self.sampler.sample(self.iteration)
        atlas, foreground = self.atlas, self.foreground
        outputs = query_pixels(atlas, batch.x, batch.y, batch.t, foreground)

        terms: dict[str, torch.Tensor] = {"rgb": (outputs.reconstruction - batch.colour).pow(2).sum(1).mean()}
        if weights["gradient"]:
            terms["gradient"] = gradient_loss(atlas, outputs, batch.x, batch.y, batch.t, batch.colour_right,
                                              batch.colour_down, batch.colour, foreground)
        if (weights["flow"] or weights["alpha_flow"]) and batch.flow_index.numel():
            terms["flow"], alpha_to = flow_loss(atlas, outputs, batch.flow_index, batch.x_to, batch.y_to,
                                                batch.t_to, foreground)
            if foreground:
                terms["alpha_flow"] = alpha_flow_loss(outputs, batch.flow_index, alpha_to)
        if foreground and weights["mask"] and batch.mask is not None:
            terms["mask"] = mask_loss(outputs, batch.mask)
        if foreground and weights["sparsity"]:
            terms["sparsity"] = sparsity_loss(outputs)
        if weights["rigidity"] or weights["global_rigidity"] or weights["global_rigidity_background"]:
            rows = slice(0, max(1, batch.x.shape[0] // 4))  # rigidity on a quarter of the pixels is plenty
            x, y, t = batch.x[rows], batch.y[rows], batch.t[rows]
            if weights["rigidity"]:
                terms["rigidity"] = rigidity_loss(atlas, x, y, t, "background", self.cfg.derivative_px)
                if foreground:
                    terms["rigidity"] = terms["rigidity"] + rigidity_loss(atlas, x, y, t, "foreground",
                                                                          self.cfg.derivative_px)
            if weights["global_rigidity"] and foreground:
                terms["global_rigidity"] = rigidity_loss(atlas, x, y, t, "foreground", self.cfg.global_derivative_px)
            if weights["global_rigidity_background"]:
                terms["global_rigidity_background"] = rigidity_loss(atlas, x, y, t, "background",
                                                                    self.cfg.global_derivative_px)
        if weights["smoothness"] and isinstance(atlas, GridAtlas):
            terms["smoothness"] = atlas.smoothness()

        total = sum(weights[name] * value for name, value in terms.items())
        scale = self.learning_rate_scale(self.iteration)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * scale
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.iteration += 1
        atlas.iteration = self.iteration
        record = {name: float(value.detach()) for name, value in terms.items()}
        record["total"] = float(total.detach())
        return record

    def pretrain_mappings(self, iterations: int) -> None:
        """NLA's mapping pre-training: both mappings towards uv = 0.8 (x, y) (normalised), so the
        atlas starts as a scaled copy of the frame; for the NLA model only."""
        atlas = self.atlas
        optimizer = torch.optim.Adam(list(atlas.parameters()), lr=self.cfg.lr_networks)
        for iteration in range(iterations):
            batch = self.sampler.sample(-1 - iteration)
            xyt = atlas.normalize_coordinates(batch.x, batch.y, batch.t)
            target = 0.5 * 0.8 * xyt[:, :2]
            loss = ((atlas.foreground_uv(xyt) - (target + 0.5)).pow(2).sum(1).mean()
                    + (atlas.background_uv(xyt) - (target - 0.5)).pow(2).sum(1).mean())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def evaluate_psnr(self) -> float:
        """Reconstruction PSNR on the fixed evaluation pixels (dB)."""
        chunks = [query_pixels(self.atlas, self.eval_x[start:stop], self.eval_y[start:stop],
                               self.eval_t[start:stop], self.foreground).reconstruction
                  for start, stop in chunk_ranges(self.eval_x.shape[0], DEFAULT_CHUNK_SIZE)]
        return reconstruction_psnr(torch.cat(chunks), self.eval_colour)

    def fit(self, progress: bool = True, on_record: Callable[[dict], None] | None = None,
            on_checkpoint: Callable[[], None] | None = None, checkpoint_every: int = 0,
            time_limit: float | None = None, should_stop: Callable[[], bool] | None = None) -> float:
        """Iterate from ``self.iteration`` to ``cfg.iterations``; every ``eval_every`` iterations
        the record gets ``psnr_db`` (shown on the bar). ``on_record`` receives each iteration's
        record, ``on_checkpoint`` is called every ``checkpoint_every`` iterations. Stops early
        after ``time_limit`` seconds, or after the iteration at which ``should_stop()`` is true
        (asked after every iteration). Returns the seconds spent."""
        cfg = self.cfg
        bar = tqdm(total=cfg.iterations, initial=self.iteration, disable=not progress, desc="fit atlas",
                   dynamic_ncols=True)
        start = time.perf_counter()
        last_psnr = None
        while self.iteration < cfg.iterations:
            record = self.iteration_step()
            record["iteration"] = self.iteration
            if cfg.eval_every and (self.iteration % cfg.eval_every == 0 or self.iteration == cfg.iterations):
                last_psnr = self.evaluate_psnr()
                record["psnr_db"] = round(last_psnr, 3)
            record["seconds"] = round(time.perf_counter() - start, 3)
            if on_record is not None:
                on_record(record)
            if last_psnr is not None:
                bar.set_postfix(psnr=f"{last_psnr:.2f} dB", loss=f"{record['total']:.4f}")
            bar.update(1)
            if on_checkpoint is not None and checkpoint_every and self.iteration % checkpoint_every == 0:
                on_checkpoint()
            if time_limit is not None and time.perf_counter() - start > time_limit:
                break
            if should_stop is not None and should_stop():
                break
        bar.close()
        return time.perf_counter() - start

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {"atlas": self.atlas.state_dict(), "optimizer": self.optimizer.state_dict(),
                "iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.atlas.load_state_dict(state["atlas"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.atlas.iteration = self.iteration
