#!/usr/bin/env python
"""What flushing to disk costs a batch (docs/batch.md, "Measured").

A batch writes its checkpoints, `report.json`, `batch_settings.json` and `done.json` durably:
each is fsynced, and so is its folder after the rename (text2live_geo/common/atomic.py). This
runs a real batch of small video clips through `run_batch.py` under `strace`, which times every
`fsync` / `fdatasync` call of the batch process and its workers (`-f -T`, only those calls traced,
through seccomp, so the rest of the batch runs untraced), and compares the time spent in them to
the batch's wall time. The clips are the tests' tiny procedural clips with their atlases
(atlas.testing) and a tiny random CLIP, edited `--steps` steps with a checkpoint every
`--checkpoint-every` steps, so the share measured is for many checkpoints per second of editing:
an upper end for real edits, whose steps take longer.

Needs strace (Debian: `apt-get install strace`). Results: benchmarks/results/fsync.json.

Usage: python benchmarks/bench_fsync.py [--clips 6] [--steps 100] [--checkpoint-every 10]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

WORDS = ("a an the of photo image high quality red blue green golden horse circle square gray "
         "background over in front screen").split()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "fsync.json"))
    args = parser.parse_args(argv)
    if shutil.which("strace") is None:
        raise SystemExit("bench_fsync: strace is not installed (Debian: apt-get install strace)")
    from batch_clips import make_clips, tiny_settings
    from text2live_geo.tiny_clip import build_clip

    work = Path(tempfile.mkdtemp(prefix="bench_fsync_"))
    try:
        clip_dir = work / "clip"
        build_clip(clip_dir, WORDS, image_size=32, patch_size=8, vision_width=32, vision_layers=3, text_width=32,
                   text_layers=2, heads=2, projection_dim=32, seed=0)
        manifest = make_clips(work / "clips", videos=args.clips, image=False, broken=False)
        settings = tiny_settings(clip_dir, work / "runs", steps=args.steps, checkpoint_every=args.checkpoint_every,
                                 workers=1)
        trace = work / "fsync.trace"
        command = ["strace", "-f", "--seccomp-bpf", "-T", "-e", "trace=fsync,fdatasync", "-o", str(trace),
                   sys.executable, str(ROOT / "run_batch.py"), "--quiet", str(manifest), *settings]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        start = time.perf_counter()
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"bench_fsync: the batch failed: {result.stderr[-2000:]}")
        durations = [float(match) for match in re.findall(r"<(\d+\.\d+)>\s*$", trace.read_text(), re.M)]
        fsync_seconds = sum(durations)
        figures = {
            "clips": args.clips, "steps": args.steps, "checkpoint_every": args.checkpoint_every,
            "fsync_calls": len(durations), "fsync_seconds": round(fsync_seconds, 4),
            "batch_wall_seconds": round(wall, 2),
            "fsync_share_percent": round(100 * fsync_seconds / wall, 3),
            "load_average": os.getloadavg()[0], "filesystem": subprocess.run(
                ["df", "-T", str(work)], capture_output=True, text=True).stdout.splitlines()[-1].split()[1],
            "command": "python benchmarks/bench_fsync.py " + " ".join(argv or sys.argv[1:]),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{figures['fsync_calls']} fsync calls took {figures['fsync_seconds']:.3f} s of a "
          f"{figures['batch_wall_seconds']:.1f} s batch ({figures['clips']} clips x {args.steps} steps, a checkpoint "
          f"every {args.checkpoint_every}): {figures['fsync_share_percent']:.2f} % "
          f"(file system {figures['filesystem']}, load {figures['load_average']:.1f})")
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
