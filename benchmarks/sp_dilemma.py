#!/usr/bin/env python
"""The stability-plasticity (SP) benchmark, measured from pixels, without CLIP as the judge.

Held-out procedural scenes (the `toyworld` package: one object on a flat, gradient, noise or
striped background) are edited with the shipped toy CLIP (data/toy_clip) under every guidance
setting of `SETTINGS` at identical settings and seeds, so the settings are compared case by case.
Each edit is measured from pixels alone, using the exact object mask the world drew:

- plasticity: the edited object's colour (recolour cases) or texture (retexture cases),
  classified from the composite's pixels inside the mask, is the target;
- stability: PSNR outside the mask against the input, and the share of the alpha mass that
  falls outside the mask.

Both are also measured every 10 steps along the optimisation (the paper's Fig. 3 view), from
the run's snapshots. Results carry 95 % bootstrap intervals over the cases, and the difference
of each setting to the default (`geodesic-templates-previous`) a paired bootstrap interval.

Writes to --results: sp_dilemma.md (table), sp_dilemma.json (settings, summary, every case and
curve point), sp_dilemma.png (plasticity vs stability with intervals), sp_dilemma_curves.png
(plasticity and stability along the optimisation) and sp_dilemma_grid.png (cases side by side).
A run keeps its finished edits in --work, so the same command again continues where it stopped.

  python benchmarks/sp_dilemma.py --cases 96 --seeds 0,1 --jobs 2 --work /tmp/sp   # the README's run
  python benchmarks/sp_dilemma.py --cases 4 --steps 20 --settings directional,geodesic-templates-previous
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

GEODESIC = ["loss.guidance=geodesic"]
# name -> (a config merged under the overrides, or None; overrides). Only what differs from the
# project's defaults needs writing, but the guidance keys are spelled out so that a change of
# default does not change what a setting means.
SETTINGS: dict[str, tuple[str | None, list[str]]] = {
    "directional": (None, ["loss.guidance=directional"]),
    "directional-reference": ("configs/image/text2live_reference.yaml", []),
    # one key of the reference recipe at a time (the recipe ablation)
    "directional-relevancy-per-crop": (None, ["loss.guidance=directional", "loss.relevancy_per_crop=true"]),
    "geodesic-templates-previous": (None, GEODESIC + ["loss.imc_pairing=templates", "loss.imr_anchor=previous"]),
    "geodesic-reference": ("configs/image/text2live_reference.yaml",
                           GEODESIC + ["loss.imc_pairing=templates", "loss.imr_anchor=previous"]),
    "geodesic-templates-source": (None, GEODESIC + ["loss.imc_pairing=templates", "loss.imr_anchor=source"]),
    "geodesic-published-previous": (None, GEODESIC + ["loss.imc_pairing=published", "loss.imr_anchor=previous"]),
    "geodesic-published-source": (None, GEODESIC + ["loss.imc_pairing=published", "loss.imr_anchor=source"]),
    "geodesic-templates-no-imr": (None, GEODESIC + ["loss.imc_pairing=templates", "loss.imr=0"]),
    "geodesic-templates-no-sparsity": (None, GEODESIC + ["loss.imc_pairing=templates", "loss.imr_anchor=previous",
                                                        "loss.sparsity=0"]),
    "geodesic-templates-previous-former-generator": (
        None, GEODESIC + ["loss.imc_pairing=templates", "loss.imr_anchor=previous", "generator.top_norm=true",
                          "generator.inv_colour_scale=1"]),
}
BASELINE = "geodesic-templates-previous"
# run only when asked for (--settings): single keys of the reference recipe, to find which one
# carries its plasticity gain; the default run is the 10 settings above them (under 2 hours)
RECIPE_ABLATION = ("directional-relevancy-per-crop",)
CURVE_EVERY = 10


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

    from text2live_geo.common.io import save_png
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


def case_overrides(case: EditCase, setting: str, seed: int, args, out_dir: Path) -> list[str]:
    return [
        f"image={case.image_path}", f"clip.model={args.clip}", f"text.src={case.src_text}",
        f"text.comp={case.target_text}", f"text.screen={case.target_text}", f"steps={args.steps}",
        f"seed={seed}", "device=cpu", f"output_dir={out_dir}", f"run_name={setting}-s{seed}-{case.index:03d}",
        f"snapshot_every={CURVE_EVERY}", "checkpoint_every=0", f"clip.n_aug={args.views}",
        f"generator.num_scales={args.scales}", f"generator.channels={args.channels}", f"crops.resize_short={args.size}",
        # the toy CLIP knows colours, not shapes: the relevancy bootstrap of the source phrase
        # is what localises the edit (the same for every setting)
        f"text.bootstrap={case.src_text}", f"loss.bootstrap_steps={args.steps}", "text.templates_per_step=14",
        f"optim.lr_decay={args.lr_decay}",
    ] + SETTINGS[setting][1] + list(args.override)


def measure(composite, source, mask, kind: str) -> tuple[str, float]:
    """(predicted colour or texture inside the mask, PSNR outside it capped at 99 dB) of a
    `(3, H, W)` composite in [0, 1] against the `(3, H, W)` input, with a `(H, W)` bool mask."""
    from atlas import reconstruction_psnr
    from toyworld import world

    if kind == "recolour":
        predicted = world.classify_colour(composite[:, mask].T.numpy())
    else:
        predicted = world.classify_texture(composite.numpy(), mask.numpy())
    return predicted, min(reconstruction_psnr(composite[:, ~mask], source[:, ~mask]), 99.0)


def run_case(job) -> dict:
    case, setting, seed, args, out_dir = job
    import torch

    torch.set_num_threads(1)
    from text2live_geo import edit_image
    from text2live_geo.common.io import read_image

    config = SETTINGS[setting][0]
    start = time.perf_counter()
    result = edit_image(ROOT / config if config else None, case_overrides(case, setting, seed, args, out_dir),
                        progress=False)
    seconds = time.perf_counter() - start
    mask = read_image(case.mask_path)[0][0, 0] > 0.5
    composite, source = result.layers.composite[0].cpu(), result.input_image[0].cpu()
    alpha = result.layers.alpha[0, 0].cpu()
    predicted, psnr_outside = measure(composite, source, mask, case.kind)
    # Fig. 3 view: the snapshots (input | composite | green screen, 4 px gaps) every CURVE_EVERY
    # steps, and the final composite, both as 8-bit PNGs
    width = source.shape[-1]
    curve = []
    for step in range(CURVE_EVERY, args.steps + 1, CURVE_EVERY):
        path = result.run_dir / ("composite.png" if step == args.steps else f"snapshots/step_{step:05d}.png")
        image = read_image(path)[0][0]
        if step != args.steps:
            image = image[:, :, width + 4: 2 * width + 4]
        hit_then, psnr_then = measure(image, source, mask, case.kind)
        curve.append({"step": step, "hit": hit_then == case.target, "psnr_outside": psnr_then})
    return {
        "case": case.index, "kind": case.kind, "setting": setting, "seed": seed, "src": case.src_text,
        "target_text": case.target_text, "target": case.target, "predicted": predicted,
        "hit": predicted == case.target, "psnr_outside": psnr_outside,
        "alpha_outside_share": float((alpha * ~mask).sum() / alpha.sum().clamp(min=1e-8)),
        "alpha_inside_mean": float(alpha[mask].mean()), "seconds": seconds, "curve": curve,
        "composite_png": str(result.run_dir / "composite.png"),
    }


# ------------------------------------------------------------------------------ statistics
def bootstrap_interval(values, resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its 95 % percentile-bootstrap interval
    (`resamples` resamples of the values with replacement, from a seeded generator)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per setting: plasticity and stability with bootstrap intervals, the curves along the
    optimisation, and the paired difference to BASELINE (same cases and seeds) with its interval."""
    by_setting = {name: sorted((r for r in rows if r["setting"] == name), key=lambda r: (r["case"], r["seed"]))
                  for name in SETTINGS}
    by_setting = {name: mine for name, mine in by_setting.items() if mine}
    baseline = {(r["case"], r["seed"]): r for r in by_setting.get(BASELINE, [])}
    summary = {}
    for name, mine in by_setting.items():
        entry = {
            "cases": len(mine),
            "plasticity": bootstrap_interval([r["hit"] for r in mine]),
            "plasticity_recolour": _share([r["hit"] for r in mine if r["kind"] == "recolour"]),
            "plasticity_retexture": _share([r["hit"] for r in mine if r["kind"] == "retexture"]),
            "psnr_outside": bootstrap_interval([r["psnr_outside"] for r in mine]),
            "alpha_outside_share": _share([r["alpha_outside_share"] for r in mine]),
            "seconds_per_edit": _share([r["seconds"] for r in mine]),
            "curve": [{"step": point["step"],
                       "plasticity": _share([r["curve"][i]["hit"] for r in mine]),
                       "psnr_outside": _share([r["curve"][i]["psnr_outside"] for r in mine])}
                      for i, point in enumerate(mine[0]["curve"])],
        }
        paired = [(r, baseline[(r["case"], r["seed"])]) for r in mine if (r["case"], r["seed"]) in baseline]
        if name != BASELINE and paired:
            entry["plasticity_minus_baseline"] = bootstrap_interval([float(a["hit"]) - float(b["hit"])
                                                                     for a, b in paired])
            entry["psnr_minus_baseline"] = bootstrap_interval([a["psnr_outside"] - b["psnr_outside"]
                                                               for a, b in paired])
        summary[name] = entry
    return summary


