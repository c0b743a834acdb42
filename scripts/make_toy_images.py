#!/usr/bin/env python
"""Write the sample toy-world images shipped in data/toy_images (deterministic).

    python scripts/make_toy_images.py [--out data/toy_images] [--size 128]

For each sample: <name>.png (RGB), <name>_mask.png (object mask, 0/255) and an entry in
captions.json with the caption, the object phrase (the editor's `src_text`), the spec of
the scene and suggested edits (`comp_text` for a different colour). The specs re-render
with `toyworld.render_scene(SceneSpec(...), size)`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from toyworld import BackgroundSpec, ObjectSpec, SceneSpec, object_phrase, render_scene  # noqa: E402

SAMPLES: dict[str, tuple[SceneSpec, list[str]]] = {
    # The demo: "red circle" -> "blue circle" on a flat gray background.
    "red_circle": (SceneSpec(
        objects=(ObjectSpec("circle", "red", cx=0.5, cy=0.5, size=0.3),),
        background=BackgroundSpec("gray", "flat")), ["blue", "green", "yellow"]),
    # Same object over a striped background (the edit must leave the stripes alone).
    "red_circle_striped_bg": (SceneSpec(
        objects=(ObjectSpec("circle", "red", cx=0.52, cy=0.48, size=0.28),),
        background=BackgroundSpec("gray", "stripes", angle=0.6, period=0.12, strength=0.25)), ["blue", "green"]),
    "yellow_star": (SceneSpec(
        objects=(ObjectSpec("star", "yellow", cx=0.5, cy=0.52, size=0.34, angle=0.1),),
        background=BackgroundSpec("gray", "gradient", angle=1.2, strength=0.25)), ["purple", "blue"]),
    "blue_square_checkered": (SceneSpec(
        objects=(ObjectSpec("square", "blue", "checkered", cx=0.5, cy=0.5, size=0.3, angle=0.15,
                            texture_period=0.5),),
        background=BackgroundSpec("beige", "flat")), ["red", "green"]),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/toy_images")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    captions = {}
    for name, (spec, targets) in SAMPLES.items():
        scene = render_scene(spec, args.size)
        rgb = (scene.image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(rgb).save(out / f"{name}.png")
        mask = scene.masks[0].numpy().astype(np.uint8) * 255
        Image.fromarray(mask).save(out / f"{name}_mask.png")
        obj = spec.objects[0]
        captions[name] = {
            "image": f"{name}.png", "mask": f"{name}_mask.png", "size": args.size,
            "caption": scene.caption, "object": object_phrase(obj),
            "colour": obj.colour, "shape": obj.shape, "texture": obj.texture,
            "background": spec.background.colour,
            "edits": [{"src_text": object_phrase(obj), "comp_text": object_phrase(dataclasses.replace(obj, colour=c)),
                       "target_colour": c} for c in targets],
            "spec": {"objects": [dataclasses.asdict(o) for o in spec.objects],
                     "background": dataclasses.asdict(spec.background)},
        }
    (out / "captions.json").write_text(json.dumps(captions, indent=2) + "\n")
    print(f"wrote {len(captions)} images + masks and captions.json to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
