#!/usr/bin/env python
"""What share of the generator's gradient each loss term contributes, on real training steps.

Held-out toy-world edits (the SP benchmark's cases, toy CLIP, the project's default weights) are
trained step by step exactly as `edit_image` trains them; before each update the gradient of
every weighted term w_k L_k with respect to the generator's parameters is taken on its own
(the same forward pass, `torch.autograd.grad`). Per step and term:

- norm share: |g_k| / sum_j |g_j|, how large the term's push is next to the others';
- projection share: <g_k, g> / |g|^2 with g = sum_j g_j the update's gradient (the shares sum
  to 1; a negative share opposes the update).

Writes --results/gradient_shares.md and .json (means over steps and cases, and per phase).

  python benchmarks/gradient_shares.py --steps 60             # 4 cases x 2 settings x 60 steps
  python benchmarks/gradient_shares.py --cases 1 --steps 5 --settings default
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sp_dilemma  # noqa: E402  (the SP benchmark's cases and settings; it puts the repo on the path)

ROOT = sp_dilemma.ROOT


def step_gradients(editor) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """One real training step of `editor` (an `ImageEditor`): its terms' values and, taken before
    the update, each weighted term's gradient flattened over the generator's parameters."""
    parameters = [p for p in editor.generator.parameters() if p.requires_grad]
    gradients = {}

    def term_gradients(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> None:
        for name, value in terms.items():
            weighted = weights[name] * value
            if not weighted.requires_grad:  # a term with weight 0 or no path to the generator
                gradients[name] = torch.zeros(sum(p.numel() for p in parameters))
                continue
            parts = torch.autograd.grad(weighted, parameters, retain_graph=True, allow_unused=True)
            gradients[name] = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                         for g, p in zip(parts, parameters)])

    record = editor.training_step(before_backward=term_gradients)
    return record, gradients


def shares(gradients: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Norm and projection shares of each term's gradient (see the module docstring)."""
    total = sum(gradients.values())
    total_sq = max(float(total.double().pow(2).sum()), 1e-30)
    norms = {name: float(g.double().norm()) for name, g in gradients.items()}
    norm_sum = max(sum(norms.values()), 1e-30)
    return {name: {"norm_share": norms[name] / norm_sum,
                   "projection_share": float((g.double() * total.double()).sum()) / total_sq,
                   "norm": norms[name]} for name, g in gradients.items()}


def run(case, setting: str, args, out_dir: Path) -> list[dict]:
    from text2live_geo.clip import ClipGuide
    from text2live_geo.common.config import load_config
    from text2live_geo.common.io import read_image
    from text2live_geo.config import ImageEditConfig
    from text2live_geo.editing.image import ImageEditor, prepare_input

    row = sp_dilemma.setting_named(setting)
    paths, overrides = sp_dilemma.edit_inputs(row, args, case=case, seed=args.seed, out_dir=out_dir,
                                              run_name=sp_dilemma.run_name_for(row, args.seed, case))
    cfg = load_config(ImageEditConfig, paths, overrides)
    clip = ClipGuide.load(cfg.clip.model, torch.device("cpu"))
    image = prepare_input(read_image(cfg.image)[0], cfg.crops.resize_short, 2 ** cfg.generator.num_scales + 1,
                          cfg.image, cfg.crops.resize_upscale)
    torch.manual_seed(cfg.seed)
    editor = ImageEditor(cfg, image, clip, torch.device("cpu"))
    steps = []
    for _ in range(cfg.steps):
        record, gradients = step_gradients(editor)
        steps.append({"step": editor.step, "values": dict(record),
                      "shares": shares(gradients)})
    return steps


def summarise(per_setting: dict[str, list[list[dict]]], phases: list[tuple[int, int]]) -> dict:
    """Per setting and phase (steps low+1..high): each term's mean shares and value over the steps
    and cases (a term absent from a step, e.g. the bootstrap after its last step, counts 0)."""
    summary = {}
    for setting, runs in per_setting.items():
        names = list(dict.fromkeys(name for steps in runs for s in steps for name in s["shares"]))
        entry = {}
        for low, high in phases:
            points = [s for steps in runs for s in steps if low < s["step"] <= high]
            entry[f"{low + 1}-{high}"] = {
                name: {key: sum(p["shares"].get(name, {}).get(key, 0.0) for p in points) / len(points)
                       for key in ("norm_share", "projection_share")}
                | {"value": sum(p["values"].get(name, 0.0) for p in points) / len(points)} for name in names}
        summary[setting] = entry
    return summary


def write(summary: dict, args, results: Path, seconds: float) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "gradient_shares.json").write_text(json.dumps({"arguments": vars(args), "summary": summary},
                                                             indent=1))
    lines = ["# Each loss term's share of the generator's gradient (real steps, default weights)", "",
             f"Command: `python benchmarks/gradient_shares.py {' '.join(sys.argv[1:])}` ({seconds / 60:.0f} min).", "",
             f"{args.cases} held-out toy-world edits of the SP benchmark per setting, {args.steps} steps, seed "
             f"{args.seed}, toy CLIP. Per term: mean norm share |g_k| / sum_j |g_j| and mean projection share "
             "<g_k, g> / |g|^2 (g the update's gradient; the projection shares sum to 1), and the term's mean "
             "value, per phase of the optimisation (a row with a bootstrap target: weight 10 decaying to 0 over "
             "its scaled bootstrap_steps).", ""]
    for setting, phases in summary.items():
        lines += [f"## {setting}", "", "| term | " + " | ".join(f"steps {p}: norm % / projection % / value"
                                                                  for p in phases) + " |",
                  "|---|" + "---|" * len(phases)]
        for name in next(iter(phases.values())):
            lines.append(f"| {name} | " + " | ".join(
                f"{100 * v[name]['norm_share']:.2f} / {100 * v[name]['projection_share']:.2f} / "
                f"{v[name]['value']:.4f}" for v in phases.values()) + " |")
        lines.append("")
    (results / "gradient_shares.md").write_text("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    sp_dilemma.add_edit_arguments(parser)
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--settings", default="default,geodesic",
                        help="comma-separated rows of the SP benchmark's decision phase")
    parser.add_argument("override", nargs="*", help="extra config overrides for every run (key=value)")
    args = parser.parse_args(argv)
    sp_dilemma.check_scale(args, parser)
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="gradient_shares_"))
    cases = sp_dilemma.build_cases(args.cases, args.size, work / "inputs")
    start = time.perf_counter()
    per_setting = {}
    for setting in args.settings.split(","):
        per_setting[setting] = [run(case, setting, args, work / "runs") for case in cases]
        print(f"{setting}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    third = max(1, args.steps // 3)
    phases = [(0, args.steps), (0, third), (args.steps - third, args.steps)]
    summary = summarise(per_setting, phases)
    write(summary, args, Path(args.results), time.perf_counter() - start)
    print((Path(args.results) / "gradient_shares.md").read_text())


if __name__ == "__main__":
    main()
