"""What the image and video editors share: the update step (with the hand-over to the IMR
anchor), bootstrap annealing, and checkpoint state."""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from ..io import save_png
from .run import MetricsLog, RunError, load_checkpoint, make_optimizer, save_checkpoint

# record entries that are not loss values (kept out of the progress bar)
_NOT_LOSSES = ("step", "lr", "seconds", "renders")


logger = logging.getLogger(__name__)


class GeneratorTraining(ABC):
    """Base of an editor: it trains `generator` step by step with what is shared here.

    A subclass sets the first four attributes below in `__init__`, then calls
    `setup_optimisation()`; it implements `training_step()` (sample -> generator -> composite ->
    CLIP views -> losses -> `optimise()`) and `has_bootstrap_target()`, and may override the
    checkpoint hooks `extra_state()` and `check_state()`. `train()` runs the loop.

    Attributes:
        cfg: the run's config; this class reads `steps`, `log_every`, `checkpoint_every`,
            `precision`, `optim` and `loss.bootstrap` / `loss.bootstrap_steps`.
        device: the run's device.
        generator: the model being trained.
        previous_generator: a frozen copy of `generator` that takes its weights at every update,
            so it is the previous step's model (the IMR anchor), or None.
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
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int
    seconds: float

    # ---------------------------------------------------- what a subclass provides
    @abstractmethod
    def training_step(self) -> dict[str, float]:
        """One optimisation step; returns its metrics record (the loss values and the weighted
        total, as `optimise()` returns them, plus anything the editor adds)."""

    @abstractmethod
    def has_bootstrap_target(self) -> bool:
        """True when the edit has a bootstrap (relevancy) target; else the bootstrap weight is 0."""

    # ------------------------------------------------------------- the update step
    def setup_optimisation(self) -> None:
        self.optimizer = make_optimizer(self.generator.parameters(), self.cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.cfg.precision == "fp16" and self.device.type == "cuda")
        self.step = 0
        self.seconds = 0.0

    def bootstrap_weight(self, step: int) -> float:
        """The bootstrap weight of step `step` (0-based), 0 from loss.bootstrap_steps on: with
        loss.bootstrap_schedule linear, loss.bootstrap x (1 - (step + 1) / bootstrap_steps) (the
        reference's linear schedule); constant, loss.bootstrap."""
        loss = self.cfg.loss
        if not self.has_bootstrap_target() or step >= loss.bootstrap_steps:
            return 0.0
        if loss.bootstrap_schedule == "constant":
            return loss.bootstrap
        return loss.bootstrap * (1.0 - (step + 1) / loss.bootstrap_steps)

    def optimise(self, terms: dict[str, torch.Tensor], weights: dict[str, float]) -> dict[str, float]:
        """Weighted total -> backward -> optimiser step. The IMR anchor generator first takes the
        weights being left behind, so next step it is "the previous step's model"."""
        total = sum(weights[name] * value for name, value in terms.items())
        if self.previous_generator is not None:
            self.previous_generator.load_state_dict(self.generator.state_dict())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        record = {name: float(value.detach()) for name, value in terms.items()}
        record["total"] = float(total.detach())
        return record

    def train(self, run_dir: Path, progress: bool, snapshot: Callable[[], torch.Tensor]) -> float:
        """Train from `self.step` to `cfg.steps`: one metrics line per step, a tqdm bar with the
        losses, `snapshot()` saved every `log_every` steps, a checkpoint every `checkpoint_every`
        steps and at the end, and a debug log line every 5 % of the steps (a batch's clip log).
        Returns the seconds spent in this call.

        A resumed run first drops the metrics lines past its checkpoint's step (a run killed
        after its last checkpoint wrote them), and its `seconds` continue from the checkpoint's,
        so `metrics.jsonl` reads as one uninterrupted run.
        """
        cfg = self.cfg
        metrics = MetricsLog(Path(run_dir) / "metrics.jsonl")
        metrics.truncate(self.step)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc="edit", dynamic_ncols=True)
        log_every = max(1, cfg.steps // 20)
        trained_before = self.seconds
        start = time.perf_counter()
        while self.step < cfg.steps:
            record = self.training_step()
            self.seconds = trained_before + time.perf_counter() - start
            record.update(step=self.step, lr=self.optimizer.param_groups[0]["lr"], seconds=round(self.seconds, 3))
            metrics.write(record)
            losses = {k: v for k, v in record.items() if k not in _NOT_LOSSES}
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
            bar.update(1)
            if self.step % log_every == 0 or self.step == cfg.steps:
                logger.debug(f"step {self.step}/{cfg.steps} ({self.seconds:.1f} s): "
                             + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
            if cfg.log_every > 0 and self.step % cfg.log_every == 0 and self.step < cfg.steps:
                save_png(snapshot(), Path(run_dir) / "snapshots" / f"step_{self.step:05d}.png")
            if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0:
                save_checkpoint(run_dir, self.state_dict())
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
