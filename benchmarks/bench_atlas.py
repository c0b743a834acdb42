#!/usr/bin/env python
"""Atlas fitting, our default recipe against NLA's, on a procedural clip with ground truth.

Each recipe is timed from scratch on the same clip, on its own wall clock: DIS flows both ways,
foreground masks (automatic, from motion, unless ``--true-masks``), the model's initialisation,
NLA's mapping pre-training (``pretrain_per_frame`` x N steps), then fitting until the recipe's
iterations are done or its budget is spent. Every few seconds the fit pauses its clock and
measures the reconstruction PSNR on the fitter's fixed pixel subset
(``AtlasFitter.evaluate_psnr``); at the end the full-frame PSNR (``atlas.reconstruct``, every
pixel of every frame) and the foreground alpha IoU (``atlas.alpha > 0.5`` against the clip's
true masks).

Printed for each recipe: PSNR at fixed wall-clock marks, seconds to 25 and 30 dB, final
full-frame PSNR, alpha IoU, iterations and seconds per iteration, the mean weighted loss terms;
last the comparison at equal time (``atlas_equal_time``: each recipe's full-frame PSNR when the
shorter budget is spent, both measured) and ``atlas_speedup_vs_nla: <NLA's seconds to 30 dB /
ours>`` only where both reached 30 dB. When a recipe's budget runs out below 30 dB, its seconds
to 30 dB are extrapolated from its PSNR curve (PSNR linear in log(seconds), least squares on the
last half of the curve) and printed as such, but a ratio built on an extrapolation is not
reported as a speed-up: from a few iterations it can be off by orders of magnitude.
``--report results/bench_atlas.json`` prints these lines again from a finished run's figures.

NLA's pre-training alone can outlast its budget on a CPU (2400 steps of 10,000 pixels for 24
frames). It runs for at most ``--nla-pretrain-share`` of the budget; steps left over are not run
but charged to NLA's clock at the measured seconds per step (said in the output), so its curve
keeps the time axis of the full recipe.

The curves go to ``benchmarks/results/bench_atlas.json`` and a plot to ``bench_atlas.png``
(matplotlib, the ``bench`` extra; skipped when it is missing).

  python benchmarks/bench_atlas.py                         # 24 frames 256x144, 10 + 10 minutes
  python benchmarks/bench_atlas.py --quick                 # a 1-minute smoke run (smaller clip)
  python benchmarks/bench_atlas.py --true-masks --minutes-nla 3 --ours-set samples=8192
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

#: wall-clock marks (minutes) at which the PSNR is reported
MARKS_MINUTES = (0.5, 1, 2, 5, 10)
TARGETS_DB = (25.0, 30.0)
NLA_CONFIG = ROOT / "configs" / "atlas" / "nla.yaml"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=None, help="clip frames (default 24; --quick: 8)")
    parser.add_argument("--width", type=int, default=None, help="frame width (default 256; --quick: 128)")
    parser.add_argument("--height", type=int, default=None, help="frame height (default 144; --quick: 72)")
    parser.add_argument("--camera", default="pan+zoom", help="static, pan, zoom or pan+zoom")
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seeds the clip and the fits")
    parser.add_argument("--true-masks", action="store_true", help="fit with the clip's true masks, not automatic ones")
    parser.add_argument("--minutes-ours", type=float, default=None, help="our budget (default 10; --quick: 0.5)")
    parser.add_argument("--minutes-nla", type=float, default=None, help="NLA's budget (default 10; --quick: 0.5)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute smoke run: 0.5 + 0.5 minutes, 8 frames 128x72")
    parser.add_argument("--nla-pretrain-share", type=float, default=0.5,
                        help="NLA's mapping pre-training runs for at most this share of its budget")
    parser.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a fit.* key of our recipe (repeatable)")
    parser.add_argument("--nla-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a fit.* key of the NLA recipe (repeatable)")
    parser.add_argument("--skip-nla", action="store_true", help="fit our recipe only (no speedup line)")
    parser.add_argument("--eval-min-seconds", type=float, default=5.0, help="least fit time between PSNR points")
    parser.add_argument("--eval-max-seconds", type=float, default=30.0, help="most fit time between PSNR points")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--output", default=str(HERE / "results"), help="folder for bench_atlas.json / .png")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--report", default=None, metavar="JSON",
                        help="print the comparison of a finished run's bench_atlas.json (and update its derived "
                             "fields) instead of fitting")
    args = parser.parse_args(argv)
    quick = args.quick
    for name, default, small in (("frames", 24, 8), ("width", 256, 128), ("height", 144, 72),
                                 ("minutes_ours", 10.0, 0.5), ("minutes_nla", 10.0, 0.5)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else default)
    return args


# ---------------------------------------------------------------------------------------------
# curves


class Clock:
    """Wall clock of one recipe: seconds spent (measurement pauses excluded) plus seconds charged
    for work that was not run (NLA's pre-training beyond its share of the budget)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.paused = 0.0
        self.charged = 0.0
        self._pause_start: float | None = None

    def spent(self) -> float:
        now = self._pause_start if self._pause_start is not None else time.perf_counter()
        return now - self.start - self.paused

    def now(self) -> float:
        return self.spent() + self.charged

    def pause(self) -> None:
        self._pause_start = time.perf_counter()

    def resume(self) -> None:
        self.paused += time.perf_counter() - self._pause_start
        self._pause_start = None


def value_at(curve: list[dict], seconds: float, finished: bool) -> float | None:
    """PSNR at ``seconds`` on a curve of ``{"seconds", "psnr_db"}`` points (linear between
    points); None before the first point, and after the last one unless the fit had finished
    (its atlas no longer changes)."""
    if not curve or seconds < curve[0]["seconds"]:
        return None
    for before, after in zip(curve, curve[1:]):
        if before["seconds"] <= seconds <= after["seconds"]:
            span = after["seconds"] - before["seconds"]
            weight = 0.0 if span == 0 else (seconds - before["seconds"]) / span
            return before["psnr_db"] + weight * (after["psnr_db"] - before["psnr_db"])
    return curve[-1]["psnr_db"] if finished or seconds == curve[-1]["seconds"] else None


def seconds_to(curve: list[dict], target: float) -> float | None:
    """First time the curve reaches ``target`` dB (linear between points), or None."""
    if curve and curve[0]["psnr_db"] >= target:
        return curve[0]["seconds"]
    for before, after in zip(curve, curve[1:]):
        if before["psnr_db"] < target <= after["psnr_db"]:
            weight = (target - before["psnr_db"]) / (after["psnr_db"] - before["psnr_db"])
            return before["seconds"] + weight * (after["seconds"] - before["seconds"])
    return None


def extrapolate_seconds_to(curve: list[dict], target: float) -> dict | None:
    """Fit ``PSNR = a + b ln(seconds)`` by least squares to the last half of the curve (at least
    3 points) and solve for ``target``; None when the curve is too short or not rising."""
    points = curve[len(curve) // 2:]
    if len(points) < 3:
        points = curve[-3:]
    if len(points) < 3:
        return None
    xs = [math.log(point["seconds"]) for point in points]
    ys = [point["psnr_db"] for point in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    variance = sum((x - mean_x) ** 2 for x in xs)
    if variance == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / variance
    intercept = mean_y - slope * mean_x
    if slope <= 1e-6:
        return {"a": intercept, "b": slope, "points": len(points), "seconds": None}
    exponent = (target - intercept) / slope
    seconds = math.exp(exponent) if exponent < 700 else float("inf")
    return {"a": intercept, "b": slope, "points": len(points), "seconds": seconds}


# ---------------------------------------------------------------------------------------------
# one recipe


class _OutOfTime(Exception):
    pass


def _load_fit_config(path: Path | None, overrides: list[str]):
    from atlas.settings import AtlasRunConfig
    from text2live_geo.common.config import load_config

    keys = [item if item.startswith("fit.") else f"fit.{item}" for item in overrides]
    return load_config(AtlasRunConfig, path, keys).fit


def _pretrain(fitter, clock: Clock, steps: int, limit: float) -> dict:
    """NLA's mapping pre-training, stopped after ``limit`` seconds on the clock: the sampler is
    wrapped so that the step about to start raises when time is up (the mappings keep the
    state after the steps done, exactly that of the full pre-training's first steps)."""
    sampler = fitter.sampler
    original = sampler.sample
    done = 0

    def sample(iteration: int):
        nonlocal done
        if clock.spent() > limit:
            raise _OutOfTime
        done += 1
        return original(iteration)

    start = clock.spent()
    sampler.sample = sample
    try:
        fitter.pretrain_mappings(steps)
        completed = steps
    except _OutOfTime:
        completed = done  # every step whose pixels were drawn ran; the one that raised did not start
    finally:
        sampler.sample = original
    seconds = clock.spent() - start
    per_step = seconds / max(completed, 1)
    charged = (steps - completed) * per_step
    clock.charged += charged
    return {"steps": steps, "steps_run": completed, "seconds": seconds, "seconds_per_step": per_step,
            "seconds_charged": charged}


def run_recipe(name: str, cfg, clip, args, budget: float) -> dict:
    """Flows, masks, initialisation, (pre-training,) fitting for ``budget`` seconds; the curve."""
    import torch

    from atlas.fitting.fit import AtlasFitter, ClipData, build_atlas
    from atlas.flow import compute_flows
    from atlas.masks import mask_iou, motion_masks
    from atlas.render import reconstruction_psnr as psnr

    cfg = dataclasses.replace(cfg, eval_every=0)  # PSNR points come from here, by time
    clock = Clock()
    flows = compute_flows(clip.frames, preset=str(cfg.flow_preset))
    flow_seconds = clock.spent()
    if args.true_masks:
        masks, mask_note = clip.masks, "true masks"
    else:
        result = motion_masks(clip.frames, flows)
        masks, mask_note = result.masks, f"automatic: {result.reason}"
    mask_seconds = clock.spent() - flow_seconds
    mask_quality = mask_iou(masks, clip.masks) if masks is not None else 0.0
    data = ClipData(clip.frames, None if masks is None else masks.float(), flows)
    torch.manual_seed(args.seed)
    atlas = build_atlas(cfg, data)
    fitter = AtlasFitter(atlas, data, cfg, seed=args.seed)
    init_seconds = clock.spent() - flow_seconds - mask_seconds
    pretraining = None
    if str(cfg.model) == "nla" and cfg.pretrain_per_frame > 0:
        pretraining = _pretrain(fitter, clock, cfg.pretrain_per_frame * clip.num_frames,
                                args.nla_pretrain_share * budget)
    prep_seconds = clock.now()

    curve: list[dict] = []
    term_sums: dict[str, float] = {}
    term_count = 0
    marks = sorted(60.0 * minutes for minutes in MARKS_MINUTES)

    def measure(iteration: int) -> None:
        clock.pause()
        value = fitter.evaluate_psnr()
        clock.resume()
        curve.append({"seconds": round(clock.now(), 3), "psnr_db": round(value, 4), "iteration": iteration})

    def next_eval_after(seconds: float) -> float:
        gap = min(max(0.15 * seconds, args.eval_min_seconds), args.eval_max_seconds)
        upcoming = [mark for mark in marks if mark > seconds + 1e-9]
        return min([seconds + gap] + upcoming[:1])

    measure(fitter.iteration)
    next_eval = next_eval_after(clock.now())
    fit_start = clock.spent()
    stopped = "iterations"

    def on_record(record: dict) -> None:
        nonlocal next_eval, term_count
        weights = fitter.weights(record["iteration"] - 1)
        for term, value in record.items():
            if term in weights:
                term_sums[term] = term_sums.get(term, 0.0) + weights[term] * value
        term_count += 1
        if clock.now() >= next_eval:
            measure(record["iteration"])
            next_eval = next_eval_after(clock.now())
        if clock.spent() >= budget:
            raise _OutOfTime

    if clock.spent() < budget:
        try:
            fitter.fit(progress=False, on_record=on_record)
        except _OutOfTime:
            stopped = "budget"
    else:
        stopped = "budget"
    fit_seconds = clock.spent() - fit_start
    if curve[-1]["iteration"] != fitter.iteration:
        measure(fitter.iteration)
    finished = fitter.iteration >= cfg.iterations

    clock.pause()
    frames = range(clip.num_frames)
    full_psnr = psnr(atlas.reconstruct(frames), clip.frames)
    alpha_iou = mask_iou(atlas.alpha(frames) > 0.5, clip.masks)
    clock.resume()

    result = {
        "name": name, "config": {key: (str(value) if not isinstance(value, (int, float)) else value)
                                 for key, value in dataclasses.asdict(cfg).items()},
        "masks": mask_note, "mask_iou_of_fitting_masks": round(mask_quality, 4),
        "flow_seconds": round(flow_seconds, 2), "mask_seconds": round(mask_seconds, 2),
        "init_seconds": round(init_seconds, 2), "pretraining": pretraining, "prep_seconds": round(prep_seconds, 2),
        "fit_seconds": round(fit_seconds, 2), "seconds": round(clock.now(), 2), "budget_seconds": budget,
        "stopped_by": stopped, "finished": finished, "iterations": fitter.iteration,
        "seconds_per_iteration": fit_seconds / max(fitter.iteration, 1),
        "final_psnr_db": round(full_psnr, 4), "alpha_iou": round(alpha_iou, 4),
        "loss_terms_weighted_mean": {term: value / max(term_count, 1) for term, value in term_sums.items()},
        "curve": curve,
    }
    result["psnr_at_marks"] = {str(minutes): value_at(curve, 60.0 * minutes, finished) for minutes in MARKS_MINUTES}
    result["seconds_to"] = {}
    for target in TARGETS_DB:
        reached = seconds_to(curve, target)
        entry = {"seconds": reached, "extrapolated": False}
        if reached is None and not finished:
            fit = extrapolate_seconds_to(curve, target)
            if fit is not None:
                entry = {"seconds": fit["seconds"], "extrapolated": True, "fit": fit}
        result["seconds_to"][str(int(target))] = entry
    return result


# ---------------------------------------------------------------------------------------------
# report


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}" if abs(value) >= 1e5 else f"{value:.{digits}f}"


def print_recipe(result: dict) -> None:
    name = result["name"]
    print(f"{name}: flows {result['flow_seconds']:.1f} s, masks {result['mask_seconds']:.1f} s "
          f"({result['masks']}; IoU vs true {result['mask_iou_of_fitting_masks']:.3f}), "
          f"init {result['init_seconds']:.1f} s")
    pretraining = result["pretraining"]
    if pretraining:
        line = (f"{name}: mapping pre-training {pretraining['steps_run']} of {pretraining['steps']} steps in "
                f"{pretraining['seconds']:.1f} s ({pretraining['seconds_per_step']:.3f} s/step)")
        if pretraining["seconds_charged"] > 0:
            line += (f"; the other {pretraining['steps'] - pretraining['steps_run']} steps were not run but are "
                     f"charged to its clock at that rate (+{pretraining['seconds_charged']:.0f} s)")
        print(line)
    marks = "  ".join(f"{minutes:g} min {_number(value, 2)}" for minutes, value in
                      zip(MARKS_MINUTES, result["psnr_at_marks"].values()))
    print(f"{name}: PSNR (dB) at {marks}")
    parts = []
    for target, entry in result["seconds_to"].items():
        text = _number(entry["seconds"])
        if entry["extrapolated"]:
            text = f"~{text} (extrapolated)" if entry["seconds"] is not None else "- (curve not rising)"
        elif entry["seconds"] is None:
            text = "never (fit finished below it)" if result["finished"] else "- (not reached)"
        parts.append(f"to {target} dB {text}")
    print(f"{name}: seconds {', '.join(parts)}")
    how = ("all iterations done" if result["finished"] else
           f"budget of {result['budget_seconds']:.0f} s spent")
    print(f"{name}: final full-frame PSNR {result['final_psnr_db']:.2f} dB, alpha IoU {result['alpha_iou']:.3f}, "
          f"{result['iterations']} iterations, {result['seconds_per_iteration']:.3f} s/iteration "
          f"({how}; {result['seconds']:.0f} s on its clock)")
    terms = sorted(result["loss_terms_weighted_mean"].items(), key=lambda item: -abs(item[1]))
    print(f"{name}: weighted loss terms (mean over the fit): "
          + ", ".join(f"{term} {value:.3g}" for term, value in terms))


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def equal_time(results: dict) -> dict:
    """Both recipes at the shorter budget: ours's PSNR at that wall-clock mark (its curve on the
    evaluation pixels, or its final full-frame PSNR when it finished earlier) and NLA's final
    full-frame PSNR when its budget was spent (its clock, pre-training included)."""
    ours, nla = results["ours"], results["nla"]
    minutes = min(ours["budget_seconds"], nla["budget_seconds"]) / 60.0
    ours_db = ours["psnr_at_marks"].get(f"{minutes:g}")
    if ours_db is None or ours["seconds"] <= 60.0 * minutes:
        ours_db = ours["final_psnr_db"]
    return {"minutes": minutes, "ours_psnr_db": round(float(ours_db), 2),
            "nla_psnr_db": round(float(nla["final_psnr_db"]), 2), "nla_iterations": nla["iterations"],
            "nla_finished": nla["finished"]}


def speedup(results: dict) -> tuple[float | None, str]:
    """NLA's seconds to 30 dB over ours, and a note saying how they were obtained. When NLA's
    curve allows no extrapolation, the ratio is a lower bound: its whole clock over ours."""
    ours, nla = results["ours"]["seconds_to"]["30"], results["nla"]["seconds_to"]["30"]
    if ours["seconds"] is None:
        return None, "ours did not reach 30 dB (nor extrapolates to it)"
    if nla["seconds"] is None:
        if results["nla"]["finished"]:
            return None, "NLA finished below 30 dB"
        lower = results["nla"]["seconds"] / ours["seconds"]
        return lower, (f"NLA did not reach 30 dB in {results['nla']['seconds']:.0f} s on its clock and its curve "
                       "allows no extrapolation: the ratio is a lower bound (NLA's whole clock / ours)")
    if nla["extrapolated"] or ours["extrapolated"]:
        return None, (f"not measured: {'NLA' if nla['extrapolated'] else 'ours'} did not reach 30 dB in its budget "
                      f"(its seconds to 30 dB, ~{nla['seconds'] if nla['extrapolated'] else ours['seconds']:.0f}, "
                      "are extrapolated from its PSNR curve; compare at equal time instead)")
    return nla["seconds"] / ours["seconds"], "both measured"


def print_comparison(results: dict) -> None:
    """The comparison lines (equal time first: what was measured)."""
    same = equal_time(results)
    print(f"atlas_equal_time: after {same['minutes']:g} min each, ours {same['ours_psnr_db']:.2f} dB, NLA's recipe "
          f"{same['nla_psnr_db']:.2f} dB ({same['nla_iterations']} iterations"
          f"{'' if same['nla_finished'] else ', budget spent'})")
    ratio, note = speedup(results)
    print(f"atlas_speedup_vs_nla: {'-' if ratio is None else f'{ratio:.1f}'} ({note})")


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(8, 5))
    for name, colour in (("ours", "tab:blue"), ("nla", "tab:red")):
        if name not in results:
            continue
        result = results[name]
        curve = result["curve"]
        axis.plot([p["seconds"] for p in curve], [p["psnr_db"] for p in curve], "o-", color=colour, markersize=3,
                  label=f"{name}: {result['final_psnr_db']:.1f} dB, IoU {result['alpha_iou']:.2f}")
        entry = result["seconds_to"]["30"]
        if entry["extrapolated"] and entry["seconds"] is not None and not math.isinf(entry["seconds"]):
            fit = entry["fit"]
            start = curve[len(curve) // 2]["seconds"]
            stop = min(entry["seconds"], 1e7)
            xs = [start * (stop / start) ** (k / 50) for k in range(51)]
            axis.plot(xs, [fit["a"] + fit["b"] * math.log(x) for x in xs], "--", color=colour,
                      label=f"{name}: extrapolated, 30 dB at ~{entry['seconds']:.3g} s")
    for target in TARGETS_DB:
        axis.axhline(target, color="grey", linewidth=0.8, linestyle=":")
    axis.set_xscale("log")
    axis.set_xlabel("wall-clock seconds (flows, masks, initialisation, pre-training included)")
    axis.set_ylabel("reconstruction PSNR (dB)")
    settings = results["settings"]
    axis.set_title(f"atlas fitting: {settings['frames']} frames {settings['width']}x{settings['height']}, "
                   f"{settings['camera']}, {'true' if settings['true_masks'] else 'automatic'} masks")
    axis.legend(loc="lower left", fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.report:
        return report(Path(args.report))
    import torch

    from atlas.procedural import make_procedural_clip

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    ours_cfg = _load_fit_config(None, args.ours_set)
    nla_cfg = _load_fit_config(NLA_CONFIG, args.nla_set)
    clip = make_procedural_clip(frames=args.frames, width=args.width, height=args.height, objects=args.objects,
                                camera=args.camera, seed=args.seed)
    commit = _git_commit()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"clip: {args.frames} frames {args.width}x{args.height}, camera {args.camera}, {args.objects} object(s), "
          f"seed {args.seed}, {'true' if args.true_masks else 'automatic'} masks; budgets: ours "
          f"{args.minutes_ours:g} min, NLA {args.minutes_nla:g} min")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load:.2f}; commit {commit}", flush=True)
    results: dict = {"settings": {**vars(args), "commit": commit, "torch_threads": torch.get_num_threads(),
                                  "load_average_at_start": load, "marks_minutes": list(MARKS_MINUTES)}}
    recipes = [("ours", ours_cfg, args.minutes_ours)]
    if not args.skip_nla:
        recipes.append(("nla", nla_cfg, args.minutes_nla))
    for name, cfg, minutes in recipes:
        result = run_recipe(name, cfg, clip, args, 60.0 * minutes)
        results[name] = result
        print_recipe(result)
        sys.stdout.flush()

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    ratio, note = (None, "NLA skipped") if args.skip_nla else speedup(results)
    results["atlas_speedup_vs_nla"] = ratio
    results["atlas_speedup_note"] = note
    if not args.skip_nla:
        results["atlas_equal_time"] = equal_time(results)
    (output / "bench_atlas.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    if not args.no_plot and not plot(results, output / "bench_atlas.png"):
        print("matplotlib is not installed (pip install '.[bench]'): no plot")
    print(f"wrote {output / 'bench_atlas.json'}" + ("" if args.no_plot else f" and {output / 'bench_atlas.png'}"))
    if not args.skip_nla:
        print_comparison(results)
    return results


def report(path: Path) -> dict:
    """Print the comparison of a finished run and rewrite its derived fields (the measured curves
    are not touched)."""
    results = json.loads(path.read_text())
    ratio, note = speedup(results)
    results.update(atlas_speedup_vs_nla=ratio, atlas_speedup_note=note, atlas_equal_time=equal_time(results))
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print_comparison(results)
    return results


if __name__ == "__main__":
    main()
