#!/usr/bin/env python
"""What the GFK settings cost per training step: IMC + IMR, forward and backward, at CLIP's size.

One training step of the geodesic guidance evaluates IMC (the view directions against the text
directions) and IMR (the views against their anchor), each fitting one geodesic flow kernel. This
times that on random embeddings of the step's shapes (``--views`` rows of ``--dim`` features,
``--templates`` text directions; float32 embeddings, the kernel fitted in float64 as always) for:

- ``default``: the whole complement, no centring (basis-free);
- ``published``: 256 complement directions in Householder order, per-row centring (the published
  code's settings), and each of the two alone;

each with the ``hogsvd`` (default) and ``exact`` solvers. Times are medians of ``--repeats`` runs
after a warm-up, on this process's threads (set ``OMP_NUM_THREADS``). Prints a table and writes
``benchmarks/results/gfk_cost.json``.

  OMP_NUM_THREADS=1 python benchmarks/bench_gfk.py
  python benchmarks/bench_gfk.py --dim 768 --views 32 --repeats 5 --out /tmp/gfk.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SETTINGS = {
    "default": {},
    "published": {"null_dim": 256, "centring": "published"},
    "null_dim=256": {"null_dim": 256},
    "centring=published": {"centring": "published"},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=512, help="embedding size (ViT-B/32: 512)")
    parser.add_argument("--views", type=int, default=16, help="CLIP views per step (the image default: 16)")
    parser.add_argument("--templates", type=int, default=4, help="text templates per step (the default: 4)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gfk_cost.json")
    return parser.parse_args(argv)


def time_step(losses, inputs, repeats: int) -> float:
    """Median seconds of one IMC + IMR forward and backward."""
    import torch

    imc, imr = losses
    image_source, image_output, text_source, text_target, anchor = inputs
    times = []
    for _ in range(repeats + 2):  # two warm-up runs
        output = image_output.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        loss = imc(image_source, output, text_source, text_target) + imr(anchor, output)
        loss.backward()
        times.append(time.perf_counter() - start)
        assert torch.isfinite(output.grad).all()
    return statistics.median(times[2:])


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from text2live_geo.losses.geodesic import InterModalityConsistency, IntraModalityRegularisation

    generator = torch.Generator().manual_seed(0)
    image_source = torch.randn(args.views, args.dim, generator=generator)
    image_output = image_source + 0.3 * torch.randn(args.views, args.dim, generator=generator)
    text_source = torch.randn(1, args.dim, generator=generator)
    text_target = text_source + torch.randn(args.templates, args.dim, generator=generator)
    anchor = image_output + 0.3 * torch.randn(args.views, args.dim, generator=generator)
    inputs = (image_source, image_output, text_source, text_target, anchor)

    rows = []
    for solver in ("hogsvd", "exact"):
        for name, setting in SETTINGS.items():
            losses = (InterModalityConsistency(solver=solver, **setting),
                      IntraModalityRegularisation(solver=solver, **setting))
            seconds = time_step(losses, inputs, args.repeats)
            rows.append({"setting": name, "solver": solver, **setting, "ms_per_step": round(1000 * seconds, 2)})
            print(json.dumps(rows[-1]), flush=True)
    by_key = {(row["setting"], row["solver"]): row["ms_per_step"] for row in rows}
    print(f"\nIMC + IMR forward + backward, {args.views} views x {args.dim} dims, {args.templates} templates, "
          f"median of {args.repeats}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| setting | hogsvd (ms) | exact (ms) |")
    print("|---|---|---|")
    for name in SETTINGS:
        print(f"| {name} | {by_key[(name, 'hogsvd')]} | {by_key[(name, 'exact')]} |")
    ratio = by_key[("default", "hogsvd")] / by_key[("published", "hogsvd")]
    print(f"\nwhole complement and no centring against the published settings (hogsvd): x{ratio:.2f}")
    report = {"dim": args.dim, "views": args.views, "templates": args.templates, "repeats": args.repeats,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
              "cpus": os.cpu_count(), "rows": rows, "default_over_published": round(ratio, 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
