#!/usr/bin/env python
"""Peak memory and time of one render (no gradient, batch statistics) of the shipped generator on
a whole square image, with the plain module chain and with the banded merge
(``text2live_geo.banded``), each in a fresh subprocess.

Memory is the growth of the subprocess's peak resident memory (``ru_maxrss``) over what it held
after importing and building the generator and the input. A render of the whole atlas region is
the largest generator pass of a video edit (``atlas.max_crop_pixels`` bounds that region).

  OMP_NUM_THREADS=1 python benchmarks/bench_generator_memory.py              # 1000 x 1000 (1 MP)
  python benchmarks/bench_generator_memory.py --sides 512 1000 --out /tmp/generator_memory.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODES = ("plain", "banded")


def child(side: int, mode: str, seed: int) -> dict:
    import resource
    import time

    import torch

    sys.path.insert(0, str(ROOT))
    from text2live_geo.config import GeneratorConfig
    from text2live_geo.generator import SkipGenerator, _Scale, batch_statistics_without_update

    torch.manual_seed(seed)
    generator = SkipGenerator.from_config(GeneratorConfig())
    image = torch.rand(1, 3, side, side)
    _Scale.banded_min_pixels = 0 if mode == "banded" else 10 ** 12
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    with torch.no_grad(), batch_statistics_without_update(generator):
        rgba = generator(image)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"side": side, "megapixels": round(side * side / 1e6, 3), "mode": mode,
            "growth_mib": round(peak - before, 1), "peak_rss_mib": round(peak, 1), "seconds": round(seconds, 2),
            "checksum": float(rgba.double().sum()), "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[1000], help="square input sides (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.seed)))
        return 0
    rows = []
    print(f"{'side':>6} {'MP':>6} {'mode':>7} {'growth MiB':>11} {'MiB per MP':>11} {'seconds':>8}")
    for side in args.sides:
        checksums = {}
        for mode in MODES:
            done = subprocess.run([sys.executable, __file__, "--child", str(side), mode, "--seed", str(args.seed)],
                                  capture_output=True, text=True, env=os.environ.copy())
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                return 1
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            checksums[mode] = row["checksum"]
            print(f"{side:>6} {row['megapixels']:>6} {mode:>7} {row['growth_mib']:>11} "
                  f"{row['growth_mib'] / row['megapixels']:>11.0f} {row['seconds']:>8}")
        relative = abs(checksums["plain"] - checksums["banded"]) / max(abs(checksums["plain"]), 1e-12)
        print(f"       outputs' sums differ by {relative:.1e} (relative)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
