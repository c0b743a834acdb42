"""Hugging Face CLIP wrapper: loading, cached text embeddings, batched view embeddings,
self-similarity tokens and relevancy maps.

The model is frozen and in eval mode; its parameters never receive gradients, but images
passed in keep their autograd graph, so losses on the embeddings reach the generator.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .common.errors import UserError
from .fused import fused_ok, quick_gelu_linear

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Generic templates used for the source / composition texts, and the screen templates.
IMAGE_TEMPLATES = (
    "photo of {}.", "high quality photo of {}.", "a photo of {}.", "the photo of {}.",
    "image of {}.", "an image of {}.", "high quality image of {}.", "a high quality image of {}.",
    "the {}.", "a {}.", "{}.", "{}", "{}!", "{}...",
)
SCREEN_TEMPLATES = ("{} over a green screen.", "{} in front of a green screen.")


class ClipLoadError(UserError, RuntimeError):
    """The CLIP model or tokenizer could not be loaded; the message says what to do."""


def _return_free_memory_to_os() -> None:
    """glibc keeps freed small allocations (most weight matrices) in its heap; after a large
    one-time release, hand those pages back (a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _layer_forward(layer: nn.Module, original, hidden_states: torch.Tensor, *args, **kwargs):
    """A vision encoder layer's forward, activation-checkpointed while `layer.checkpointed`."""
    if layer.checkpointed and torch.is_grad_enabled() and hidden_states.requires_grad:
        return checkpoint(original, hidden_states, *args, use_reentrant=False, **kwargs)
    return original(hidden_states, *args, **kwargs)


def _lean_mlp_forward(mlp: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """CLIPMLP.forward with the quick-GELU + fc2 tail fused (`fused.quick_gelu_linear`) while
    `mlp.fused_tail` is set: same values, one (.., 4d) activation kept instead of two."""
    hidden = mlp.fc1(hidden_states)
    if mlp.fused_tail and fused_ok(hidden):
        return quick_gelu_linear(hidden, mlp.fc2.weight, mlp.fc2.bias)
    return mlp.fc2(mlp.activation_fn(hidden))


def load_clip_parts(name_or_path: str):
    """Load `(CLIPModel, CLIPTokenizer, mean, std)` from a hub id or a local folder.

    Looks in the local folder or the Hugging Face cache first and only then online, so an
    offline machine fails fast with a ClipLoadError instead of a network stack trace.
    """
    from transformers import CLIPModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    is_folder = Path(name_or_path).is_dir()
    if not is_folder and (name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1):
        raise ClipLoadError(f"CLIP model folder not found: '{name_or_path}' (clip.model must be a hub id "
                            "like openai/clip-vit-base-patch32 or an existing local folder)")
    last_error: Exception | None = None
    attempts = (True,) if is_folder or os.environ.get("HF_HUB_OFFLINE") == "1" else (True, False)
    for local_only in attempts:
        try:
            model = CLIPModel.from_pretrained(name_or_path, local_files_only=local_only, dtype=torch.float32)
            tokenizer = CLIPTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
            break
        except (OSError, ValueError) as error:  # missing files / no network
            last_error = error
    else:
        where = f"local folder '{name_or_path}'" if is_folder else \
            f"hub id '{name_or_path}' (not in the Hugging Face cache, and it could not be downloaded)"
        reason = str(last_error).splitlines()[0][:200] if last_error else ""
        raise ClipLoadError(f"could not load CLIP model from {where}: {reason}. Put a copy saved with "
                            "save_pretrained in a folder and pass clip.model=/path/to/local/folder")
    mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    if is_folder and (Path(name_or_path) / "preprocessor_config.json").is_file():
        processor = json.loads((Path(name_or_path) / "preprocessor_config.json").read_text())
        mean = tuple(processor.get("image_mean", mean))
        std = tuple(processor.get("image_std", std))
    return model, tokenizer, mean, std


def warn_unknown_words(model_folder: str, text: str) -> None:
    """Log a warning naming the words of `text` that the model folder's `known_words.json` does
    not list. A model that ships that file (the toy CLIP) saw only those words in training; its
    tokenizer splits any other word into letters, which carry no meaning for it. Models without
    the file (real CLIPs, hub ids) are not checked."""
    path = Path(model_folder, "known_words.json") if model_folder else None
    if path is None or not path.is_file():
        return
    groups = json.loads(path.read_text())
    lists = {name: words for name, words in groups.items() if isinstance(words, list)}
    known = {word for words in lists.values() for word in words}
    unknown = [word for word in dict.fromkeys(re.findall(r"[^\W\d_]+", text.lower())) if word not in known]
    if unknown:
        knows = "; ".join(f"{name}: {', '.join(words)}" for name, words in lists.items() if name != "other words")
        logging.getLogger(__name__).warning(
            "the %s never saw %s (it knows %s); the edit runs, but expect no meaning from those words",
            groups.get("model", "CLIP model"), ", ".join(repr(word) for word in unknown), knows)


#: the template of a text used as it is (the relevancy's default)
RAW_TEXT = ("{}",)


class ClipGuide(nn.Module):
    """Frozen CLIP with the operations the editing losses need.

    All image inputs are `(B, 3, H, W)` floats in [0, 1] (CLIP mean/std normalisation is
    applied here); any H, W works (position embeddings are interpolated).
    """

    def __init__(self, model, tokenizer, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self._text_cache: dict[tuple[str, str], torch.Tensor] = {}
        # The vision MLPs (quick-GELU models, as OpenAI's) get a fused tail that keeps fewer
        # activations when views are encoded with gradients (`encode_images(memory_efficient=)`).
        self._lean_mlps = []
        if getattr(model.config.vision_config, "hidden_act", None) == "quick_gelu":
            for layer in model.vision_model.encoder.layers:
                mlp = layer.mlp
                mlp.fused_tail = False
                mlp.forward = _lean_mlp_forward.__get__(mlp)
                self._lean_mlps.append(mlp)
        # The first layers can be activation-checkpointed (`encode_images(checkpoint_layers=)`):
        # a middle ground between keeping every activation and checkpointing whole chunks.
        self._vision_layers = list(model.vision_model.encoder.layers)
        for layer in self._vision_layers:
            layer.checkpointed = False
            layer.forward = functools.partial(_layer_forward, layer, layer.forward)

    @classmethod
    def load(cls, name_or_path: str, device: torch.device | str = "cpu") -> ClipGuide:
        model, tokenizer, mean, std = load_clip_parts(name_or_path)
        return cls(model, tokenizer, mean, std).to(device)

    def train(self, mode: bool = True) -> ClipGuide:
        super().train(mode)
        self.model.eval()  # always eval: dropout etc. stay off
        return self

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.vision_config.num_hidden_layers)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    # ------------------------------------------------------------------ text
    def release_text_model(self) -> None:
        """Free the text tower (a third of ViT-B/32's weights, about 250 MB in fp32) once every
        text a run needs is embedded: cached `text_embeddings` keep working, new texts raise."""
        self.model.text_model = None
        gc.collect()
        _return_free_memory_to_os()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Text embeddings `(T, d)` in float32, one per text (no gradient); unit-norm unless
        `normalize` is False (CLIP's raw projection)."""
        if self.model.text_model is None:
            raise RuntimeError(f"the CLIP text model was released; cannot embed {list(texts)[:3]}")
        batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        out = self.model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        embeds = self.model.text_projection(out.pooler_output).float()
        return F.normalize(embeds, dim=-1) if normalize else embeds

    def text_embeddings(self, text: str, templates: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Embeddings `(len(templates), d)` of `text` under each template, unit-norm unless
        `normalize` is False; cached (raw, so both are served after the text tower is released)."""
        key = (text, "\x00".join(templates))
        if key not in self._text_cache:
            if all(cached != text for cached, _ in self._text_cache):  # a new text: check its words once
                warn_unknown_words(getattr(self.model, "name_or_path", ""), text)
            self._text_cache[key] = self.encode_texts([t.format(text) for t in templates], normalize=False)
        embeds = self._text_cache[key].to(self.device)
        return F.normalize(embeds, dim=-1) if normalize else embeds

    # ----------------------------------------------------------------- images
    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model.vision_model(pixel_values=self.normalize(images), interpolate_pos_encoding=True)
        return self.model.visual_projection(out.pooler_output)

    def encode_images(self, images: torch.Tensor, checkpoint_chunk: int = 0,
                      memory_efficient: bool = True, checkpoint_layers: int = 0,
                      normalize: bool = True) -> torch.Tensor:
        """Batched forward: `(B, 3, H, W)` in [0, 1] -> unit-norm embeddings `(B, d)` float32
        (`normalize` False: CLIP's raw projection).

        `checkpoint_chunk` > 0 (and gradients on): activation checkpointing in chunks of that
        many views: the backward re-runs one chunk's forward at a time, so the memory of the
        CLIP graph shrinks to one chunk's for about a third more CLIP compute.
        `memory_efficient` (without checkpointing): fused MLP tails (same values, about 28 %
        less graph memory for ViT-B/32, no recompute beyond the GELU). `checkpoint_layers` > 0: the first
        that many vision layers are activation-checkpointed (their forward re-runs in the
        backward), the rest keep their activations.
        """
        if checkpoint_chunk > 0 and torch.is_grad_enabled() and images.requires_grad:
            # (plain MLPs here: the recompute in the backward must save what the forward saved)
            embeds = torch.cat([checkpoint(self._embed, chunk, use_reentrant=False)
                                for chunk in images.split(checkpoint_chunk)])
        else:
            checkpointed = set(range(min(max(checkpoint_layers, 0), len(self._vision_layers))))
            for index, layer in enumerate(self._vision_layers):
                layer.checkpointed = index in checkpointed
                # (a checkpointed layer's recompute must save what its forward saved: plain MLP)
                if hasattr(layer.mlp, "fused_tail"):
                    layer.mlp.fused_tail = memory_efficient and index not in checkpointed
            try:
                embeds = self._embed(images)
            finally:
                for layer in self._vision_layers:
                    layer.checkpointed = False
                for mlp in self._lean_mlps:
                    mlp.fused_tail = False
        return F.normalize(embeds.float(), dim=-1, eps=1e-6) if normalize else embeds.float()

    def structure_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Token sequence entering the last block, `(B, 1 + patches, C)` (HF hidden_states[-2])."""
        out = self.model.vision_model(pixel_values=self.normalize(images), interpolate_pos_encoding=True,
                                      output_hidden_states=True)
        return out.hidden_states[-2]

    def relevancy(self, image: torch.Tensor, text: str, templates: Sequence[str] = RAW_TEXT,
                  start_layer: int | None = None) -> torch.Tensor:
        """Chefer et al. (2021) relevancy of `text` over `image` `(1, 3, H, W)` -> `(1, 1, H, W)` in [0, 1].

        The score is CLIP's logit, exp(logit_scale) x cos(image, text), with the text as it is
        (template "{}"; `templates` given: their mean embedding). For each block from
        `start_layer` (default: the last block only, as the reference's `relevancy_num_layers`
        10 of ViT-B/32's 12), cam = mean over heads of clamp(grad * attention, 0) and
        R <- R + cam @ R from R = I; the CLS row over the patches is upsampled bilinearly and
        min-max normalised.
        """
        patch = int(self.model.config.vision_config.patch_size)
        height, width = image.shape[-2:]
        start = max(0, self.num_layers - 1) if start_layer is None else start_layer
        text_embed = F.normalize(self.text_embeddings(text, templates).mean(0, keepdim=True), dim=-1)
        logit_scale = float(self.model.logit_scale.exp())
        previous = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")  # attention probabilities are needed
        try:
            with torch.enable_grad():
                # the input requires grad so that the (frozen) model's attentions carry gradients
                pixels = self.normalize(image.detach().float()).requires_grad_(True)
                out = self.model.vision_model(pixel_values=pixels,
                                              interpolate_pos_encoding=True, output_attentions=True)
                attentions = out.attentions
                for attention in attentions:
                    attention.retain_grad()
                embed = F.normalize(self.model.visual_projection(out.pooler_output), dim=-1)
                score = logit_scale * (embed * text_embed.to(embed.dtype)).sum()
                score.backward()
        finally:
            self.model.set_attn_implementation(previous)
            self.model.zero_grad(set_to_none=True)
        tokens = attentions[0].shape[-1]
        relevance = torch.eye(tokens, device=image.device)
        for attention in attentions[start:]:
            cam = (attention.grad * attention).clamp(min=0).mean(dim=1)[0].detach().float()
            relevance = relevance + cam @ relevance
        grid = relevance[0, 1:].reshape(1, 1, height // patch, width // patch)
        grid = F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
        grid = grid - grid.min()
        return grid / grid.max().clamp(min=1e-8)
