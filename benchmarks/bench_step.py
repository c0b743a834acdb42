#!/usr/bin/env python
"""Time image training steps: our batched step against the reference recipe's structure.

Both modes run the same generator, losses (directional guidance, as in the reference), views,
image size and seed with a CLIP of the ViT-B/32 architecture (random weights, built from
configs/clip/vit-b-32.json: the same compute as the real model, no download).

- ours: one paired view draw (one resampling for all views); ONE batched CLIP forward with
  gradient for composite + green screen views, one without gradient for the input views;
  each embedding shared by the losses; fused generator blocks and CLIP MLP tails; the CLIP
  text tower released once the texts are embedded (as `edit_image` does).
- baseline (--baseline / default comparison): the reference's structure with plain modules:
  views drawn one at a time (crop, resize, flip, affine, perspective, colour jitter as separate
  kornia ops) and encoded one at a time, the composite encoded twice (composition and
  directional losses draw their own views), input views drawn separately (unpaired).
  4 x V encodings per step, 3 x V with gradient.

Each mode runs in its own subprocess so peak memory (CUDA max allocated, or peak RSS on CPU)
is per mode. Prints a table and, last, `speedup_vs_baseline: <ratio>`; the figures, with the
settings, the commit and the load average before and after, go to benchmarks/results/bench_step.json
(--out).

  python benchmarks/bench_step.py                       # 512 px, 16 views
  python benchmarks/bench_step.py --size 256 --views 8 --steps 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="image side in px (square input)")
    parser.add_argument("--views", type=int, default=16, help="CLIP views per image (n_aug)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode (after 1 warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="precision of our step (the baseline is always fp32, as the reference)")
    parser.add_argument("--guidance", default="directional", choices=["directional", "geodesic"],
                        help="guidance of our step (the baseline is directional)")
    parser.add_argument("--checkpoint-chunk", type=int, default=0,
                        help="our step: CLIP activation checkpointing in chunks of N views (clip.checkpoint_chunk)")
    parser.add_argument("--baseline", action="store_true", help="only run the baseline mode")
    parser.add_argument("--extra", action="store_true",
                        help="also time our step with geodesic guidance and with bf16")
    parser.add_argument("--shipped", action="store_true",
                        help="also time the shipped image default's typical step (ImageEditConfig as it is, "
                             "no recipe file: unpaired views, the composite encoded twice, the source-text "
                             "bootstrap with a relevancy map per render; one render, as on 74 of every 75 "
                             "steps) beside `ours` (the former recipe)")
    parser.add_argument("--clip-folder", default=None,
                        help="time with this CLIP folder instead of the ViT-B/32 architecture (smoke tests)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for both modes (repeatable)")
    parser.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for our step only, e.g. generator.checkpoint_levels=1 (repeatable)")
    parser.add_argument("--out", default=str(HERE / "results" / "bench_step.json"),
                        help="JSON file for the figures (settings, load, every mode's result); '' writes none")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- worker side
def reference_style_objective_class():
    import kornia.augmentation as K
    import torch
    import torch.nn.functional as F

    from text2live_geo.augment import view_shape
    from text2live_geo.common.runs import autocast_context
    from text2live_geo.editing.objective import EditObjective, RenderEmbeddings

    class ReferenceStyleObjective(EditObjective):
        """The reference recipe's CLIP work: views drawn one at a time (crop of the full-size
        image, resize, then flip / affine / perspective / colour jitter / grayscale as separate
        kornia ops, i.e. torchvision's), encoded one at a time, the composite encoded twice,
        unpaired input views. Same loss formulas and weights as ours."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.per_view = K.AugmentationSequential(
                K.RandomHorizontalFlip(p=0.5), K.RandomAffine(degrees=15.0, translate=(0.1, 0.1), p=0.8),
                K.RandomPerspective(distortion_scale=0.4, p=0.5))
            self.per_view_colour = K.AugmentationSequential(
                K.ColorJitter(0.1, 0.1, 0.1, 0.1, p=0.7), K.RandomGrayscale(p=0.15))

        def augment_one_by_one(self, image):
            height, width = image.shape[-2:]
            size = view_shape(height, width, self.view_size, self.clip_cfg.max_view_ratio)
            views = []
            for index in range(self.clip_cfg.n_aug):
                crop = image
                if index > 0:
                    side = float(torch.empty(()).uniform_(self.clip_cfg.crop_min, 1.0))
                    h, w = int(height * side), int(width * side)
                    top, left = int(torch.randint(0, height - h + 1, ())), int(torch.randint(0, width - w + 1, ()))
                    crop = image[..., top:top + h, left:left + w]
                view = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True)
                view = self.per_view(view - self.augment.fill) + self.augment.fill
                views.append(self.per_view_colour(view.clamp(0, 1)))
            return torch.cat(views)

        def _encode_each(self, views):
            return torch.cat([self.clip_guide.encode_images(view[None], memory_efficient=False)  # plain CLIP, one
                              for view in views])  # image at a time

        def view_embeddings(self, renders):
            """The reference's CLIP work for each render: the composite drawn and encoded twice (once
            per loss), the input on its own unpaired draw, the green screen; every view encoded alone."""
            embedded = []
            with autocast_context(self.device, self.precision):
                for render in renders:
                    views = self.augment_one_by_one
                    composite = self._encode_each(views(render.layers.composite))  # composition loss
                    composite_again = self._encode_each(views(render.layers.composite))  # directional: again
                    with torch.no_grad():
                        source = self._encode_each(views(render.source))  # its own, unpaired draw
                    screen = self._encode_each(views(render.layers.greenscreen))
                    embedded.append(RenderEmbeddings({"composite": composite, "composite_dir": composite_again,
                                                      "input": source, "screen": screen}))
            return embedded

        def loss_terms(self, renders, embeddings, bootstrap_weight=0.0, sparsity=True):
            """Same loss formulas and weights as ours (composition, directional, screen, structure,
            sparsity), each the mean over the renders."""
            from text2live_geo.augment import resize_short

            loss_cfg, texts, ratio = self.loss_cfg, self.step_texts(), self.clip_cfg.max_structure_ratio
            sums, weights = {}, {"composition": loss_cfg.composition, "directional": loss_cfg.directional,
                                 "screen": loss_cfg.screen, "structure": loss_cfg.structure}
            for render, embedded in zip(renders, embeddings):
                roles = embedded.unit
                with torch.no_grad():
                    input_tokens = self.clip_guide.structure_tokens(resize_short(render.source, self.structure_size,
                                                                                 ratio))
                output_tokens = self.clip_guide.structure_tokens(resize_short(render.layers.composite,
                                                                              self.structure_size, ratio))
                terms = {"composition": self.composition_loss(roles["composite"], texts.comp_all),
                         "directional": self.directional_loss(roles["input"], roles["composite_dir"], texts.src,
                                                              texts.comp),
                         "screen": self.composition_loss(roles["screen"], texts.screen),
                         "structure": self.structure_loss(input_tokens, output_tokens)}
                if sparsity and loss_cfg.sparsity > 0:
                    terms["sparsity"] = self.sparsity_loss(render.layers.alpha)
                    weights["sparsity"] = loss_cfg.sparsity
                for name, value in terms.items():
                    sums[name] = sums[name] + value if name in sums else value
            return {name: value / len(renders) for name, value in sums.items()}, weights

    return ReferenceStyleObjective


