#!/usr/bin/env python
"""What the batch machinery costs, and what two local workers gain (docs/batch.md, "Measured").

1. Overhead: the same one-clip edit as `edit_video` in a fresh process (what `run_video.py`
   runs) and as `run_batch.py` on a one-clip manifest. Each process's time outside its edit call
   (wall time minus the edit call, timed around `edit_video` and read from the clip log's "the
   edit itself: Y s") is compared: the batch's extra is its driver process, the worker it spawns,
   the clip folder checks, the previews and the report. (Comparing whole wall times instead would
   measure mostly how the edit's own time varies on a loaded machine.)
2. Parallelism: four clips with `workers=1` (every CPU thread; and again on one thread) and with
   `workers=2` (the CPU threads divided between the workers: one each here), wall times compared.

Tiny procedural clips (atlas.testing) and a tiny random CLIP, so it runs on a CPU; the numbers
are for this machine and its load at the time (printed). Results: benchmarks/results/batch.json.

Usage: python benchmarks/bench_batch.py [--repeats 3] [--steps 200] [--parallel-steps 60]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

WORDS = ("a an the of photo image high quality red blue green golden horse circle square gray "
         "background over in front screen").split()


def settings(clip_dir: Path, steps: int) -> list[str]:
    values = {"clip.model": clip_dir, "text.src": "red circle", "text.comp": "blue circle",
              "text.screen": "blue circle", "steps": steps, "generator.num_scales": 3, "generator.channels": 8,
              "clip.n_aug": 2, "device": "cpu", "snapshot_every": 0, "checkpoint_every": 50, "atlas.resolution": 48,
              "crops.full_atlas_every": 2}
    return [f"{key}={value}" for key, value in values.items()]


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and every process it started and waited for)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{command[1]} failed: {result.stderr[-2000:]}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


#: run_video.py's edit in a process that times the edit call itself (imports excluded)
TIMED_VIDEO_EDIT = """
import sys, time
from text2live_geo.editing import edit_video
start = time.perf_counter()
edit_video(None, sys.argv[1:], progress=False)
print(time.perf_counter() - start)
"""


def clip_log_seconds(run_dir: Path) -> tuple[float, float]:
    match = re.search(r"done in ([\d.]+) s \(the edit itself: ([\d.]+) s\)", (run_dir / "log.txt").read_text())
    return float(match.group(1)), float(match.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200, help="edit steps of the overhead measurement")
    parser.add_argument("--parallel-steps", type=int, default=60, help="edit steps per clip, workers=1 vs 2")
    parser.add_argument("--only", choices=("overhead", "parallel"), help="run one of the two measurements")
    args = parser.parse_args()

    from atlas.testing import make_tiny_atlas
    from text2live_geo.tiny_clip import build_clip

    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    build_clip(work / "clip", WORDS, image_size=32, patch_size=8, vision_width=32, vision_layers=3,
               text_width=32, text_layers=2, heads=2, projection_dim=32, seed=0)
    atlases = [make_tiny_atlas(work / f"atlas{i}", seed=11 + i) for i in range(4)]
    for count in (1, 4):
        (work / f"clips{count}.yaml").write_text("".join(
            f"- {{clip: {a.frames_folder}, name: clip{i}, atlas.checkpoint: {a.folder}}}\n"
            for i, a in enumerate(atlases[:count])))
    python = sys.executable
    overhead: list[dict] = []
    parallel: list[dict] = []

    for repeat in range(args.repeats if args.only != "parallel" else 0):
        load = os.getloadavg()[0]
        start = time.perf_counter()
        edit = float(subprocess.run(
            [python, "-c", TIMED_VIDEO_EDIT, *settings(work / "clip", args.steps),
             f"video.frames={atlases[0].frames_folder}", f"atlas.checkpoint={atlases[0].folder}",
             f"output_dir={work / f'video{repeat}'}", "run_name=clip0"],
            cwd=work, env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT)), capture_output=True, text=True,
            check=True).stdout.split()[-1])
        video = time.perf_counter() - start
        batch, _ = timed([python, str(ROOT / "run_batch.py"), "--quiet", str(work / "clips1.yaml"),
                          *settings(work / "clip", args.steps), f"output_dir={work / f'batch{repeat}'}"], work)
        _, batch_edit = clip_log_seconds(work / f"batch{repeat}" / "clips1-batch" / "clip0")
        # what each process spends outside the edit call (interpreter, imports, and for the batch its
        # driver, worker, folder checks, previews, report); their difference is the batch's cost
        extra = (batch - batch_edit) - (video - edit)
        row = {"load": round(load, 2), "video_wall_s": round(video, 2), "video_edit_s": round(edit, 2),
               "batch_wall_s": round(batch, 2), "batch_edit_s": batch_edit,
               "video_outside_edit_s": round(video - edit, 2), "batch_outside_edit_s": round(batch - batch_edit, 2),
               "batch_extra_s": round(extra, 2), "batch_extra_pct_of_edit": round(100 * extra / edit, 2)}
        overhead.append(row)
        print("overhead", row, flush=True)

    for repeat in range(args.repeats if args.only != "overhead" else 0):
        row = {"load": round(os.getloadavg()[0], 2)}
        # workers=1 with its default threads (every CPU), workers=1 on one thread, workers=2 (one thread each)
        for label, extra in (("workers1", ["workers=1"]), ("workers1_threads1", ["workers=1", "threads=1"]),
                             ("workers2", ["workers=2"])):
            out = work / f"parallel{repeat}-{label}"
            wall, cpu = timed([python, str(ROOT / "run_batch.py"), "--quiet", str(work / "clips4.yaml"),
                               *settings(work / "clip", args.parallel_steps), *extra, f"output_dir={out}"], work)
            # cpu / wall: how many of the CPUs the batch got on average (at most `cpus`)
            row[f"{label}_s"], row[f"{label}_cpu_per_wall"] = round(wall, 2), round(cpu / wall, 2)
            row[f"{label}_edit_s"] = [clip_log_seconds(out / "clips4-batch" / f"clip{i}")[1] for i in range(4)]
        row["ratio"] = round(row["workers2_s"] / row["workers1_s"], 3)
        row["ratio_vs_one_thread"] = round(row["workers2_s"] / row["workers1_threads1_s"], 3)
        parallel.append(row)
        print("parallel", row, flush=True)

    out = ROOT / "benchmarks" / "results" / "batch.json"
    results = json.loads(out.read_text()) if out.is_file() else {}  # --only keeps the other's figures
    results["cpus"] = len(os.sched_getaffinity(0))
    if overhead:
        results["overhead"] = {"steps": args.steps, "repeats": overhead}
    if parallel:
        results["parallel"] = {"steps_per_clip": args.parallel_steps, "repeats": parallel}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
