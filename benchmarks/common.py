"""Shared benchmark helpers: a ViT-B/32-sized CLIP with random weights, memory and timing."""
from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import torch

from text2live_geo.common.timing import (  # noqa: F401 (peak_memory_gib and synchronize re-exported)
    peak_memory_gib,
    synchronize,
    time_calls,
)

ROOT = Path(__file__).resolve().parents[1]
#: the image step the step benchmarks time (bench_step.py's modes, step_flops.py, gpu_suite.py through
#: bench_step): the recipe before the SP layer rule, whose structures (one paired view draw, one composite
#: encoding, one render per step) their figures and the README's were measured and counted on. The shipped
#: image default since then draws views and encodes the composite as the reference does (more encodings)
STEP_RECIPE = ROOT / "configs" / "image" / "former_default.yaml"
VIT_B32_CONFIG = ROOT / "configs" / "clip" / "vit-b-32.json"


def vit_b32_clip(device: torch.device, words=("horse", "golden", "photo", "of", "a", "the", "image", "high",
                                                "quality", "over", "green", "screen", "in", "front")):
    """A randomly initialised CLIP with the ViT-B/32 architecture, through ClipGuide."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from text2live_geo.clip import ClipGuide
    from text2live_geo.tiny_clip import write_word_tokenizer

    spec = json.loads(VIT_B32_CONFIG.read_text())
    spec.pop("_comment", None)
    folder = Path(tempfile.mkdtemp(prefix="vitb32_tok_"))
    write_word_tokenizer(folder, words)
    tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    spec["text_config"].update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                               pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(**spec))
    return ClipGuide(model, tokenizer).to(device)


def timed(function, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median seconds of `function()` over `repeats` runs after `warmup` runs."""
    return statistics.median(time_calls(function, device, repeats, warmup))
