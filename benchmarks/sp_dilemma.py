#!/usr/bin/env python
"""The stability-plasticity benchmark, measured without CLIP.

Held-out procedural scenes (the `toyworld` package) are edited with the shipped toy CLIP
(data/toy_clip) under `guidance=directional` and `guidance=geodesic` with both IMR anchors, at
identical settings and seeds. Each edit is then measured from pixels alone, using the exact
object mask the world drew:

- plasticity: the edited object's colour (recolour cases) or texture (retexture cases),
  classified from the composite's pixels inside the mask, is the target;
- stability: PSNR outside the mask against the input, and the share of the alpha mass that
  falls outside the mask.

Writes benchmarks/results/sp_dilemma.md (table), sp_dilemma.png (plasticity vs stability per
guidance), sp_dilemma_grid.png (a few cases side by side) and sp_dilemma.json (per case).

  python benchmarks/sp_dilemma.py                 # 24 cases x 3 guidances
  python benchmarks/sp_dilemma.py --cases 4 --steps 20 --jobs 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

GUIDANCES = {
    "directional": ["loss.guidance=directional"],
    "geodesic-previous": ["loss.guidance=geodesic", "loss.imr_anchor=previous"],
    "geodesic-source": ["loss.guidance=geodesic", "loss.imr_anchor=source"],
}
HELD_OUT_SEED = 7_000_000  # disjoint from the toy CLIP's training and evaluation seeds


@dataclass
class EditCase:
    index: int
    kind: str  # recolour | retexture
    src_text: str
    target_text: str
    target: str  # target colour or texture name
    image_path: str
    mask_path: str


def build_cases(count: int, size: int, folder: Path) -> list[EditCase]:
    """Held-out single-object scenes on every background style, alternating recolour / retexture."""
    import numpy as np

    from text2live_geo.io import save_png
    from toyworld import world

    styles = world.BACKGROUND_STYLES
    cases: list[EditCase] = []
    seed = HELD_OUT_SEED
    while len(cases) < count:
        rng = np.random.default_rng(seed)
        seed += 1
        spec = world.sample_spec(rng, n_objects=1)
        index = len(cases)
        background_colour = spec.background.colour
        if background_colour == world.GREEN_SCREEN:
            continue
        spec = spec.with_background(style=styles[index % len(styles)])
        obj = spec.objects[0]
        if obj.size < 0.26:  # large enough to classify texture from pixels
            spec = spec.with_object(0, size=0.3, cx=0.5, cy=0.5)
            obj = spec.objects[0]
        kind = "recolour" if index % 3 != 2 else "retexture"
        allowed = [c for c in world.allowed_colours(background_colour) if c != obj.colour]
        if kind == "recolour":
            if obj.texture != "plain":
                spec = spec.with_object(0, texture="plain")
                obj = spec.objects[0]
            target = allowed[int(rng.integers(len(allowed)))]
            target_text = world.object_phrase(colour=target, texture=obj.texture, shape=obj.shape)
        else:
            if obj.texture != "plain" or obj.colour in ("white", "black"):
                spec = spec.with_object(0, texture="plain", colour=allowed[0])
                obj = spec.objects[0]
            target = ("striped", "checkered", "dotted")[(index // 3) % 3]
            target_text = world.object_phrase(colour=obj.colour, texture=target, shape=obj.shape)
        scene = world.render_scene(spec, size=size)
        image_path = folder / f"case_{index:02d}.png"
        mask_path = folder / f"case_{index:02d}_mask.png"
        save_png(scene.image, image_path)
        save_png(scene.masks[:1].float(), mask_path)
        cases.append(EditCase(index, kind, world.object_phrase(obj), target_text, target, str(image_path),
                              str(mask_path)))
    return cases


def run_case(job) -> dict:
    case, guidance, args, out_dir = job
    import torch

    torch.set_num_threads(1)
    from atlas import reconstruction_psnr
    from text2live_geo import edit_image
    from text2live_geo.io import read_image
    from toyworld import world

    overrides = [
        f"image={case.image_path}", f"clip.model={args.clip}", f"text.src={case.src_text}",
        f"text.comp={case.target_text}", f"text.screen={case.target_text}", f"steps={args.steps}",
        f"seed={args.seed}", "device=cpu", f"output_dir={out_dir}", f"run_name={guidance}-{case.index:02d}",
        "log_every=0", "checkpoint_every=0", f"clip.n_aug={args.views}", f"generator.num_scales={args.scales}",
        f"generator.channels={args.channels}", f"crops.resize_short={args.size}",
        # the toy CLIP knows colours, not shapes: the relevancy bootstrap of the source phrase
        # is what localises the edit (the same for every guidance)
        f"text.bootstrap={case.src_text}", f"loss.bootstrap_steps={args.steps}", "text.templates_per_step=14",
        f"optim.lr_decay={args.lr_decay}",
    ] + GUIDANCES[guidance] + list(args.override)
    start = time.perf_counter()
    result = edit_image(None, overrides, progress=False)
    seconds = time.perf_counter() - start
    mask = read_image(case.mask_path)[0][0, 0] > 0.5
    composite, source = result.layers.composite[0].cpu(), result.input_image[0].cpu()
    alpha = result.layers.alpha[0, 0].cpu()
    inside = composite[:, mask].T.numpy()
    if case.kind == "recolour":
        predicted = world.classify_colour(inside)
    else:
        predicted = world.classify_texture(composite.numpy(), mask.numpy())
    outside = ~mask
    return {
        "case": case.index, "kind": case.kind, "guidance": guidance, "src": case.src_text, "target_text":
        case.target_text, "target": case.target, "predicted": predicted, "hit": predicted == case.target,
        "psnr_outside": reconstruction_psnr(composite[:, outside], source[:, outside]),
        "alpha_outside_share": float((alpha * outside).sum() / alpha.sum().clamp(min=1e-8)),
        "alpha_inside_mean": float(alpha[mask].mean()), "seconds": seconds,
        "composite_png": str(result.run_dir / "composite.png"),
    }


def summarise(rows: list[dict]) -> dict[str, dict]:
    summary = {}
    for guidance in GUIDANCES:
        mine = [r for r in rows if r["guidance"] == guidance]
        if not mine:
            continue
        finite = [min(r["psnr_outside"], 99.0) for r in mine]
        summary[guidance] = {
            "cases": len(mine),
            "plasticity": sum(r["hit"] for r in mine) / len(mine),
            "plasticity_recolour": _share([r["hit"] for r in mine if r["kind"] == "recolour"]),
            "plasticity_retexture": _share([r["hit"] for r in mine if r["kind"] == "retexture"]),
            "psnr_outside": sum(finite) / len(finite),
            "alpha_outside_share": sum(r["alpha_outside_share"] for r in mine) / len(mine),
            "seconds_per_edit": sum(r["seconds"] for r in mine) / len(mine),
        }
    return summary


def _share(values):
    return sum(values) / len(values) if values else float("nan")


def write_results(rows, summary, args, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "sp_dilemma.json").write_text(json.dumps({"settings": vars(args), "summary": summary,
                                                         "cases": rows}, indent=1, default=str))
    lines = ["# Stability-plasticity benchmark (toy world, measured from pixels)", "",
             f"Command: `python benchmarks/sp_dilemma.py {' '.join(sys.argv[1:])}`", "",
             f"{summary[next(iter(summary))]['cases']} held-out cases per guidance, {args.steps} steps, "
             f"{args.views} views, {args.size} px, seed {args.seed}, CLIP `{args.clip}`.", "",
             "| guidance | plasticity (all) | recolour | retexture | PSNR outside mask (dB) | alpha outside mask "
             "| s / edit |",
             "|---|---|---|---|---|---|---|"]
    for guidance, s in summary.items():
        lines.append(f"| {guidance} | {100 * s['plasticity']:.0f} % | {100 * s['plasticity_recolour']:.0f} % | "
                     f"{100 * s['plasticity_retexture']:.0f} % | {s['psnr_outside']:.2f} | "
                     f"{100 * s['alpha_outside_share']:.1f} % | {s['seconds_per_edit']:.1f} |")
    lines += ["", "Plasticity: the object's colour/texture classified from composite pixels inside the exact mask "
              "hits the target. Stability: PSNR of the composite outside the mask against the input (capped at "
              "99 dB), and the share of alpha mass outside the mask (lower is better)."]
    (results / "sp_dilemma.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4))
    for guidance, s in summary.items():
        axis.scatter(s["psnr_outside"], 100 * s["plasticity"], s=60, label=guidance)
    axis.set_xlabel("stability: PSNR outside the object (dB)")
    axis.set_ylabel("plasticity: edits that hit the target (%)")
    axis.set_title("stability vs plasticity per guidance")
    axis.legend()
    figure.tight_layout()
    figure.savefig(results / "sp_dilemma.png", dpi=120)
    plt.close(figure)

    import torch

    from text2live_geo.io import read_image, save_png, side_by_side

    shown = sorted({r["case"] for r in rows})[: args.grid]
    grid_rows = []
    for case in shown:
        case_rows = {r["guidance"]: r for r in rows if r["case"] == case}
        source = read_image(Path(next(iter(case_rows.values()))["composite_png"]).parent / "input.png")[0]
        images = [source] + [read_image(case_rows[g]["composite_png"])[0] for g in GUIDANCES if g in case_rows]
        grid_rows.append(side_by_side(*images))
    if grid_rows:
        gap = torch.ones(1, 3, 4, grid_rows[0].shape[-1])
        stacked = [part for row in grid_rows for part in (row, gap)][:-1]
        save_png(torch.cat(stacked, dim=-2), results / "sp_dilemma_grid.png")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--scales", type=int, default=4)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-decay", type=float, default=0.997)
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--clip", default=str(ROOT / "data" / "toy_clip"))
    parser.add_argument("--grid", type=int, default=6, help="cases shown in the grid image")
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--guidances", default=",".join(GUIDANCES))
    parser.add_argument("override", nargs="*", help="extra config overrides for every run (key=value)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sp_dilemma_"))
    cases = build_cases(args.cases, args.size, work / "inputs")
    jobs = [(case, guidance, args, work / "runs") for case in cases for guidance in args.guidances.split(",")]
    print(f"sp_dilemma: {len(cases)} cases x {len(args.guidances.split(','))} guidances = {len(jobs)} edits, "
          f"{args.jobs} parallel jobs; work folder {work}", flush=True)
    from tqdm import tqdm

    rows = []
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.jobs) as pool:
        for row in tqdm(pool.imap_unordered(run_case, jobs), total=len(jobs), desc="edits"):
            rows.append(row)
    rows.sort(key=lambda r: (r["case"], r["guidance"]))
    summary = summarise(rows)
    write_results(rows, summary, args, Path(args.results))
    print((Path(args.results) / "sp_dilemma.md").read_text())


if __name__ == "__main__":
    main()