class StepTimeline:
    """Times the CLIP and generator work INSIDE real training steps (no replays in isolation):
    each CLIP image call and generator forward is timed, and hooks mark when the backward
    reaches its output (start) and its input or last parameter (end). Overlapping intervals
    are merged, so `clip_s + generator_s + other_s == step_s`."""

    def __init__(self, clip, generator, device, anchor_generator=None):
        import torch

        self.torch, self.device = torch, device
        self.intervals = {"clip": [], "generator": []}
        self.calls: list[tuple[str, tuple, bool]] = []  # CLIP calls: (method, input shape, with gradient)
        self.active = False
        for name in ("encode_images", "structure_tokens"):
            setattr(clip, name, self._wrap(getattr(clip, name), "clip", name))
        generator.forward = self._wrap(generator.forward, "generator", "generator")
        if anchor_generator is not None:  # the IMR anchor's no-grad forward is generator work too
            anchor_generator.forward = self._wrap(anchor_generator.forward, "generator", "anchor generator")
        self._generator_backward = None
        for parameter in generator.parameters():  # the backward ends at the last parameter gradient
            parameter.register_post_accumulate_grad_hook(self._parameter_grad)

    def now(self) -> float:
        from common import synchronize

        synchronize(self.device)
        return time.perf_counter()

    def _parameter_grad(self, _parameter) -> None:
        if self.active and self._generator_backward is not None:
            self._generator_backward[1] = self.now()

    def _wrap(self, function, kind: str, name: str):
        torch = self.torch

        def wrapper(inputs, *args, **options):
            if not self.active:
                return function(inputs, *args, **options)
            start = self.now()
            out = function(inputs, *args, **options)
            self.intervals[kind].append([start, self.now()])
            grad = torch.is_grad_enabled() and out.requires_grad
            if kind == "clip":
                self.calls.append((name, tuple(inputs.shape), grad))
            if grad:
                span = [None, None]
                self.intervals[kind].append(span)
                if kind == "generator":
                    self._generator_backward = span
                out.register_hook(lambda g: span.__setitem__(0, self.now()))
                if kind == "clip" and inputs.requires_grad:
                    inputs.register_hook(lambda g: span.__setitem__(1, self.now()))
            return out

        return wrapper

    def start_step(self) -> None:
        self.intervals = {"clip": [], "generator": []}
        self.calls, self._generator_backward, self.active = [], None, True

    def seconds(self, kind: str) -> float:
        spans = sorted(tuple(span) for span in self.intervals[kind] if None not in span)
        total, end = 0.0, float("-inf")
        for start, stop in spans:  # union of intervals
            if stop > end:
                total += stop - max(start, end)
                end = stop
        return total


