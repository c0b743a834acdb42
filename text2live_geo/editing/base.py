"""What the image and video editors share: the update step (with the hand-over to the IMR
anchor), bootstrap annealing, and checkpoint state."""
from __future__ import annotations

import torch

from .run import RunError, make_optimizer


class GeneratorTraining:
    """Mixin for an editor with `cfg`, `device`, `generator`, `previous_generator` (or None);
    call `setup_optimisation()` at the end of `__init__`."""

    cfg: object
    device: torch.device
    generator: torch.nn.Module
    previous_generator: torch.nn.Module | None

    def setup_optimisation(self) -> None:
        self.optimizer = make_optimizer(self.generator.parameters(), self.cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.cfg.precision == "fp16" and self.device.type == "cuda")
        self.step = 0

    def has_bootstrap_target(self) -> bool:
        raise NotImplementedError

    def bootstrap_weight(self, step: int) -> float:
        """Bootstrap weight annealed linearly from loss.bootstrap to 0 over loss.bootstrap_steps."""
        loss = self.cfg.loss
        if not self.has_bootstrap_target() or loss.bootstrap_steps <= 0:
            return 0.0
        return loss.bootstrap * max(0.0, 1.0 - step / loss.bootstrap_steps)

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

    # ---------------------------------------------------------------- checkpoints
    def extra_state(self) -> dict:
        return {}

    def check_state(self, state: dict) -> None:
        """Raise RunError when a checkpoint does not belong to this edit."""

    def state_dict(self) -> dict:
        state = {"step": self.step, "generator": self.generator.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                 "torch_rng": torch.get_rng_state(), **self.extra_state()}
        if self.previous_generator is not None:
            state["previous_generator"] = self.previous_generator.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.check_state(state)
        try:
            self.generator.load_state_dict(state["generator"])
        except RuntimeError:
            raise RunError("the checkpoint's generator does not match generator.* / mode of the config "
                           "(do not override generator sizes when resuming)") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.previous_generator is not None and "previous_generator" in state:
            self.previous_generator.load_state_dict(state["previous_generator"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.step = int(state["step"])
