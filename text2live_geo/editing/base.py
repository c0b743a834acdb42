"""What the image and video editors share: the training step (one method, top to bottom, the
same for both), bootstrap annealing, the training loop and checkpoint state."""
from __future__ import annotations

import dataclasses
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from ..common.config import Precision
from ..common.eta import eta_text
from ..common.io import save_png
from ..common.runs import MetricsLog, RunError, load_checkpoint, save_checkpoint
from ..config import BootstrapSchedule, OptimConfig, OptimizerName
from ..generator import batch_statistics_without_update
from .objective import EditObjective, Render

# record entries that are not loss values (kept out of the progress bar)
_NOT_LOSSES = ("step", "lr", "seconds", "renders")


logger = logging.getLogger(__name__)


def make_optimizer(parameters: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """MADGRAD (reference recipe) or Adam, from an OptimConfig."""
    parameters = list(parameters)
    if cfg.name == OptimizerName.madgrad:
        from madgrad import MADGRAD

        return MADGRAD(parameters, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay)


def decayed_lr(cfg: OptimConfig, step: int) -> float:
    """lr after `step` steps of exponential decay, floored at min_lr."""
    return max(cfg.lr * cfg.lr_decay ** step, cfg.min_lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr



class GeneratorTraining(ABC):
    """Base of an editor: it trains `generator` step by step; `training_step` is the whole path of
    one step, the same for images and videos.

    A subclass sets the attributes below up to `sparsity` in `__init__`, then calls
    `setup_optimisation()`; it implements what differs between images and videos:
    `draw_sample()` (what the generator sees this step), `render_sample()` (generator -> RGBA ->
    edit layers composited over the untouched input, as the losses see them), `snapshot()` and
    `has_bootstrap_target()`, and may override the checkpoint hooks `extra_state()` and
    `check_state()`. `train()` runs the loop.

    Attributes:
        cfg: the run's config; this class reads `steps`, `snapshot_every`, `checkpoint_every`,
            `precision`, `optim` and `loss.bootstrap*`.
        device: the run's device.
        generator: the model being trained.
        previous_generator: a frozen copy of `generator` that takes its weights at every update,
            so it is the previous step's model (the IMR anchor), or None.
        objective: the loss terms (`EditObjective`): CLIP views, embeddings, weighted terms.
        sparsity: whether the alpha sparsity term applies (not to pixel inversion).
        optimizer: set by `setup_optimisation()`: MADGRAD or Adam over the generator's parameters.
        scaler: set by `setup_optimisation()`: the gradient scaler (active for fp16 on CUDA only).
        step: set by `setup_optimisation()`: optimisation steps taken.
        seconds: set by `setup_optimisation()`: training seconds over those steps (resumed runs
            included; saved in the checkpoint).
    """

    cfg: object
    device: torch.device
    generator: torch.nn.Module
    previous_generator: torch.nn.Module | None
    objective: EditObjective
    sparsity: bool
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int
    seconds: float

    # ---------------------------------------------------- what a subclass provides
    @abstractmethod
    def draw_sample(self) -> object:
        """What the generator sees this step (an image crop; frame crops and their atlas crop)."""

    @abstractmethod
    def render_sample(self, generator: torch.nn.Module, sample: object) -> list[Render]:
        """`generator` on the sample -> RGBA -> edit layers over the untouched input: the renders
        the losses see (one or more), without an IMR anchor."""

    @abstractmethod
    def snapshot(self) -> torch.Tensor:
        """The image saved every `snapshot_every` steps `(1, 3, H, W)`."""

    @abstractmethod
    def has_bootstrap_target(self) -> bool:
        """True when the edit has a bootstrap (relevancy) target; else the bootstrap weight is 0."""

    # --------------------------------------------------------------- one step
    def training_step(self, before_backward: Callable[[dict[str, torch.Tensor], dict[str, float]], None] | None = None
                      ) -> dict[str, float]:
        """One optimisation step, top to bottom. Returns its metrics record: each loss term (the
        mean over the step's renders), the weighted total and the number of renders.

        `before_backward(terms, weights)`, when given, sees the step's loss terms (with their
        graph) before the update: how an analysis (benchmarks/gradient_shares.py) reads a real step."""
        set_lr(self.optimizer, decayed_lr(self.cfg.optim, self.step))
        self.generator.train()

        # 1. sample: what the generator sees this step
        sample = self.draw_sample()

        # 2.-3. generator -> RGBA -> edit layers composited over the untouched input
        renders = self.render_sample(self.generator, sample)
        if self.previous_generator is not None:  # IMR anchor: the previous step's generator, same sample
            with torch.no_grad(), batch_statistics_without_update(self.previous_generator):
                anchors = [render.layers.composite for render in self.render_sample(self.previous_generator, sample)]
            renders = [dataclasses.replace(render, anchor=anchor) for render, anchor in zip(renders, anchors)]

        # 4. CLIP views: one paired draw per render -> embeddings (with gradient where the generator
        #    must move them: composite, green screen; without for the input and anchor views)
        embeddings = self.objective.view_embeddings(renders)

        # 5. losses: composition, IMC + IMR (or directional), screen, structure, sparsity, bootstrap
        terms, weights = self.objective.loss_terms(renders, embeddings, self.bootstrap_weight(self.step),
                                                   sparsity=self.sparsity)

        # 6. weighted total -> backward -> update; the IMR anchor first takes the weights being left
        #    behind, so next step it is "the previous step's model"
        if before_backward is not None:
            before_backward(terms, weights)
        total = sum(weights[name] * value for name, value in terms.items())
        if self.previous_generator is not None:
            self.previous_generator.load_state_dict(self.generator.state_dict())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        record = {name: float(value.detach()) for name, value in terms.items()}
        record.update(total=float(total.detach()), renders=len(renders))
        return record

    # ------------------------------------------------------------- set-up, schedule
    def setup_optimisation(self) -> None:
        self.optimizer = make_optimizer(self.generator.parameters(), self.cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.cfg.precision == Precision.fp16
                                           and self.device.type == "cuda")
        self.step = 0
        self.seconds = 0.0

    def bootstrap_weight(self, step: int) -> float:
        """The bootstrap weight of step `step` (0-based), 0 from loss.bootstrap_steps on: with
        loss.bootstrap_schedule linear, loss.bootstrap x (1 - (step + 1) / bootstrap_steps) (the
        reference's linear schedule); constant, loss.bootstrap."""
        loss = self.cfg.loss
        if not self.has_bootstrap_target() or step >= loss.bootstrap_steps:
            return 0.0
        if loss.bootstrap_schedule == BootstrapSchedule.constant:
            return loss.bootstrap
        return loss.bootstrap * (1.0 - (step + 1) / loss.bootstrap_steps)

    def train(self, run_dir: Path, progress: bool, should_stop: Callable[[], bool] | None = None) -> float:
        """Train from `self.step` to `cfg.steps`: one metrics line per step, a tqdm bar with the
        losses, `snapshot()` saved every `snapshot_every` steps, a checkpoint every `checkpoint_every`
        steps and at the end, and a debug log line every 5 % of the steps (a batch's clip log).
        Returns the seconds spent in this call.

        `should_stop`, when given, is asked after every step: True ends the training there (the
        checkpoint at the end is still written, so the run resumes from that step): how a caller
        such as the web app's Stop button ends a run within one step.

        A resumed run first drops the metrics lines past its checkpoint's step (a run killed
        after its last checkpoint wrote them), and its `seconds` continue from the checkpoint's,
        so `metrics.jsonl` reads as one uninterrupted run.
        """
        cfg = self.cfg
        metrics = MetricsLog(Path(run_dir) / "metrics.jsonl")
        metrics.truncate(self.step)
        # the bar's [elapsed<remaining] is the ETA: tqdm's measured seconds per step of this call's
        # steps (initial excluded) times the steps left
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc="edit", dynamic_ncols=True)
        debug_every = max(1, cfg.steps // 20)
        trained_before, first_step = self.seconds, self.step
        start = time.perf_counter()
        while self.step < cfg.steps:
            record = self.training_step()
            self.seconds = trained_before + time.perf_counter() - start
            record.update(step=self.step, lr=self.optimizer.param_groups[0]["lr"], seconds=round(self.seconds, 3))
            metrics.write(record)
            losses = {k: v for k, v in record.items() if k not in _NOT_LOSSES}
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
            bar.update(1)
            if self.step % debug_every == 0 or self.step == cfg.steps:
                logger.debug(f"step {self.step}/{cfg.steps} ({self.seconds:.1f} s, "
                             f"{eta_text(self.seconds - trained_before, self.step - first_step, cfg.steps - self.step)}"
                             "): " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
            if cfg.snapshot_every > 0 and self.step % cfg.snapshot_every == 0 and self.step < cfg.steps:
                save_png(self.snapshot(), Path(run_dir) / "snapshots" / f"step_{self.step:05d}.png")
            if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0:
                save_checkpoint(run_dir, self.state_dict())
            if should_stop is not None and self.step < cfg.steps and should_stop():
                logger.info(f"stopped at step {self.step}/{cfg.steps}: resume the run folder to continue")
                break
        bar.close()
        save_checkpoint(run_dir, self.state_dict())
        return time.perf_counter() - start

    # ---------------------------------------------------------------- checkpoints
    def extra_state(self) -> dict:
        """Hook: more entries for the checkpoint (e.g. which layer a video edit edits)."""
        return {}

    def check_state(self, state: dict) -> None:  # noqa: B027 (an optional hook, deliberately not abstract)
        """Hook: raise RunError when a checkpoint does not belong to this edit."""

    def state_dict(self) -> dict:
        state = {"step": self.step, "seconds": float(self.seconds), "generator": self.generator.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                 "torch_rng": torch.get_rng_state(), **self.extra_state()}
        if self.previous_generator is not None:
            state["previous_generator"] = self.previous_generator.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def resume(self, run_dir: Path) -> None:
        """Continue the run folder's checkpoint (model, optimiser, RNG, step)."""
        self.load_state_dict(load_checkpoint(run_dir, self.device))
        logger.info(f"resuming {run_dir} at step {self.step}")

    def load_state_dict(self, state: dict) -> None:
        self.check_state(state)
        try:
            self.generator.load_state_dict(state["generator"])
        except RuntimeError:
            raise RunError("the checkpoint's generator does not match generator.* / mode of the config "
                           "(do not override generator sizes when resuming; a run made before the reference "
                           "generator became the default resumes with generator.top_norm=true "
                           "generator.inv_colour_scale=1)") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.previous_generator is not None and "previous_generator" in state:
            self.previous_generator.load_state_dict(state["previous_generator"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.step = int(state["step"])
        self.seconds = float(state.get("seconds", 0.0))  # checkpoints from before it was saved: 0
