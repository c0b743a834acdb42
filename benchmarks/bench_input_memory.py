#!/usr/bin/env python
"""Peak memory of reading a clip, fitting an atlas to it and editing it, against the clip's size.

Makes a synthetic 1080p clip (moving gradients and a moving disc, so it compresses; encoded with
the project's ``VideoWriter``) in a temporary folder, then measures each of these in a fresh
subprocess, by the peak resident memory the subprocess reports
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The driver itself imports neither torch nor the
project (the clip is made in a subprocess too): Linux keeps a process's peak across ``exec``, so a
child of a large driver would start from the driver's size.

- ``ffmpeg``: the ffmpeg decoder alone (what every read runs besides Python, in its own process),
  decoding the whole clip to rgb24 as the readers do, from a process that imports nothing else
  (``RUSAGE_CHILDREN``; a child of a large process would report that process's size, copied
  when it forks);
- ``imports``: Python, torch and the project imported, nothing read (the floor of every row);
- ``read``: ``atlas.inputs.load_clip`` at ``video.long_side`` (what a fit reads);
- ``fit``: ``atlas.fitting.run.fit_atlas`` with few iterations (flow, masks from motion, the fit,
  the previews);
- ``edit``: ``text2live_geo.edit_video`` with the shipped toy CLIP (``data/toy_clip``), 2 steps, a
  small generator, the background layer, the atlas the fit row fitted to the same frames
  (``atlas.checkpoint``; without a fit row it fits its own first, in the same process) and the
  final render at the clip's own size;
- ``edit-default``: the same edit with the shipped generator and CLIP views (the generator's own
  memory follows the atlas region it edits, bounded by ``atlas.max_crop_pixels``).

Each row also says where its peak was: a thread samples the resident memory every 50 ms and keeps,
at the highest sample, the innermost project functions the main thread was in (``peak_in``).

each with every frame of the clip kept and with only the first half kept (``video.max_frames``):
the difference is what the frames kept cost; the source size and length cost nothing beyond
them. ``--compare-tree`` also runs the read row with another checkout of the project (e.g. the
commit before bounded inputs) on ``PYTHONPATH``.

Prints a table and writes ``benchmarks/results/input_memory.json``.

  OMP_NUM_THREADS=1 python benchmarks/bench_input_memory.py                    # 300 frames of 1920 x 1080
  python benchmarks/bench_input_memory.py --frames 40 --width 320 --height 180 --iterations 5 --out /tmp/x.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: the checkout the project is imported from: this one, or --compare-tree's in its children
sys.path.insert(0, os.environ.get("BENCH_INPUT_MEMORY_TREE", str(ROOT)))

KINDS = ("ffmpeg", "imports", "read", "fit", "edit", "edit-default")
CHILDREN = (*KINDS, "make-clip")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames of the synthetic clip")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--long-side", type=int, default=768, help="video.long_side of every row")
    parser.add_argument("--iterations", type=int, default=20, help="fit.iterations of the fit and edit rows")
    parser.add_argument("--kept", type=int, nargs="+", default=None,
                        help="video.max_frames values to measure (default: all frames, then half)")
    parser.add_argument("--rows", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--compare-tree", type=Path, default=None,
                        help="another checkout of the project: the read row is run with it too")
    parser.add_argument("--compare-kept", type=int, nargs="+", default=None,
                        help="video.max_frames values for --compare-tree (default: half the frames)")
    parser.add_argument("--edit-atlas", default="",
                        help="an atlas fitted to the kept frames for the edit rows (default: the fit row's)")
    parser.add_argument("--edit-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra overrides of the edit rows, recorded in them (e.g. atlas.max_crop_pixels=400000)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the clip and runs here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "input_memory.json")
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--max-frames", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--atlas", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- the clip
def make_clip(path: Path, frames: int, width: int, height: int, fps: float) -> Path:
    """Smooth moving gradients and a moving disc (compresses well), written a batch at a time."""
    import torch

    from text2live_geo.common.video_io import VideoWriter

    ys = torch.linspace(0, 1, height).view(1, height, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, width)
    with VideoWriter(path, width, height, fps, crf=23) as writer:
        for first in range(0, frames, 10):
            batch = []
            for t in range(first, min(frames, first + 10)):
                phase = t / max(1, frames)
                red = 0.2 + 0.5 * xs + 0.2 * torch.sin(6.0 * (ys + phase))
                green = 0.3 + 0.4 * ys + 0.1 * torch.cos(9.0 * (xs - 2 * phase))
                blue = 0.5 + 0.3 * torch.sin(5.0 * (xs + ys) + 4.0 * phase)
                frame = torch.cat([red, green, blue]).expand(3, height, width).clone()
                cx, cy = 0.2 + 0.6 * phase, 0.5 + 0.2 * torch.sin(torch.tensor(6.28 * phase)).item()
                disc = ((xs - cx) * width) ** 2 + ((ys - cy) * height) ** 2 < (0.12 * height) ** 2
                frame = torch.where(disc, torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1), frame)
                batch.append(frame.clamp(0, 1))
            writer.write(torch.stack(batch))
    return path


# ----------------------------------------------------------------------------- children
def fit_overrides(clip: Path, max_frames: int, long_side: int, iterations: int, out: Path) -> list[str]:
    return [f"video.frames={clip}", f"video.max_frames={max_frames}", f"video.long_side={long_side}",
            f"fit.iterations={iterations}", "fit.flow_preset=ultrafast", "fit.eval_every=1000", "device=cpu",
            "seed=0", f"output_dir={out}", "checkpoint_every=0"]


class PeakWhere:
    """Samples this process's resident memory every ``interval`` seconds in a thread and remembers,
    at the highest sample, where the main thread was: its innermost frames in the project
    (``module.function``), so a row says which part of the work its peak belongs to."""

    def __init__(self, interval: float = 0.05):
        import threading

        self.interval, self.peak_mib, self.where = interval, 0.0, []
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rss_mib(self) -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self._page / 2 ** 20

    def _stack(self) -> list[str]:
        frame, names = sys._current_frames().get(self._main), []
        while frame is not None and len(names) < 4:
            module = frame.f_globals.get("__name__", "")
            if module.split(".")[0] in ("atlas", "text2live_geo"):
                names.append(f"{module}.{frame.f_code.co_name}")
            frame = frame.f_back
        return names

    def _run(self) -> None:
        # sample once before the first wait, so even work shorter than the interval has a figure
        while True:
            rss = self._rss_mib()
            if rss > self.peak_mib:
                self.peak_mib, self.where = rss, self._stack()
            if self._stop.wait(self.interval):
                return

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"sampled_peak_mib": round(self.peak_mib, 1), "peak_in": self.where}


def child(args) -> dict:
    """One measurement in this (fresh) process; returns its figures."""
    if args.child == "make-clip":
        start = time.perf_counter()
        make_clip(args.clip, args.frames, args.width, args.height, args.fps)
        return {"seconds": round(time.perf_counter() - start, 1)}
    if args.child == "ffmpeg":  # nothing imported but imageio_ffmpeg (no torch: a small process to fork)
        import imageio_ffmpeg

        start = time.perf_counter()
        reader = imageio_ffmpeg.read_frames(str(args.clip), pix_fmt="rgb24")
        next(reader)
        count = sum(1 for _ in reader)
        return {"frames": count, "seconds": round(time.perf_counter() - start, 1),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    import atlas.fitting.run  # noqa: F401 (the imports every row pays)
    import text2live_geo.editing  # noqa: F401
    from atlas.inputs import load_clip

    facts: dict = {"imported_from": str(Path(atlas.fitting.run.__file__).resolve().parents[2]),
                   "torch": torch.__version__}
    sampler = PeakWhere() if os.path.exists("/proc/self/statm") else None
    start = time.perf_counter()
    work = Path(args.workdir)
    if args.child == "read":
        clip = load_clip(args.clip, max_frames=args.max_frames, long_side=args.long_side)
        facts.update(frames=clip.num_frames, size=[clip.width, clip.height],
                     frames_mib=round(clip.frames.numel() * clip.frames.element_size() / 2**20, 1))
    elif args.child == "fit":
        from atlas.fitting.run import fit_atlas

        result = fit_atlas(overrides=fit_overrides(args.clip, args.max_frames, args.long_side, args.iterations,
                                                   work / f"fit-{args.max_frames}"), progress=False)
        facts.update(frames=result.summary["frames"], size=[result.summary["width"], result.summary["height"]],
                     psnr_db=result.summary["psnr_db"], atlas=str(result.atlas_dir))
    elif args.child in ("edit", "edit-default"):
        from text2live_geo import edit_video

        overrides = fit_overrides(args.clip, args.max_frames, args.long_side, args.iterations,
                                  work / f"{args.child}-{args.max_frames}")
        overrides += [f"clip.model={ROOT / 'data' / 'toy_clip'}", "steps=2", "layer=background", "snapshot_every=0",
                      "text.src=striped background", "text.comp=blue background", "text.screen=blue background"]
        if args.child == "edit":  # what the input costs, with a generator that costs little itself
            overrides += ["generator.num_scales=3", "generator.channels=8", "clip.n_aug=2"]
        if args.atlas:
            overrides.append(f"atlas.checkpoint={args.atlas}")
        overrides += args.edit_set
        if args.edit_set:
            facts["edit_set"] = list(args.edit_set)
        result = edit_video(None, overrides, progress=False)
        facts.update(frames=result.summary["frames"], size=[result.summary["width"], result.summary["height"]],
                     atlas_size=[result.summary["atlas_width"], result.summary["atlas_height"]],
                     atlas_box=result.summary["atlas_box"], atlas_resolution=result.summary.get("atlas_resolution"))
    facts["seconds"] = round(time.perf_counter() - start, 1)
    if sampler is not None:
        facts.update(sampler.stop())
    facts["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return facts


def measure(kind: str, clip: Path, max_frames: int, args, tree: Path | None = None, atlas: str = "") -> dict:
    """Run one child process and return its figures (or the error it ended with): this driver stays
    small (no torch), so the child's peak is its own."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1")
    if tree is not None:
        env["BENCH_INPUT_MEMORY_TREE"] = str(tree)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--clip", str(clip),
               "--max-frames", str(max_frames), "--long-side", str(args.long_side),
               "--iterations", str(args.iterations), "--workdir", str(args.workdir), "--frames", str(args.frames),
               "--width", str(args.width), "--height", str(args.height), "--fps", str(args.fps), "--atlas", atlas]
    command += [f"--edit-set={item}" for item in args.edit_set]
    load = os.getloadavg()[0]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree or ROOT)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed",
                "load_at_start": round(load, 1)}
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    facts["load_at_start"] = round(load, 1)
    return facts