def worker(args, mode: str) -> dict:
    import torch

    from common import STEP_RECIPE, peak_memory_gib, timed, vit_b32_clip
    from text2live_geo.common.config import load_config
    from text2live_geo.common.runs import select_device
    from text2live_geo.config import ImageEditConfig
    from text2live_geo.editing.image import ImageEditor

    device = select_device(args.device)
    precision = "fp32" if mode == "baseline" else args.precision
    guidance = "directional" if mode == "baseline" else args.guidance
    if mode == "ours-geodesic":
        guidance = "geodesic"
    if mode == "ours-bf16":
        precision = "bf16"
    # `shipped`: the image default as a user gets it, so only the benchmark-wide keys below are set; the
    # other modes time STEP_RECIPE's step structure (see benchmarks/common.py)
    recipe = None if mode == "shipped" else STEP_RECIPE
    if mode == "shipped":
        guidance = ImageEditConfig().loss.guidance.value
    if args.clip_folder:
        from text2live_geo.clip import ClipGuide

        clip = ClipGuide.load(args.clip_folder, device)
    else:
        clip = vit_b32_clip(device)
    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, args.size)
    image = torch.stack([ramp[None].expand(args.size, -1), ramp[:, None].expand(-1, args.size),
                         torch.rand(args.size, args.size) * 0.2 + 0.4])[None]
    cfg = load_config(ImageEditConfig, recipe, [
        "image=bench.png", f"clip.n_aug={args.views}", f"loss.guidance={guidance}", f"precision={precision}",
        "crops.full_image_every=1", f"crops.resize_short={args.size}", "device=" + str(device),
        "text.src=horse", "text.comp=golden horse", "text.screen=golden horse",
        f"clip.checkpoint_chunk={0 if mode == 'baseline' else args.checkpoint_chunk}",
        # the reference's plain modules: no fused generator blocks, no fused CLIP MLP tails
        f"generator.memory_efficient={mode != 'baseline'}", f"clip.memory_efficient={mode != 'baseline'}"]
        + list(args.set)
        + ([] if mode == "baseline" else list(args.ours_set))
        # every timed step here is a whole-image step (full_image_every=1, for one input size in all modes);
        # the shipped default renders the whole image a second time only on its whole-image steps (1 in
        # full_image_every=75), so its typical step, timed here, has one render
        + (["crops.full_image_extra=false"] if mode == "shipped" else []))
    editor = ImageEditor(cfg, image, clip, device)
    if mode == "baseline":
        editor.objective = reference_style_objective_class()(cfg.text, cfg.clip, cfg.loss, clip, device, "fp32")
    else:
        clip.release_text_model()  # as edit_image does once every text is embedded (the reference keeps it)
    timeline = StepTimeline(clip, editor.generator, device, editor.previous_generator)

    step_seconds, clip_seconds, generator_seconds = [], [], []
    editor.training_step()  # warm-up
    for _ in range(args.steps):
        timeline.start_step()
        start = timeline.now()
        editor.training_step()
        step_seconds.append(timeline.now() - start)
        timeline.active = False
        clip_seconds.append(timeline.seconds("clip"))
        generator_seconds.append(timeline.seconds("generator"))
    order = sorted(range(args.steps), key=step_seconds.__getitem__)
    middle = order[len(order) // 2]  # the median step, with its own component times
    step, clip_s, generator_s = step_seconds[middle], clip_seconds[middle], generator_seconds[middle]
    calls = timeline.calls
    views_encoded = sum(shape[0] for name, shape, _ in calls if name == "encode_images")
    result = {"mode": mode, "guidance": guidance, "precision": precision, "device": str(device),
              "step_s": step, "steps_s": step_seconds, "clip_s": clip_s, "generator_s": generator_s,
              "clip_share": clip_s / step, "generator_share": generator_s / step,
              "overhead_share": max(0.0, 1 - (clip_s + generator_s) / step),
              "views_encoded": views_encoded, "views_per_s": views_encoded / step,
              "clip_calls": len(calls), "image_encodings": sum(name == "encode_images" for name, _, _ in calls),
              "peak_gib": peak_memory_gib(device)}
    result["bootstrap_target"] = bool(editor.has_bootstrap_target())  # relevancy work in the timed steps
    if mode.startswith("ours"):
        from text2live_geo.losses.geodesic import geodesic_cosine

        features = torch.nn.functional.normalize(torch.randn(16, 512, device=device), dim=-1)
        other = torch.nn.functional.normalize(torch.randn(16, 512, device=device), dim=-1)
        result["geodesic_cosine_s"] = timed(lambda: geodesic_cosine(features, other), device, repeats=5)
    return result


# --------------------------------------------------------------------------- parent side
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args, args.worker)), flush=True)
        return
    modes = ["baseline"] if args.baseline else ["ours", "baseline"]
    if args.extra and not args.baseline:
        modes += ["ours-geodesic", "ours-bf16"]
    if args.shipped and not args.baseline:
        modes += ["shipped"]
    passthrough = ["--size", str(args.size), "--views", str(args.views), "--steps", str(args.steps),
                   "--device", args.device, "--precision", args.precision, "--guidance", args.guidance,
                   "--checkpoint-chunk", str(args.checkpoint_chunk)]
    if args.clip_folder:
        passthrough += ["--clip-folder", args.clip_folder]
    for override in args.set:
        passthrough += ["--set", override]
    for override in args.ours_set:
        passthrough += ["--ours-set", override]
    results = {}
    load_before = os.getloadavg()
    clip_name = "CLIP " + args.clip_folder if args.clip_folder else "ViT-B/32-sized CLIP (random weights)"
    print(f"bench_step: {args.size}x{args.size} px, {args.views} views, {args.steps} timed steps, "
          f"{clip_name}, checkpoint chunk {args.checkpoint_chunk}, "
          f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    for mode in modes:
        completed = subprocess.run([sys.executable, __file__, "--worker", mode] + passthrough,
                                   capture_output=True, text=True)
        lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
        if completed.returncode != 0 or not lines:
            print(f"{mode}: failed\n{completed.stderr[-2000:]}", file=sys.stderr)
            sys.exit(1)
        results[mode] = json.loads(lines[-1][len("RESULT "):])
        r = results[mode]
        print(f"{mode:14s} {r['guidance']:11s} {r['precision']:5s} step {r['step_s']:7.3f} s  "
              f"peak {r['peak_gib']:6.2f} GiB  views/s {r['views_per_s']:6.1f}  CLIP calls {r['clip_calls']:3d}  "
              f"views encoded {r['views_encoded']:3d}  "
              f"CLIP {100 * r['clip_share']:5.1f} %  generator {100 * r['generator_share']:5.1f} %  "
              f"other {100 * r['overhead_share']:5.1f} %", flush=True)
    if "ours" in results:
        ours = results["ours"]
        print(f"geodesic_cosine n=16 d=512: {1000 * ours['geodesic_cosine_s']:.1f} ms "
              f"= {100 * ours['geodesic_cosine_s'] / ours['step_s']:.2f} % of our step")
    if "shipped" in results and "ours" in results:
        print(f"shipped_default_step_vs_former_recipe: {results['shipped']['step_s'] / results['ours']['step_s']:.2f}")
    if "ours-bf16" in results:
        print(f"bf16_speedup_vs_fp32: {results['ours']['step_s'] / results['ours-bf16']['step_s']:.2f}")
    if "ours" in results and "baseline" in results:
        print(f"memory_ratio_vs_baseline: {results['ours']['peak_gib'] / results['baseline']['peak_gib']:.2f}")
        print(f"speedup_vs_baseline: {results['baseline']['step_s'] / results['ours']['step_s']:.2f}")
    if args.out:
        write_figures(Path(args.out), args, results, load_before)


def write_figures(path: Path, args, results: dict, load_before) -> None:
    from text2live_geo.common.atomic import atomic_write_json

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                            text=True).stdout.strip() or None
    settings = {key: value for key, value in vars(args).items() if key not in ("worker", "out")}
    figures = {"settings": settings, "commit": commit, "cpu_count": os.cpu_count(),
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "loadavg_before": list(load_before),
               "loadavg_after": list(os.getloadavg()), "results": results}
    if "ours" in results and "baseline" in results:
        figures["speedup_vs_baseline"] = results["baseline"]["step_s"] / results["ours"]["step_s"]
        figures["memory_ratio_vs_baseline"] = results["ours"]["peak_gib"] / results["baseline"]["peak_gib"]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, figures)


if __name__ == "__main__":
    main()