def _share(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


# ------------------------------------------------------------------------------- reports
def _interval(triple, scale: float = 1.0, digits: int = 0) -> str:
    mean, low, high = (scale * v for v in triple)
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def write_results(rows, summary, args, results: Path, wall_seconds: float) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "sp_dilemma.json").write_text(json.dumps(
        {"arguments": vars(args), "settings": {name: SETTINGS[name] for name in summary}, "baseline": BASELINE,
         "wall_seconds": wall_seconds, "summary": summary, "cases": rows}, indent=1, default=str))
    seeds = sorted({r["seed"] for r in rows})
    first = summary[next(iter(summary))]
    pairing = "each case under every seed" if args.seed_mode == "all" else f"case i under seed i mod {len(seeds)}"
    lines = ["# Stability-plasticity benchmark (toy world, measured from pixels)", "",
             f"Command: `python benchmarks/sp_dilemma.py {' '.join(sys.argv[1:])}` "
             f"({wall_seconds / 60:.0f} min wall, {args.jobs} jobs).", "",
             f"{first['cases']} held-out edits per setting (seeds {', '.join(map(str, seeds))}, {pairing}), "
             f"{args.steps} steps, {args.views} views, {args.size} px, generator {args.scales} scales x "
             f"{args.channels} channels, CLIP `{Path(args.clip).name}`. Brackets: 95 % bootstrap intervals over the "
             f"cases; the differences to `{BASELINE}` (the default) are paired by case and seed.", "",
             "| setting | plasticity % | recolour % | retexture % | PSNR outside (dB) | alpha outside % "
             "| plasticity - default (points) | PSNR - default (dB) | s / edit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        minus_p = _interval(s["plasticity_minus_baseline"], 100) if "plasticity_minus_baseline" in s else "-"
        minus_q = _interval(s["psnr_minus_baseline"], 1, 2) if "psnr_minus_baseline" in s else "-"
        lines.append(f"| {name} | {_interval(s['plasticity'], 100)} | {100 * s['plasticity_recolour']:.0f} | "
                     f"{100 * s['plasticity_retexture']:.0f} | {_interval(s['psnr_outside'], 1, 2)} | "
                     f"{100 * s['alpha_outside_share']:.1f} | {minus_p} | {minus_q} | {s['seconds_per_edit']:.1f} |")
    lines += ["", f"Along the optimisation (plasticity % / PSNR outside dB, every {CURVE_EVERY} steps, from the "
              "8-bit snapshots; the plot is sp_dilemma_curves.png):", "",
              "| setting | " + " | ".join(f"step {p['step']}" for p in first["curve"]) + " |",
              "|---|" + "---|" * len(first["curve"])]
    for name, s in summary.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * p['plasticity']:.0f} / {p['psnr_outside']:.1f}"
                                                 for p in s["curve"]) + " |")
    lines += ["", "Plasticity: the object's colour/texture classified from composite pixels inside the exact mask "
              "hits the target. Stability: PSNR of the composite outside the mask against the input (capped at "
              "99 dB), and the share of alpha mass outside the mask (lower is better)."]
    (results / "sp_dilemma.md").write_text("\n".join(lines) + "\n")
    _plots(rows, summary, args, results)


