#!/usr/bin/env python
"""Zero-shot accuracy of the toy CLIP on held-out toy-world scenes.

    python scripts/eval_toy_clip.py                        # data/toy_clip, 500 scenes
    python scripts/eval_toy_clip.py --n 1000 --update-card # also rewrite data/toy_clip/MODEL_CARD.md

Prints colour / shape / texture accuracy (the true caption against captions differing only in
that attribute), editor-style prompt accuracy ("red circle" under the 14 Text2LIVE templates)
and the pairwise true-vs-wrong-colour rate; writes them to <model>/eval.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from toyworld.evaluate import HELD_OUT_SEED, evaluate, load  # noqa: E402

#: the toy CLIP the project ships and the editor's default; its card omits --out / --model
SHIPPED_MODEL = "data/toy_clip"

CARD = """# Toy CLIP (text2live_geo)

A small `transformers.CLIPModel` + word-level `CLIPTokenizer` trained from scratch on the
project's procedural toy world (the `toyworld` package), so that CLIP-guided editing can
be run and tested with real (toy) semantics without downloading pretrained weights. It
knows only toy-world words: {n_colours} colours ({colours}), {n_shapes} shapes ({shapes}),
{n_textures} textures ({textures}), background colours ({backgrounds}) and the words of the
Text2LIVE templates. It is not a general image model.

Load it like a hub checkpoint (float32 weights, {size_mb:.1f} MB folder):

```python
from transformers import CLIPModel, CLIPTokenizer
model = CLIPModel.from_pretrained("{model_dir}", dtype=torch.float32)
tokenizer = CLIPTokenizer.from_pretrained("{model_dir}")
```

Images: RGB in [0, 1] resized to {image_size}x{image_size}, normalised with the OpenAI CLIP
mean/std (`preprocessor_config.json` is a CLIPImageProcessor config).

## Architecture

- Vision: ViT, image {image_size}, patch {patch_size} ({tokens} patch tokens + CLS), width
  {vision_width}, {vision_layers} layers, {heads} heads, MLP 4x, quick-GELU.
- Text: width {text_width}, {text_layers} layers, {heads} heads, max length
  {max_text_length}, vocabulary {vocab} tokens (every world word is one token).
- Projection {projection_dim}; learnable logit scale (final value {scale:.1f}).
- {params:,} parameters.

## Training recipe

