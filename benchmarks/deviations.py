#!/usr/bin/env python
"""Measure the effect of our deliberate deviations from the Text2LIVE reference recipe
(docs/deviations.md): each reference-recipe key switched on alone, and all of them together.

1. Noise of the guidance term (toy CLIP, `data/toy_clip`, on `data/toy_images/red_circle.png`
   with a fixed partial edit: the circle 60 % of the way to blue, inside its mask): over D view
   draws, the term's mean and spread with the edit and with no edit at all (composite = input),
   their difference in units of the spread, and how well the per-view image directions follow
   the unaugmented edit direction (mean cosine).
2. The masked frame-crop source of video renders (`crops.mask_frame_source`): structure and
   directional losses of a zero-alpha edit on a tiny synthetic NLA video (toy CLIP). A loss that
   is not at its floor for the unedited video pushes the generator for no reason.
3. Cost (CLIP of the ViT-B/32 architecture, random weights): seconds of one objective call
   (views, embeddings, losses, backward to the composite) at `--size` px and `--views` views per
   setting, and of one per-crop relevancy map (`loss.relevancy_per_crop`).

Writes benchmarks/results/deviations.json and .md (or --out).

  python benchmarks/deviations.py                  # about 15 minutes on one CPU core
  python benchmarks/deviations.py --draws 8 --size 64 --views 2 --repeats 1   # smoke run
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

# each reference-recipe key of the objective alone, then all of them (configs/*/text2live_reference.yaml)
REFERENCE_KEYS = {
    "unpaired views": ["clip.paired_views=false"],
    "composite encoded twice": ["clip.encode_composite_twice=true"],
    "reference template sampling": ["text.template_sampling=reference"],
    "all view-text pairs": ["loss.directional_pairs=all"],
    "raw-embedding directions": ["loss.raw_directions=true"],
}
REFERENCE_ALL = [item for items in REFERENCE_KEYS.values() for item in items]


def step_terms(editor, sample) -> dict:
    """The loss terms of one training step of `editor` on `sample` (renders, IMR anchor, CLIP views,
    terms, as `GeneratorTraining.training_step` computes them), without the update."""
    renders = editor.render_sample(editor.generator, sample)
    if editor.previous_generator is not None:
        from text2live_geo.generator import batch_statistics_without_update

        with batch_statistics_without_update(editor.previous_generator):
            anchors = editor.render_sample(editor.previous_generator, sample)
        renders = [dataclasses.replace(render, anchor=anchor.layers.composite)
                   for render, anchor in zip(renders, anchors)]
    terms, _ = editor.objective.batched(renders, editor.bootstrap_weight(editor.step), sparsity=editor.sparsity)
    return terms


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=str(ROOT / "data" / "toy_clip"), help="CLIP folder for parts 1 and 2")
    parser.add_argument("--draws", type=int, default=64, help="view draws per setting (part 1)")
    parser.add_argument("--views", type=int, default=16, help="CLIP views per draw")
    parser.add_argument("--size", type=int, default=256, help="image side for the cost measurement (part 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per setting (part 3)")
    parser.add_argument("--skip-cost", action="store_true", help="skip part 3 (the ViT-B/32-sized CLIP)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: oversubscribed OpenMP threads on a busy machine are 10x slower)")
    parser.add_argument("--out", default=str(HERE / "results" / "deviations"), help="output path without suffix")
    return parser.parse_args(argv)


def objective(clip, guidance: str, views: int, overrides=(), texts=("red circle", "blue circle")):
    import torch

    from text2live_geo.common.config import load_config
    from text2live_geo.config import ImageEditConfig
    from text2live_geo.editing.objective import EditObjective

    cfg = load_config(ImageEditConfig, None, [
        "image=x.png", f"clip.n_aug={views}", f"loss.guidance={guidance}", "loss.imr_anchor=source",
        f"text.src={texts[0]}", f"text.comp={texts[1]}", f"text.screen={texts[1]}", *overrides])
    return EditObjective(cfg.text, cfg.clip, cfg.loss, clip, torch.device("cpu"))


def guidance_noise(clip, draws: int, views: int) -> list[dict]:
    """Part 1: the guidance term over view draws, for a fixed partial edit and for no edit, and how
    well the per-view image directions follow the edit."""
    import numpy as np
    import torch
    from PIL import Image

    from text2live_geo.editing.objective import Render
    from text2live_geo.layers import composite_layers

    folder = ROOT / "data" / "toy_images"
    image = torch.from_numpy(np.array(Image.open(folder / "red_circle.png").convert("RGB"))).permute(2, 0, 1)
    image = image[None].float() / 255
    mask = torch.from_numpy(np.array(Image.open(folder / "red_circle_mask.png").convert("L")) > 127)
    mask = mask[None, None].float()
    blue = torch.tensor([0.1, 0.2, 0.9]).view(1, 3, 1, 1)
    rows = []
    for guidance, term, settings in (
            ("directional", "directional", {"ours": [], **REFERENCE_KEYS, "reference recipe": REFERENCE_ALL}),
            ("geodesic", "imc", {"ours": [], "unpaired views": REFERENCE_KEYS["unpaired views"],
                                 "reference template sampling": REFERENCE_KEYS["reference template sampling"],
                                 "reference views and templates": ["clip.paired_views=false",
                                                                   "clip.encode_composite_twice=true",
                                                                   "text.template_sampling=reference"]})):
        for name, overrides in settings.items():
            objective_ = objective(clip, guidance, views, overrides)
            raw = "loss.raw_directions=true" in overrides and guidance == "directional"
            row = {"guidance": guidance, "term": term, "setting": name}
            for edit_name, amount in (("edit", 0.6), ("no_edit", 0.0)):
                rgba = torch.cat([blue.expand_as(image), amount * mask], 1)
                render = Render(image, composite_layers(rgba, image))
                size = objective_.view_size_of(image)
                def resize(picture, size=size):
                    return torch.nn.functional.interpolate(picture, size=size, mode="bilinear", antialias=True)

                with torch.no_grad():
                    whole = objective_.encode({"input": resize(image), "composite": resize(render.layers.composite)},
                                              grad=False, normalize=not raw)
                clean = torch.nn.functional.normalize(whole["composite"] - whole["input"], dim=-1)
                values, fidelity = [], []
                torch.manual_seed(0)
                for _ in range(draws):
                    with torch.no_grad():
                        terms, _ = objective_.batched([render])
                        values.append(float(terms[term]))
                        if amount > 0:  # the per-view image directions against the unaugmented one
                            drawn = objective_.draw_views(render, size)
                            embeds = objective_.encode(drawn, grad=False, normalize=not raw)
                            direction = embeds.get("composite_dir", embeds["composite"]) - embeds["input"]
                            fidelity.append(float((torch.nn.functional.normalize(direction, dim=-1) @ clean.T).mean()))
                row[f"{edit_name}_mean"], row[f"{edit_name}_std"] = float(np.mean(values)), float(np.std(values))
                if fidelity:
                    row["direction_fidelity"] = float(np.mean(fidelity))
            row["edit_signal_to_noise"] = (row["no_edit_mean"] - row["edit_mean"]) / max(row["edit_std"], 1e-12)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def masked_source(clip) -> list[dict]:
    """Part 2: losses of a zero-alpha video edit with the frame-crop source masked or not."""
    import torch

    from atlas.testing import make_tiny_atlas
    from text2live_geo.common.config import load_config
    from text2live_geo.config import VideoEditConfig
    from text2live_geo.editing.video import VideoEditor
    from text2live_geo.editing.video_input import prepare_atlas_video

    tiny = make_tiny_atlas(Path(tempfile.mkdtemp(prefix="deviations_atlas_")), width=64, height=48, frames=8,
                           foreground_fades=False, seed=2)
    rows = []
    for guidance in ("directional", "geodesic"):
        for mask in (True, False):
            cfg = load_config(VideoEditConfig, None, [
                f"video.frames={tiny.frames_folder}", f"atlas.checkpoint={tiny.folder}", "atlas.resolution=192",
                f"clip.model={clip.model.name_or_path}", "text.src=red circle", "text.comp=blue circle",
                "text.screen=blue circle", "generator.num_scales=4", "generator.channels=16", "device=cpu",
                f"loss.guidance={guidance}", "loss.imr_anchor=source", f"crops.mask_frame_source={mask}",
                "crops.direct_frame=false", "crops.full_atlas_every=0", "clip.n_aug=8"])
            torch.manual_seed(0)
            video = prepare_atlas_video(tiny.atlas, tiny.frames, cfg.layer, cfg.atlas, cfg.generator.num_scales,
                                        torch.device("cpu"), progress=False)
            editor = VideoEditor(cfg, video, clip, torch.device("cpu"))
            with torch.no_grad():  # a fully transparent edit layer: the unedited video
                editor.generator.head.weight[3].zero_()
                editor.generator.head.bias[3] = -1e4
            editor.generator.train()
            totals: dict[str, list[float]] = {}
            for step in range(16):
                with torch.no_grad():
                    terms = step_terms(editor, editor.sampler.sample(step + 1))
                for name, value in terms.items():
                    totals.setdefault(name, []).append(float(value))
            row = {"guidance": guidance, "mask_frame_source": mask,
                   **{name: sum(values) / len(values) for name, values in totals.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def cost(size: int, views: int, repeats: int) -> list[dict]:
    """Part 3: seconds per objective call (forward + backward) and per per-crop relevancy map."""
    import torch

    from common import timed, vit_b32_clip
    from text2live_geo.editing.objective import Render
    from text2live_geo.layers import composite_layers

    device = torch.device("cpu")
    clip = vit_b32_clip(device)
    torch.manual_seed(0)
    image = torch.rand(1, 3, size, size)
    rows = []
    settings = {"ours": [], **REFERENCE_KEYS, "reference recipe": REFERENCE_ALL}
    for name, overrides in settings.items():
        objective_ = objective(clip, "directional", views, ["loss.structure=0", *overrides],
                               texts=("horse", "golden horse"))

        def call(objective_=objective_):
            rgba = torch.rand(1, 4, size, size, requires_grad=True)
            terms, weights = objective_.batched([Render(image, composite_layers(rgba, image))])
            sum(weights[key] * value for key, value in terms.items()).backward()

        seconds = timed(call, device, repeats=repeats)
        rows.append({"setting": name, "objective_s": seconds})
        print(json.dumps(rows[-1]), flush=True)
    objective_ = objective(clip, "directional", views, ["loss.relevancy_per_crop=true", "text.bootstrap=horse"],
                           texts=("horse", "golden horse"))
    seconds = timed(lambda: objective_.crop_relevancy(image), device, repeats=repeats)
    rows.append({"setting": "one per-crop relevancy map (224 x 224)", "objective_s": seconds})
    print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(results: dict) -> str:
    lines = [f"# Deviations from the reference recipe, measured ({results['command']})", "",
             f"{results['machine']}; {results['seconds']:.0f} s in all.", "",
             "## Guidance over view draws (toy CLIP, red circle, the circle 60 % of the way to blue)", "",
             "Loss with the edit and with no edit (composite = input) over the same draws; signal / noise = "
             "(no-edit mean - edit mean) / edit std: how far the term tells the edit from no edit, in units of "
             "its own noise; direction fidelity = mean cosine of the per-view image directions with the "
             "unaugmented one.", "",
             "| term | setting | edit: mean | std | no edit: mean | std | signal / noise | direction fidelity |",
             "|---|---|---|---|---|---|---|---|"]
    for row in results["guidance_noise"]:
        lines.append(f"| {row['term']} | {row['setting']} | {row['edit_mean']:.4f} | {row['edit_std']:.4f} | "
                     f"{row['no_edit_mean']:.4f} | {row['no_edit_std']:.4f} | {row['edit_signal_to_noise']:.1f} | "
                     f"{row['direction_fidelity']:.3f} |")
    lines += ["", "## Zero-alpha video edit: frame-crop loss source masked or not (toy CLIP, tiny NLA)", "",
              "| guidance | mask_frame_source | structure | directional / IMC | composition |", "|---|---|---|---|---|"]
    for row in results["masked_source"]:
        guide = row.get("directional", row.get("imc"))
        lines.append(f"| {row['guidance']} | {row['mask_frame_source']} | {row['structure']:.5f} | {guide:.4f} | "
                     f"{row['composition']:.4f} |")
    if results.get("cost"):
        lines += ["", f"## Cost: seconds per objective call, {results['size']} px, {results['views']} views, "
                  "CLIP of the ViT-B/32 architecture (random weights), CPU", "", "| setting | seconds |", "|---|---|"]
        lines += [f"| {row['setting']} | {row['objective_s']:.3f} |" for row in results["cost"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    from text2live_geo.clip import ClipGuide

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    clip = ClipGuide.load(args.clip)
    results = {"command": "python benchmarks/deviations.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
               "draws": args.draws, "views": args.views, "size": args.size,
               "guidance_noise": guidance_noise(clip, args.draws, args.views),
               "masked_source": masked_source(clip)}
    if not args.skip_cost:
        results["cost"] = cost(args.size, args.views, args.repeats)
    results["seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