def _plots(rows, summary, args, results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5))
    for name, s in summary.items():
        (p, p_low, p_high), (q, q_low, q_high) = s["plasticity"], s["psnr_outside"]
        axis.errorbar(q, 100 * p, xerr=[[q - q_low], [q_high - q]], yerr=[[100 * (p - p_low)], [100 * (p_high - p)]],
                      fmt="o", capsize=3, label=name)
    axis.set_xlabel("stability: PSNR outside the object (dB)")
    axis.set_ylabel("plasticity: edits that hit the target (%)")
    axis.set_title("stability vs plasticity per setting (95 % intervals)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(results / "sp_dilemma.png", dpi=120)
    plt.close(figure)

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, s in summary.items():
        steps = [p["step"] for p in s["curve"]]
        left.plot(steps, [100 * p["plasticity"] for p in s["curve"]], marker="o", label=name)
        right.plot(steps, [p["psnr_outside"] for p in s["curve"]], marker="o", label=name)
    for axis, label, title in ((left, "plasticity (%)", "plasticity"), (right, "PSNR outside the object (dB)",
                                                                        "stability")):
        axis.set_xlabel("step")
        axis.set_ylabel(label)
        axis.set_title(f"{title} along the optimisation")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(results / "sp_dilemma_curves.png", dpi=120)
    plt.close(figure)

    import torch

    from text2live_geo.common.io import read_image, save_png, side_by_side

    first_seed = min(r["seed"] for r in rows)
    shown = sorted({r["case"] for r in rows if r["seed"] == first_seed})[: args.grid]
    grid_rows = []
    for case in shown:
        case_rows = {r["setting"]: r for r in rows if r["case"] == case and r["seed"] == first_seed}
        source = read_image(Path(next(iter(case_rows.values()))["composite_png"]).parent / "input.png")[0]
        images = [source] + [read_image(case_rows[name]["composite_png"])[0] for name in summary if name in case_rows]
        grid_rows.append(side_by_side(*images))
    if grid_rows:
        gap = torch.ones(1, 3, 4, grid_rows[0].shape[-1])
        stacked = [part for row in grid_rows for part in (row, gap)][:-1]
        save_png(torch.cat(stacked, dim=-2), results / "sp_dilemma_grid.png")


# ---------------------------------------------------------------------------------- main
def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    """The edit's size arguments, shared with gradient_shares.py (what `case_overrides` reads)."""
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--scales", type=int, default=4)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--lr-decay", type=float, default=0.997)
    parser.add_argument("--clip", default=str(ROOT / "data" / "toy_clip"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=96)
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--seed-mode", choices=("alternate", "all"), default="alternate",
                        help="alternate: case i under seed i mod len(seeds) (one edit per case and setting); "
                             "all: every case under every seed")
    add_edit_arguments(parser)
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--grid", type=int, default=6, help="cases shown in the grid image")
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--work", default=None, help="folder for inputs, runs and finished rows (resumable); "
                                                     "default: a new temporary folder")
    parser.add_argument("--settings", default=",".join(name for name in SETTINGS if name not in RECIPE_ABLATION),
                        help=f"comma-separated, of: {', '.join(SETTINGS)} (default: all but "
                             f"{', '.join(RECIPE_ABLATION)})")
    parser.add_argument("override", nargs="*", help="extra config overrides for every run (key=value)")
    args = parser.parse_args(argv)
    settings = args.settings.split(",")
    unknown = [name for name in settings if name not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sp_dilemma_"))
    work.mkdir(parents=True, exist_ok=True)
    cases = build_cases(args.cases, args.size, work / "inputs")
    jobs = [(case, setting, seed, args, work / "runs") for case in cases
            for seed in (seeds if args.seed_mode == "all" else [seeds[case.index % len(seeds)]])
            for setting in settings]
    wanted = {(case.index, setting, seed) for case, setting, seed, _, _ in jobs}
    finished_path = work / "rows.jsonl"
    rows = [json.loads(line) for line in finished_path.read_text().splitlines()] if finished_path.exists() else []
    rows = [r for r in rows if (r["case"], r["setting"], r["seed"]) in wanted]
    done = {(r["case"], r["setting"], r["seed"]) for r in rows}
    todo = [job for job in jobs if (job[0].index, job[1], job[2]) not in done]
    print(f"sp_dilemma: {len(cases)} cases x {len(settings)} settings = {len(jobs)} edits ({len(jobs) - len(todo)} "
          f"already done), {args.jobs} parallel jobs; work folder {work}", flush=True)
    from tqdm import tqdm

    start = time.perf_counter()
    if todo:
        context = multiprocessing.get_context("spawn")
        with context.Pool(args.jobs) as pool, finished_path.open("a") as finished:
            for row in tqdm(pool.imap_unordered(run_case, todo), total=len(todo), desc="edits"):
                rows.append(row)
                finished.write(json.dumps(row) + "\n")
                finished.flush()
    # wall time of this call plus an estimate for the edits a previous call finished
    wall = time.perf_counter() - start + sum(r["seconds"] for r in rows
                                             if (r["case"], r["setting"], r["seed"]) in done) / args.jobs
    rows.sort(key=lambda r: (r["case"], r["seed"], r["setting"]))
    summary = summarise(rows)
    write_results(rows, summary, args, Path(args.results), wall)
    print((Path(args.results) / "sp_dilemma.md").read_text())


if __name__ == "__main__":
    main()