- Data: every step {batch} fresh scenes (`sample_spec`, 30% with two objects), rendered at
  {render}x{render}, each with one random true text: the full caption ("a red striped
  circle on a gray background"), one object's phrase under a Text2LIVE template ("a photo of
  red circle.", "red circle!", ...), a green-screen template for green-screen scenes
  ("red circle over a green screen."), "a red circle", or a partial description ("a circle",
  "a red object").
- Views (like the editor's CLIP views, but milder so the object stays whole): random crop
  0.85-1 of the side (aspect 0.8-1.25), hflip p 0.5, affine (10 degrees, translate 0.05)
  p 0.8, perspective 0.2 p 0.5, one kornia `warp_perspective` with white fill; colour jitter
  p 0.7 (brightness/contrast/saturation 0.1, hue 0.02 so colour words stay learnable);
  grayscale p {grayscale_p}; CLIP mean/std.
- Loss: symmetric multi-positive InfoNCE with the learnable logit scale (a text is a positive
  for every image of the batch it is true of) + attribute-contrast cross-entropy on
  {swap_pct}% of the batch: the image against texts differing only in the colour ({swap_colour_pct}%),
  shape ({swap_shape_pct}%) or texture ({swap_texture_pct}%) of one object (weight {swap_weight}) + a linear shape classifier
  on the pooled vision output for single-object scenes (weight {shape_head_weight}; training
  only, not saved) + the feature distillation below{extra_losses}.
{extra_recipe}- Feature distillation (training only): first a small CNN teacher (4 convolutions, 64
  channels) is trained for {teacher_steps} steps (lr {teacher_lr}) to classify the shape of
  single-object scenes (object size {teacher_sizes} of the side: two-object scenes draw theirs from
  {pair_sizes}) rendered at 64 px and only mirrored (its moving-average accuracy at
  the end: {teacher_shape:.0%}); then,
  while the CLIP trains, the ViT's patch tokens after layer {distill_layer} go through a linear
  map and regress (MSE, weight {distill_weight}) onto the teacher's feature map average-pooled
  to the patch grid and layer-normalised. Why: a ViT with a linear patch embedding learns
  colour-invariant outlines slowly. In a supervised shape probe on 12,000 single-object scenes
  (1 thread) the ViT reached 40 % after 1500 steps (patch 8) and 55 % after 2000 (patch 16), the
  CNN 95 % after 1000, and the patch-16 ViT with this distillation 87 % after 2000.
- Init: `tiny_clip.build_clip` (seed {seed}), then the vision position embeddings set to 2D
  sine-cosine (0.2 x, still learnable).
- AdamW (lr {lr}, betas 0.9/0.98, weight decay {weight_decay} on matrices), warmup {warmup}
  steps, cosine decay to 2% over whichever ends first of {steps} steps or {minutes} minutes;
  gradient clipping 1.0; torch threads {threads}; scenes are rendered in {workers} worker
  process(es) next to training; seed {seed}.
- This checkpoint: teacher {teacher_min:.1f} min, {vision_part}then {steps_done} CLIP steps; {wall_min:.1f} min
  wall time in all on a shared 2-core CPU (torch {torch}). On a slower or busier machine the
  same command does fewer steps within its {minutes}-minute cap (the schedule follows the
  clock), so accuracies can differ slightly; pass a large `--minutes` for a run that depends
  only on seed and steps.

## Held-out zero-shot accuracy

{n} held-out scenes (`sample_scene(seed)` for seeds {seed0}..{seed1}; training never
draws these), rendered at 128x128 and resized to {image_size}x{image_size}:

| measure | accuracy |
|---|---|
| colour (caption vs {n_colours_m1} captions differing only in colour) | {colour:.1%} |
| shape (vs captions differing only in shape) | {shape:.1%} |
| texture (vs captions differing only in texture) | {texture:.1%} |
| colour, editor prompt ("red circle", 14-template mean; {n_single} single-object scenes) | {colour_prompt:.1%} |
| shape, editor prompt | {shape_prompt:.1%} |
| true caption above one random wrong-colour caption | {colour_pair:.1%} |

Measured with `{eval_command}` ({eval_s:.0f} s).

## Known limitations

- {shape_note}
- Shape depends on the seed and on how many CLIP steps the clock allows. Measured with the recipe
  of the shipped model (teacher objects down to 0.13): seed 1 82.4 % (1808 steps), seed 0 65.0 %
  (1398 steps; its teacher and vision stage learnt shape later: vision-stage classifier 40 % vs
  64 % at step 1250). The previous recipe (teacher objects 0.2-0.34) gave 79.8 % (seed 1) and
  76.0 % (seed 0).
- Texture is only partly learned. Measure edits with the pixel classifiers of
  `toyworld` (`classify_colour`, `classify_texture`), not with this model.
- Only the toy-world words are single tokens; other words fall back to characters and carry
  no meaning for the model. `known_words.json` lists the words it saw, grouped (written by the
  training, `toyworld.training.model.write_known_words`); the editor warns about any other word
  of an edit's texts (the edit still runs).

## Experiment history

The runs behind the defaults of `toyworld.training.TrainConfig` (the code keeps only the why;
the numbers are here). "Shape" is held-out zero-shot shape accuracy; "semantic test" is the
"red circle" -> "blue circle" edit of `tests/test_semantic_toy.py`.

- Threads (`threads` 1): on the shared 2-core machine (3 busy processes) a CLIP step took 1.2 s
  with one torch thread and 6 s with two (oversubscribed OpenMP threads spin against each other).
- Patch size (`patch_size` 8): patch-16 steps are about 2x faster and reached 78 % shape in the
  same budget, but the 4 x 4 token grid made recolour edits coarse (the demo turned only half the
  circle blue; semantic test median blue-distance drop 0.12 vs 0.40 with patch 8).
- Training views (`views.TrainingViews`): under the editor's crops (0.6-1 of the side) many
  training views cut the object, its shape label turned to noise, and shape accuracy stayed at
  chance for 1000 steps even with distillation and the shape head; hence crops 0.85-1, rotation
  10 degrees, translation 0.05, perspective 0.2. A hue jitter of 0.1 of the circle turns red into
  orange or pink; hence 0.02.
- Teacher data (`data.make_teacher_batch`): on the CLIP's views (crops that cut objects,
  perspective, colour jitter) the CNN teacher was still at 22 % shape after 800 steps; on single
  objects at the model's size, only mirrored, it reaches 95 % after 1000.
- Feature distillation (`distill_weight`, `distill_layer` 2): a ViT with a linear patch embedding
  learnt shape slowly (supervised shape probe: 55 % after 2000 steps); regressing its layer-2
  patch tokens onto the CNN teacher's features pooled to the patch grid gave 87 % at 2000 steps.
- Shape classifier (`shape_head_weight`): with distillation alone the layer-2 tokens learnt the
  teacher's features but the contrastive shape accuracy stayed at chance for 1600 steps.
- Vision stage (`vision_steps` 1500, 6-7 min): shape 76-83 % (vs 56 % without), but alone it broke
  the recolour edit (its CLS attended to the outline and it rated a blue background almost as a
  blue object); the binding negatives and the CLS attention term repaired that.
- Shape classifier input (`shape_head_layer`), measured with the vision stage but without the
  binding negatives and the CLS attention term (1500 steps; shape, fraction of the editor's
  "red circle" relevancy map inside the circle, semantic test median PSNR outside): CLS 82.8 %,
  0.28, 23.5 dB; last layer (4, that run through the post-layernorm) 82.4 %, 0.31, 29.6 dB;
  layer 3 80.2 %, 0.37, 25.7 dB; layer 2 71.6 %, 0.59, 37.8 dB (the circle turned black). Without
  the vision stage (CLS): 56.0 %, 0.66, 44.4 dB. With both terms (CLS): 79.8 %, 0.64, 48.5 dB
  (seed 1, 1797 CLIP steps) and 76.0 %, 0.60, 53.5 dB (seed 0, 1235 CLIP steps); with both and
  `teacher_min_size` 0.13: 82.4 %, 0.61, 41.9 dB (the shipped model, seed 1, 1808 CLIP steps).
- Teacher object sizes (`teacher_min_size` 0.13): with 0.2, seed 1 reached shape 79.8 %
  (two-object captions 50 %; 67 % on extra single objects of 0.13-0.22), with 0.13 82.4 % (58 %;
  73 %), and edited as well. Seed 0 with 0.13: 65.0 % (its teacher and vision stage learnt shape
  late).
- Colour mixing (`colour_mix_weight` 0, off): the one run with it (weight 1, and `swap_colour_p`
  0.3) edited worse (semantic test median blue-distance drop 0.05 vs 0.71 for the same run
  without it), though its shape was 79.8 %.
- Per-object shape classifier (`object_shape_weight` 0, off): with weight 1 (seed 1,
  `teacher_min_size` 0.13) shape was 81.4 % vs 82.4 % without it (1524 vs 1808 CLIP steps;
  two-object scenes 61 % either way on 400 extra scenes), and one of the semantic test's three
  edits barely turned blue.

## Regenerate

```
python scripts/train_toy_clip.py --seed {seed}{train_extra}   # writes {model_dir} (about {total_min:.0f} min on 2 CPU cores)
python scripts/eval_toy_clip.py --n {n} --update-card{eval_extra}
```
"""


def recipe_options(cfg: dict, training: dict) -> dict:
    """The card's text for the optional parts of the recipe that `cfg` switches on."""
    losses, recipe = [], []
    if cfg.get("binding_count", 0) > 0:
        losses.append(" + the binding negatives")
        recipe.append(
            f"- Binding negatives: for up to {cfg['binding_count']} single-object scenes per batch, a true "
            "text of the scene with its object recoloured to another colour c must pick that image over the "
            "original and over the original with its background painted flat c (cross-entropy over the three, "
            f"weight {cfg['binding_weight']}; same view for all three): the colour word binds to the object, "
            "not to whatever part of the image has that colour. Without them a model trained with the vision "
            "stage rated \"red circle on a blue background\" almost as \"blue circle\" and the recolour "
            "edit painted the background.")
    if cfg.get("attention_weight", 0) > 0:
        losses.append(" + CLS attention on the objects")
        recipe.append(
            f"- CLS attention on the objects (weight {cfg['attention_weight']}, vision and CLIP stages): -log of "
            "the share of the last block's head-averaged CLS attention over the patches that falls on the "
            "objects (the world's exact masks, warped with each view and pooled to the patch grid). The "
            "editor's bootstrap relevancy map is built from these attentions; without this term the CLS of the "
            "shape-trained model attended to the outline and the map marked points around the object, so the "
            "edit went there.")
    if cfg.get("vision_steps", 0) > 0:
        recipe.append(
            f"- Vision stage ({cfg['vision_steps']} steps, before the contrastive stage): the vision tower "
            "alone (with the distillation map and the shape classifier) trains on fresh single-object "
            "scenes rendered at 64 px and only mirrored (the teacher's kind of batch), with the "
            "distillation + shape classifier" + (" + CLS attention" if cfg.get("attention_weight", 0) > 0 else "")
            + ". Its steps are cheap (no text tower) and its data clean: with it, runs within the same "
            "20-minute budget reached 76-83 % held-out shape, without it 56 % (the shape classifier's "
            f"moving-average accuracy at its end: {training.get('vision_stats', {}).get('vision_shape', 0.0):.0%}).")
    vision_min = training.get("vision_time_s", 0.0) / 60
    return {"extra_losses": "".join(losses), "extra_recipe": "".join(line + "\n" for line in recipe),
            "vision_part": f"vision stage {vision_min:.1f} min, " if cfg.get("vision_steps", 0) > 0 else ""}


def write_card(folder: Path, result: dict, command: str, seconds: float, model_dir: str = SHIPPED_MODEL) -> None:
    from transformers import CLIPModel

    from toyworld.world import (
        BACKGROUND_COLOURS,
        COLOURS,
        PAIR_OBJECT_SIZES,
        SHAPES,
        SINGLE_OBJECT_SIZES,
        TEXTURES,
    )

    training = json.loads((folder / "training.json").read_text())
    cfg = training["config"]
    model = CLIPModel.from_pretrained(str(folder))
    size_mb = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20
    vocab = len(json.loads((folder / "vocab.json").read_text()))
    # a model other than the shipped one is regenerated with its own folder, projection and steps
    train_extra = eval_extra = ""
    if model_dir != SHIPPED_MODEL:
        train_extra = f" --out {model_dir}"
        if cfg.get("projection_dim", 64) != 64:
            train_extra += f" --projection-dim {cfg['projection_dim']}"
        if cfg.get("steps"):
            train_extra += f" --steps {cfg['steps']} --minutes {cfg['minutes']:g}"
        eval_extra = f" --model {model_dir}"
    card = CARD.format(
        model_dir=model_dir, train_extra=train_extra, eval_extra=eval_extra,
        n_colours=len(COLOURS), colours=", ".join(COLOURS), n_shapes=len(SHAPES), shapes=", ".join(SHAPES),
        n_textures=len(TEXTURES), textures=", ".join(TEXTURES), backgrounds=", ".join(BACKGROUND_COLOURS),
        size_mb=size_mb, tokens=(cfg["image_size"] // cfg["patch_size"]) ** 2, vocab=vocab,
        scale=model.logit_scale.exp().item(), params=sum(p.numel() for p in model.parameters()),
        render=int(round(cfg["image_size"] * cfg["render_scale"])), swap_pct=int(100 * cfg["swap_fraction"]),
        steps_done=training["steps_done"], wall_min=training["wall_time_s"] / 60, torch=training["torch"],
        total_min=training["wall_time_s"] / 60, teacher_min=training.get("teacher_time_s", 0.0) / 60,
        **training["teacher_stats"], **recipe_options(cfg, training),
        swap_colour_pct=round(100 * cfg["swap_colour_p"]), swap_shape_pct=round(100 * (0.8 - cfg["swap_colour_p"])),
        swap_texture_pct=20,
        teacher_sizes=f"{cfg.get('teacher_min_size', SINGLE_OBJECT_SIZES[0])}-{SINGLE_OBJECT_SIZES[1]}",
        pair_sizes="-".join(map(str, PAIR_OBJECT_SIZES)),
        shape_note=(f"Shape reaches {result['shape']:.0%} zero-shot on held-out captions (target 80 %) and "
                    f"{result['shape_prompt']:.0%} with single-object editor prompts."
                    if result["shape"] >= 0.8 else
                    f"Shape is {result['shape']:.0%} zero-shot on held-out captions, under the 80 % target, and "
                    f"{result['shape_prompt']:.0%} with single-object editor prompts; do not rely on it to "
                    "measure shape edits."),
        seed0=result["seed"], seed1=result["seed"] + result["n"] - 1, n_colours_m1=len(COLOURS) - 1,
        n_single=result["n_single_object"], eval_command=command, eval_s=seconds,
        **{k: v for k, v in cfg.items() if k not in ("out",)},
        **{k: v for k, v in result.items() if k not in ("seed",)},
    )
    (folder / "MODEL_CARD.md").write_text(card)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=SHIPPED_MODEL)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--update-card", action="store_true", help="rewrite <model>/MODEL_CARD.md")
    args = parser.parse_args(argv)
    folder = Path(args.model)
    if not (folder / "config.json").exists():
        print(f"no toy CLIP at {folder} (expected a save_pretrained folder); train one with "
              "`python scripts/train_toy_clip.py`", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model, tokenizer = load(str(folder))
    start = time.time()
    result = evaluate(model, tokenizer, n=args.n, seed=args.seed)
    seconds = time.time() - start
    result["seed"] = args.seed
    for k in ("colour", "shape", "texture", "colour_prompt", "shape_prompt", "colour_pair"):
        print(f"{k:>14}: {result[k]:.1%}")
    print(f"({result['n']} held-out scenes, {result['n_single_object']} single-object; {seconds:.0f} s)")
    (folder / "eval.json").write_text(json.dumps(result, indent=2))
    if args.update_card:
        command = "python scripts/eval_toy_clip.py" + (f" --n {args.n}" if args.n != 500 else "") + \
            (f" --model {args.model}" if args.model != SHIPPED_MODEL else "")
        write_card(folder, result, command, seconds, model_dir=args.model)
        print(f"wrote {folder / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