# ------------------------------------------------------------------------------ driver
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    temporary = args.workdir is None
    args.workdir = Path(tempfile.mkdtemp(prefix="input_memory_")) if temporary else args.workdir
    args.workdir.mkdir(parents=True, exist_ok=True)
    kept = args.kept or [args.frames, args.frames // 2]
    try:
        clip = args.workdir / f"clip-{args.frames}x{args.width}x{args.height}.mp4"
        start = time.perf_counter()
        if not clip.is_file():
            made = measure("make-clip", clip, 0, args)
            if "error" in made:
                raise SystemExit(f"could not make the clip: {made['error']}")
        print(f"clip: {args.frames} frames of {args.width}x{args.height} at {args.fps:g} fps "
              f"({clip.stat().st_size / 2**20:.1f} MiB, made in {time.perf_counter() - start:.0f} s); "
              f"raw frames: {args.frames * args.width * args.height * 3 / 2**30:.2f} GiB as 8-bit, "
              f"{args.frames * args.width * args.height * 12 / 2**30:.2f} GiB as float32", flush=True)
        rows = []
        fitted: dict[int, str] = {}  # frames kept -> the fit row's atlas, for the edit row
        for kind in args.rows:
            for count in ([0] if kind in ("imports", "ffmpeg") else kept):
                atlas = fitted.get(count, args.edit_atlas) if kind.startswith("edit") else ""
                facts = measure(kind, clip, count, args, atlas=atlas)
                if kind == "fit" and "atlas" in facts:
                    fitted[count] = facts["atlas"]
                rows.append({"row": kind, "max_frames": count, "tree": "this", **facts})
                print(json.dumps(rows[-1]), flush=True)
        if args.compare_tree is not None:
            for count in args.compare_kept or [args.frames // 2]:
                facts = measure("read", clip, count, args, tree=args.compare_tree.resolve())
                rows.append({"row": "read", "max_frames": count, "tree": str(args.compare_tree), **facts})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        if temporary:
            shutil.rmtree(args.workdir, ignore_errors=True)

    print()
    print("| row | tree | frames kept | peak RSS (GiB) | seconds | load at start |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['row']} | {row['tree']} | {row['max_frames'] or 'all'} | error: {row['error']} | | |")
            continue
        print(f"| {row['row']} | {row['tree']} | {row.get('frames', '-')} | {row['peak_rss_mib'] / 1024:.2f} | "
              f"{row['seconds']} | {row['load_at_start']} |")
    report = {"clip": {"frames": args.frames, "width": args.width, "height": args.height, "fps": args.fps},
              "long_side": args.long_side, "fit_iterations": args.iterations, "rows": rows,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1"),
                          "torch": next((row["torch"] for row in rows if "torch" in row), None)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
