#!/usr/bin/env python
"""Train the toy CLIP on the procedural toy world (CPU, about 19.5 minutes on 2 cores: CNN teacher,
vision stage, then the CLIP).

    python scripts/train_toy_clip.py --seed 1              # the shipped data/toy_clip (default seed 0)
    python scripts/train_toy_clip.py --minutes 2 --steps 200 --out /tmp/toy_clip
    python scripts/eval_toy_clip.py --update-card          # then measure + write MODEL_CARD.md

Every field of `toyworld.training.TrainConfig` is a flag (--vision-layers 4 ...).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toyworld.training import TrainConfig, train  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    def boolean(text: str) -> bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")

    for f in dataclasses.fields(TrainConfig):
        kind = boolean if isinstance(f.default, bool) else type(f.default)
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default,
                            help=f"(default: {f.default})")
    args = parser.parse_args(argv)
    cfg = TrainConfig(**vars(args))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
