#!/usr/bin/env python
"""The stability-plasticity (SP) benchmark: pre-registered, judged from pixels, Holm-corrected.

Held-out toy-world scenes (one object on a flat, gradient, noise or striped background) are
edited with a shipped toy CLIP (data/toy_clip_512: real CLIP's 512-d embedding) under several
settings, each at the same cases and seeds, and judged from pixels by the world's own means
(benchmarks/sp_judge.py), never by CLIP.
The protocol (docs/sp_benchmark.md):

Settings. The `default` row is the shipped `ImageEditConfig`, nothing added; every other row is
a stated diff on top of it (a config file and/or key=value). Every row gets the same
benchmark-wide keys: the case's image and texts, the toy CLIP, the device, the run folder and
seed, the snapshot cadence, the step count, the 96 px image size and what it forces (the
generator's `num_scales`, since an input needs 2^num_scales + 1 px per side;
`crops.resize_short`, so no row upscales it), and `clip.checkpoint_layers=0` (activation
checkpointing recomputes the same values; off, a step is faster). The shipped schedules are
written for `steps=1000`; at the benchmark's step count they are scaled in every row by one rule
(`SCHEDULE_RULE`). Before any edit every row's config is resolved (`load_config`, as
`edit_image` resolves it) and written to the results; the default row's resolved config, less
the benchmark-wide keys, must equal the shipped config resolved the same way, or the benchmark
refuses to run.

Cases. Two disjoint, pre-registered sets: the decision set (seeds from 7_000_000) and the
confirmation set (seeds from 8_000_000), 96 cases each by default; the judges' calibration
scenes come from 9_000_000 on. `--phase decision` runs the candidate settings on the decision
set and applies `DECISION_RULE`; `--phase confirmation` runs only the default, the settings the
decision phase selected (read from its results) and the guidance the default does not use
(directional or geodesic; both are always rows, and the one the default uses resolves to it) on
the confirmation set, and reports what comes out. `--phase layer-decision` and
`--phase layer-confirmation` do the same for `LAYER_RULE` (edits that hit their target and keep
the rest of the picture), with the candidates `LAYER_CANDIDATES`, on the same two case sets.

Judged from pixels, with the exact mask the world drew:
- plasticity: the object's colour (recolour cases: more than half of its pixels the target
  colour) or texture (retexture cases: `world.classify_texture`) is the target;
- stability outside the object: PSNR outside the mask against the input, and the share of the
  alpha mass outside it;
- stability inside the object: the shape kept (IoU of the drawn mask and the object found after
  the edit against the world's bare background), and the attribute the edit was not asked to
  change kept (the texture when recolouring, the colour when retexturing).

Each comparison with the default is paired by case and seed; within each metric the m
comparisons are Holm-corrected (p-values: exact McNemar for the binary metrics, a paired sign-flip
test for the others), and the paired-bootstrap intervals (seeded) are at each comparison's Holm
level. Finished edits are
appended to rows.jsonl in --work, so the same command again continues where it stopped.

  python benchmarks/sp_dilemma.py --phase decision --work /tmp/sp       # then, with its results:
  python benchmarks/sp_dilemma.py --phase confirmation --work /tmp/sp
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

REFERENCE_CONFIG = "configs/image/text2live_reference.yaml"
DEFAULT = "default"
DECISION_SEED = 7_000_000  # disjoint from the toy CLIP's training and evaluation seeds (toyworld.evaluate)
CONFIRMATION_SEED = 8_000_000
SEED_SPAN = 1_000_000  # a case set never reads a seed of the next set
ALPHA = 0.05
#: CPU cost of one edit at the shipped config, 96 px, one thread (process time of `edit_image`, so a
#: loaded machine does not inflate it; docs/sp_benchmark.md): setup seconds + seconds per step. Used
#: for the estimate printed before a run when --work holds no finished edits yet, else their mean.
#: (the decision run of 2026-12-07, 36 steps: 18.7-23.9 CPU-s per edit by row, mean 21.6, i.e.
#: about 0.55 s/step besides 1.5 s; an earlier 20-step measurement on a busier machine gave 0.70-1.06)
MEASURED_SETUP_SECONDS = 1.5
MEASURED_SECONDS_PER_STEP = 0.55

SCHEDULE_KEYS = ("loss.bootstrap_steps", "optim.lr_decay")
SCHEDULE_RULE = ("the shipped schedules are written for the shipped step count S; at the benchmark's step count s "
                 "every row's loss.bootstrap_steps is scaled by s / S (rounded, at least 1) and its per-step "
                 "learning-rate factor raised to S / s (optim.lr_decay ** (S / s)), so both keep their shape over "
                 "the shorter run: the bootstrap fades over the same share of the run and the learning rate falls "
                 "by the same total factor. crops.full_image_every is a period, not a run length, and stays as "
                 "shipped (the whole image at step 0, then every 75 steps)")
#: --set may change only these (a reduced-scale run for tests and smoke runs; the report says so)
SCALE_KEYS = ("generator.channels", "clip.n_aug")
DECISION_METRIC = "plasticity"
STABILITY_METRICS = ("psnr_outside", "alpha_outside_share", "shape_iou", "attribute_kept")
DECISION_RULE = (f"a candidate is selected when, against the default on the decision set, its plasticity "
                 f"difference is positive with a Holm-adjusted exact McNemar p <= {ALPHA}, and none of the stability "
                 f"metrics ({', '.join(STABILITY_METRICS)}) is worse with a Holm-adjusted p <= {ALPHA} (sign-flip "
                 "test; exact McNemar for attribute_kept); Holm runs over the m candidates within each metric, and "
                 "the paired-bootstrap interval at each comparison's Holm level is reported beside it")

#: a layered hit: the edit hits its target and the rest of the picture is kept (PSNR outside the object
#: at least this; 30 dB: differences a viewer does not notice without comparing side by side)
LAYER_PSNR_DB = 30.0
LAYER_METRIC = "layered_hit"
LAYER_RULE = (f"registered on 2026-12-07, after the confirmation phase showed the default repainting most of the "
              f"picture (alpha outside the object 77 %): a case is a layered hit when its edit hits the target "
              f"(plasticity) and its PSNR outside the object is at least {LAYER_PSNR_DB:g} dB; a candidate is "
              f"selected when its layered-hit rate beats the default's with a Holm-adjusted exact McNemar p <= "
              f"{ALPHA} (Holm over the m candidates); of several, the one with the highest layered-hit rate. A "
              "layered editor's edit is one that does what was asked and leaves the rest to the input")


class BenchmarkError(Exception):
    """A protocol violation; main prints it as one line and exits 2."""


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Setting:
    """A row: `config` (a YAML file under the repo, or None) and `diff` (key=value; `{src}` is the
    case's source text) on top of the shipped config."""

    name: str
    config: str | None = None
    diff: tuple[str, ...] = ()
    note: str = ""

    def described(self) -> str:
        parts = ([f"--config {self.config}"] if self.config else []) + list(self.diff)
        return " ".join(parts) if parts else "(the shipped config)"


DEFAULT_SETTING = Setting(DEFAULT, note="the shipped ImageEditConfig")
DIRECTIONAL = Setting("directional", None, ("loss.guidance=directional",),
                      "Text2LIVE's directional loss; also the reference recipe's loss.guidance alone")
GEODESIC = Setting("geodesic", None, ("loss.guidance=geodesic",),
                   "the geodesic loss (IMC + IMR, Oh et al.); the image default until the 2026-12-07 confirmation")
#: both guidances are always rows; the one that is the shipped default resolves to the default row and is
#: listed as not run, so the other guidance is always compared with the default
GUIDANCE_ROWS = (DIRECTIONAL, GEODESIC)
BOOTSTRAP_SOURCE = Setting("bootstrap-source", None, ("text.bootstrap_fallback=src",),
                           "with no bootstrap text, the source text's relevancy as the bootstrap target")
REFERENCE_BOOTSTRAP_SOURCE = Setting("reference-bootstrap-source", REFERENCE_CONFIG, ("text.bootstrap_fallback=src",),
                                     "the reference recipe, with the source text's relevancy as the bootstrap target")
CANDIDATES = (
    *GUIDANCE_ROWS,
    Setting("reference", REFERENCE_CONFIG, (), "the Text2LIVE reference recipe, whole"),
    BOOTSTRAP_SOURCE,
    REFERENCE_BOOTSTRAP_SOURCE,
)
#: the layer rule's candidates: with no bootstrap text given, the source text's relevancy as the bootstrap
#: target (text.bootstrap_fallback=src), under each guidance and recipe. `bootstrap-source` is the same
#: diff as the decision phase's row, now on the directional default; `geodesic-bootstrap-source` is that
#: row's config as the decision phase ran it (on the geodesic default then), so its edits are reused
LAYER_CANDIDATES = (
    BOOTSTRAP_SOURCE,
    Setting("geodesic-bootstrap-source", None, ("loss.guidance=geodesic", "text.bootstrap_fallback=src"),
            "geodesic guidance, with the source text's relevancy as the bootstrap target"),
    REFERENCE_BOOTSTRAP_SOURCE,
)
#: reference-recipe keys that no code reads under the condition given (checked on the resolved
#: row); such an ablation row would be the default row again, so it is listed, not run
INERT = {
    "loss.directional_pairs": (lambda cfg, args: cfg.loss.guidance != "directional",
                               "read only by the directional loss (editing/objective.py), and the row is geodesic"),
    "loss.raw_directions": (lambda cfg, args: cfg.loss.guidance != "directional",
                            "read only under directional guidance (editing/objective.py)"),
    "loss.relevancy_per_crop": (lambda cfg, args: not cfg.text.relevancy_text(),
                                "read only with a relevancy text (editing/objective.py), and the row has none"),
    "crops.resize_upscale": (lambda cfg, args: cfg.crops.resize_short == args.size,
                             "the inputs are already at crops.resize_short (the benchmark's size)"),
}


def flatten(node: dict, prefix: str = ""):
    """(dotted key, value) for every leaf of nested dicts, in their order: {"a": {"b": 1}} -> ("a.b", 1)."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def recipe_ablation() -> list[Setting]:
    """One row per key of the reference recipe (configs/image/text2live_reference.yaml), alone on
    the default; the key loss.guidance is the guidance rows' (`directional`, `geodesic`)."""
    import yaml

    rows = []
    for key, value in flatten(yaml.safe_load((ROOT / REFERENCE_CONFIG).read_text())):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if key == "loss.guidance":
            continue
        rows.append(Setting(f"recipe:{key}", None, (f"{key}={text}",), "one key of the reference recipe alone"))
    return rows


def decision_settings() -> list[Setting]:
    """The decision phase's rows: the default and the candidates (Holm's family is the candidates)."""
    return [DEFAULT_SETTING, *CANDIDATES]


def ablation_settings() -> list[Setting]:
    """The ablation phase's rows: the default and each reference-recipe key alone. On the decision set,
    its own Holm family, reported and never used for choosing (split from the decision phase so
    that each part fits the 90-minute budget at a step count where edits happen)."""
    return [DEFAULT_SETTING, *recipe_ablation()]


def layer_decision_settings() -> list[Setting]:
    """The layer decision's rows: the default and LAYER_CANDIDATES (Holm's family is the candidates)."""
    return [DEFAULT_SETTING, *LAYER_CANDIDATES]


#: phase -> (its rows, its work subfolder). The ablation and the layer decision run on the decision
#: set and share the decision phase's folder: the same config on the same case is one edit, run once
PHASES = {"decision": (decision_settings, "decision"), "ablation": (ablation_settings, "decision"),
          "layer-decision": (layer_decision_settings, "decision")}
#: confirmation phase -> the decision phase whose selection it confirms (both in the confirmation folder)
CONFIRMATIONS = {"confirmation": "decision", "layer-confirmation": "layer-decision"}
#: the phases that choose by LAYER_RULE instead of DECISION_RULE
LAYER_PHASES = ("layer-decision", "layer-confirmation")


# ------------------------------------------------------------------------------ cases
@dataclass
class EditCase:
    index: int
    seed: int  # the world seed the scene was sampled from
    kind: str  # recolour | retexture
    src_text: str
    target_text: str
    target: str  # target colour or texture name
    colour: str  # the object's colour before the edit
    texture: str  # the object's texture before the edit
    image_path: str
    mask_path: str
    background_path: str  # the world's render of the bare background (the shape judge's model)


def build_cases(count: int, size: int, folder: Path, base_seed: int = DECISION_SEED) -> list[EditCase]:
    """Held-out single-object scenes on every background style, two recolours to one retexture,
    from world seeds `base_seed` onwards (never `base_seed + SEED_SPAN` or beyond)."""
    import numpy as np

    import sp_judge
    from text2live_geo.common.io import save_png
    from toyworld import world

    folder.mkdir(parents=True, exist_ok=True)
    styles = world.BACKGROUND_STYLES
    cases: list[EditCase] = []
    seed = base_seed
    while len(cases) < count:
        if seed >= base_seed + SEED_SPAN:
            raise BenchmarkError(f"case set from seed {base_seed} ran out of seeds")
        rng = np.random.default_rng(seed)
        seed += 1
        spec = world.sample_spec(rng, n_objects=1)
        index = len(cases)
        background_colour = spec.background.colour
        if background_colour == world.GREEN_SCREEN:
            continue
        spec = spec.with_background(style=styles[index % len(styles)])
        obj = spec.objects[0]
        if obj.size < 0.26:  # large enough to classify texture from pixels
            spec = spec.with_object(0, size=0.3, cx=0.5, cy=0.5)
            obj = spec.objects[0]
        kind = "recolour" if index % 3 != 2 else "retexture"
        background = world.render_background(spec.background, size)
        allowed = [c for c in world.allowed_colours(background_colour) if c != obj.colour]
        if kind == "recolour":
            if obj.texture != "plain":
                spec = spec.with_object(0, texture="plain")
                obj = spec.objects[0]
            target = allowed[int(rng.integers(len(allowed)))]
            target_text = world.object_phrase(colour=target, texture=obj.texture, shape=obj.shape)
        else:
            # a plain object of a colour whose texture shade the shape judge can tell from the background
            distinct = [c for c in world.allowed_colours(background_colour)
                        if c not in ("white", "black") and sp_judge.shade_distinct(c, background)]
            if not distinct:
                continue
            if obj.texture != "plain" or obj.colour not in distinct:
                spec = spec.with_object(0, texture="plain", colour=distinct[0])
                obj = spec.objects[0]
            target = ("striped", "checkered", "dotted")[(index // 3) % 3]
            target_text = world.object_phrase(colour=obj.colour, texture=target, shape=obj.shape)
        scene = world.render_scene(spec, size=size)
        stem = folder / f"case_{index:03d}"
        save_png(scene.image, f"{stem}.png")
        save_png(scene.masks[:1].float(), f"{stem}_mask.png")
        np.save(f"{stem}_background.npy", background.astype(np.float32))
        cases.append(EditCase(index, seed - 1, kind, world.object_phrase(obj), target_text, target, obj.colour,
                              obj.texture, f"{stem}.png", f"{stem}_mask.png", f"{stem}_background.npy"))
    return cases


# ------------------------------------------------------------------------------ configs
def forced_scales(size: int) -> int:
    """The largest generator.num_scales up to the shipped one whose input minimum fits `size` px."""
    from text2live_geo.config import ImageEditConfig
    from text2live_geo.generator import min_input_size

    scales = ImageEditConfig().generator.num_scales
    while scales > 1 and min_input_size(scales) > size:
        scales -= 1
    return scales


def curve_every(args) -> int:
    return max(1, args.steps // 4)


PLACEHOLDER_CASE = EditCase(-1, -1, "recolour", "<source text>", "<target text>", "<target>", "<colour>", "<texture>",
                            "<case>.png", "<case>_mask.png", "<case>_background.npy")


def benchmark_overrides(args, case: EditCase, seed: int, out_dir, run_name: str) -> list[str]:
    """The keys every row gets (the same for every setting)."""
    return [
        f"image={case.image_path}", f"clip.model={args.clip}", f"text.src={case.src_text}",
        f"text.comp={case.target_text}", f"text.screen={case.target_text}", f"steps={args.steps}", f"seed={seed}",
        "device=cpu", f"output_dir={out_dir}", f"run_name={run_name}", f"snapshot_every={curve_every(args)}",
        "checkpoint_every=0", f"generator.num_scales={forced_scales(args.size)}", f"crops.resize_short={args.size}",
        "clip.checkpoint_layers=0",
    ] + list(args.set)


def benchmark_keys(args) -> list[str]:
    return [item.split("=", 1)[0] for item in benchmark_overrides(args, PLACEHOLDER_CASE, 0, "-", "-")] + list(
        SCHEDULE_KEYS)


def run_name_for(setting: Setting, seed: int, case: EditCase) -> str:
    return f"{setting.name.replace(':', '_').replace('.', '_')}-s{seed}-{case.index:03d}"


def setting_named(name: str) -> Setting:
    for setting in decision_settings():
        if setting.name == name:
            return setting
    raise BenchmarkError(f"unknown setting {name!r}; known: {', '.join(s.name for s in decision_settings())}")


def edit_inputs(setting: Setting, args, case: EditCase = PLACEHOLDER_CASE, seed: int = 0, out_dir="<work>/runs",
                run_name: str = "<run>") -> tuple[list[Path], list[str]]:
    """(config files, overrides) of one edit: the setting's diff, then the benchmark-wide keys, then
    the scaled schedules (SCHEDULE_RULE) of what those resolve to. `edit_image` gets exactly these."""
    from text2live_geo.common.config import load_config
    from text2live_geo.config import ImageEditConfig

    wide = set(benchmark_keys(args)) - set(SCHEDULE_KEYS)
    for item in setting.diff:
        if item.split("=", 1)[0] in wide:
            raise BenchmarkError(f"setting '{setting.name}' sets the benchmark-wide key {item.split('=', 1)[0]}")
    paths = [ROOT / setting.config] if setting.config else []
    overrides = [item.replace("{src}", case.src_text) for item in setting.diff] + benchmark_overrides(
        args, case, seed, out_dir, run_name)
    unscaled = load_config(ImageEditConfig, paths, overrides, warn_legacy=False)
    ratio = args.steps / ImageEditConfig().steps
    overrides += [f"loss.bootstrap_steps={max(1, round(unscaled.loss.bootstrap_steps * ratio))}",
                  f"optim.lr_decay={unscaled.optim.lr_decay ** (1 / ratio)!r}"]
    return paths, overrides


def resolve(setting: Setting, args, **case_keys):
    from text2live_geo.common.config import load_config
    from text2live_geo.config import ImageEditConfig

    paths, overrides = edit_inputs(setting, args, **case_keys)
    return load_config(ImageEditConfig, paths, overrides, warn_legacy=False)


def flat_values(cfg) -> dict:
    from text2live_geo.common.config import config_values

    return dict(flatten(config_values(cfg)))


def config_hash(cfg) -> str:
    return hashlib.sha256(json.dumps(flat_values(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_default(default_cfg, args) -> dict:
    """Refuse unless `default_cfg`, less the benchmark-wide keys, is the shipped config resolved the
    same way (`load_config` of ImageEditConfig with no file and no override)."""
    from text2live_geo.common.config import load_config
    from text2live_geo.config import ImageEditConfig

    wide = set(benchmark_keys(args))
    shipped = {k: v for k, v in flat_values(load_config(ImageEditConfig)).items() if k not in wide}
    mine = {k: v for k, v in flat_values(default_cfg).items() if k not in wide}
    differing = sorted(k for k in shipped.keys() | mine.keys() if shipped.get(k, "<absent>") != mine.get(k, "<absent>"))
    if differing:
        shown = ", ".join(f"{k}={mine.get(k)!r} (shipped {shipped.get(k)!r})" for k in differing[:4])
        raise BenchmarkError(f"refusing to label a row '{DEFAULT}': its resolved config differs from the shipped one "
                             f"beyond the benchmark-wide keys at {shown}")
    return {"equal": True, "keys_compared": len(shipped), "keys_excluded": sorted(wide),
            "shipped": "load_config(ImageEditConfig): the dataclass defaults, no file, no override"}


def resolve_rows(settings: list[Setting], args) -> tuple[list[Setting], dict[str, dict], list[dict], dict]:
    """Resolve every row (placeholders for the case's keys), check the default and the diffs; drop
    rows that resolve to the default, or differ from it only in keys inert there (`INERT`). Returns (the rows to
    run, name -> resolved config as plain values, the rows not run with why, the default check)."""
    resolved = {setting.name: resolve(setting, args) for setting in settings}
    if DEFAULT not in resolved:
        raise BenchmarkError(f"no '{DEFAULT}' row: every comparison is against it")
    checked = check_default(resolved[DEFAULT], args)
    default_values = flat_values(resolved[DEFAULT])
    run, skipped, seen = [], [], {}
    for setting in settings:
        cfg = resolved[setting.name]
        values = flat_values(cfg)
        differing = [key for key in values if values[key] != default_values.get(key)]  # none for the default
        if setting.name != DEFAULT and not differing:
            skipped.append({"setting": setting.name, "diff": setting.described(),
                            "why": "its value is already the shipped one: the row resolves to the default row"})
            continue
        # a row that differs from the default only in keys no code reads here is the default's edit again
        # (e.g. the reference recipe once the default took all its other keys): listed, not run
        if differing and all(key in INERT and INERT[key][0](cfg, args) for key in differing):
            skipped.append({"setting": setting.name, "diff": setting.described(),
                            "why": "inert: " + "; ".join(f"{key}: {INERT[key][1]}" for key in differing)})
            continue
        digest = json.dumps(values, sort_keys=True, default=str)
        if digest in seen:
            skipped.append({"setting": setting.name, "diff": setting.described(),
                            "why": f"resolves to the same config as '{seen[digest]}'"})
            continue
        seen[digest] = setting.name
        run.append(setting)
    return run, {s.name: flat_values(resolved[s.name]) for s in run}, skipped, checked


# ------------------------------------------------------------------------------ one edit
def judge(composite, source, alpha, case: EditCase) -> dict:
    """Every metric of one edit from its (3, H, W) composite and input in [0, 1] and (H, W) alpha."""
    import numpy as np
    import torch

    import sp_judge
    from atlas import reconstruction_psnr
    from text2live_geo.common.io import read_image
    from toyworld import world

    mask = read_image(case.mask_path)[0][0, 0] > 0.5
    background = torch.from_numpy(np.load(case.background_path))
    pixels = sp_judge.object_pixels(composite, mask)
    shares = sp_judge.colour_shares(pixels)
    colour = sp_judge.judge_colour(pixels)
    texture = world.classify_texture(composite, mask)
    if case.kind == "recolour":
        hit, predicted, kept = shares[case.target] > 0.5, colour, texture == case.texture
    else:
        hit, predicted, kept = texture == case.target, texture, colour == case.colour
    row = {"predicted": predicted, "hit": bool(hit), "target_share": shares.get(case.target),
           "judged_colour": colour, "judged_texture": texture, "attribute_kept": bool(kept),
           "psnr_outside": min(reconstruction_psnr(composite[:, ~mask], source[:, ~mask]), 99.0),
           "shape_iou": sp_judge.shape_iou(composite, background, mask)}
    if alpha is not None:
        row["alpha_outside_share"] = float((alpha * ~mask).sum() / alpha.sum().clamp(min=1e-8))
        row["alpha_inside_mean"] = float(alpha[mask].mean())
    return row


def run_case(job) -> dict:
    case, setting, seed, args, out_dir = job
    import torch

    torch.set_num_threads(1)
    from text2live_geo import edit_image
    from text2live_geo.common.config import load_config
    from text2live_geo.common.io import read_image
    from text2live_geo.common.runs import CHECKPOINT_NAME
    from text2live_geo.config import ImageEditConfig

    paths, overrides = edit_inputs(setting, args, case=case, seed=seed, out_dir=out_dir,
                                   run_name=run_name_for(setting, seed, case))
    start, cpu_start = time.perf_counter(), time.process_time()
    result = edit_image(paths, overrides, progress=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    ran = load_config(ImageEditConfig, result.run_dir / "config.yaml", warn_legacy=False)
    expected = load_config(ImageEditConfig, paths, overrides, warn_legacy=False)
    if config_hash(ran) != config_hash(expected):  # what ran is what was resolved
        raise BenchmarkError(f"run {result.run_dir} saved a config other than the one resolved for it")
    composite, source = result.layers.composite[0].cpu(), result.input_image[0].cpu()
    row = {"case": case.index, "world_seed": case.seed, "kind": case.kind, "setting": setting.name, "seed": seed,
           "src": case.src_text, "target_text": case.target_text, "target": case.target,
           "colour_before": case.colour, "texture_before": case.texture, "seconds": seconds,
           "cpu_seconds": cpu_seconds, "seconds_per_step": seconds / args.steps,
           "config_hash": config_hash(resolve(setting, args)),
           "composite_png": str(result.run_dir / "composite.png")}
    row.update(judge(composite, source, result.layers.alpha[0, 0].cpu(), case))
    width, curve = source.shape[-1], []
    for step in range(curve_every(args), args.steps, curve_every(args)):  # snapshots: input | composite | screen
        image = read_image(result.run_dir / f"snapshots/step_{step:05d}.png")[0][0][:, :, width + 4: 2 * width + 4]
        then = judge(image, source, None, case)
        curve.append({"step": step, "hit": then["hit"], "psnr_outside": then["psnr_outside"],
                      "shape_iou": then["shape_iou"]})
    curve.append({"step": args.steps, "hit": row["hit"], "psnr_outside": row["psnr_outside"],
                  "shape_iou": row["shape_iou"]})
    row["curve"] = curve
    # the checkpoint is a resume point of a finished edit (generator and Adam state, about 50 MB at the
    # benchmark's size): a phase keeps hundreds of run folders, so it would hold tens of GB. Rows are
    # reused by resolved config and seeds, never resumed; the PNGs, metrics and config stay.
    (result.run_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
    return row


# ------------------------------------------------------------------------------ statistics
def bootstrap_interval(values, resamples: int = 10_000, seed: int = 0, level: float = 0.95
                       ) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its percentile-bootstrap interval at `level`
    (`resamples` resamples with replacement from a seeded generator)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(values.mean()), float(low), float(high)


def sign_flip_p(values, resamples: int = 10_000, seed: int = 0, exact_up_to: int = 16) -> float:
    """Two-sided paired sign-flip (permutation) p-value of a zero mean difference: the share of the
    2^n sign patterns of the n differences whose mean is at least as far from 0 as the observed one
    (H0: each difference is as likely negated). Exact enumeration up to `exact_up_to` differences,
    else `resamples` random patterns from a seeded generator (with the +1 correction). 1 when
    every difference is 0."""
    import itertools

    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if not values.any():
        return 1.0
    observed = abs(values.mean()) * (1 - 1e-12)
    if len(values) <= exact_up_to:
        signs = np.asarray(list(itertools.product((1.0, -1.0), repeat=len(values))))
        return float(np.mean(np.abs(signs @ values) / len(values) >= observed))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(resamples, len(values)))
    extreme = int((np.abs(signs @ values) / len(values) >= observed).sum())
    return float((1 + extreme) / (resamples + 1))


def mcnemar_exact(better: int, worse: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs: `better` cases where only the
    candidate hits, `worse` where only the default does. Under H0 each discordant pair is a fair
    coin: p = min(1, 2 P(Binomial(n, 1/2) <= min(better, worse))), n = better + worse."""
    n = better + worse
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(better, worse) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def holm(pvalues: list[float], alpha: float = ALPHA) -> list[dict]:
    """Holm's step-down procedure over m p-values: the i-th smallest (rank i, from 1) is compared
    with alpha / (m - i + 1), and rejected when it and every smaller one pass. Per p-value (input
    order): its rank, that per-comparison level, the adjusted p (max over ranks j <= i of
    min(1, (m - j + 1) p_(j))) and whether it is rejected (adjusted p <= alpha)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out: list[dict] = [{} for _ in pvalues]
    running = 0.0
    for rank, index in enumerate(order, start=1):
        running = max(running, min(1.0, (m - rank + 1) * pvalues[index]))
        out[index] = {"rank": rank, "level": alpha / (m - rank + 1), "p": pvalues[index], "p_holm": running,
                      "rejected": running <= alpha}
    return out


#: metric -> (binary?, +1 when higher is better / -1 when lower is)
METRICS = {"plasticity": (True, 1), "psnr_outside": (False, 1), "alpha_outside_share": (False, -1),
           "shape_iou": (False, 1), "attribute_kept": (True, 1), LAYER_METRIC: (True, 1)}


def _value(row: dict, metric: str) -> float:
    if metric == LAYER_METRIC:  # hit and the rest kept (LAYER_RULE)
        return float(bool(row["hit"]) and row["psnr_outside"] >= LAYER_PSNR_DB)
    return float(row["hit"] if metric == "plasticity" else row[metric])


def compare(rows: list[dict], names: list[str], alpha: float = ALPHA, seed: int = 0, metrics: dict | None = None,
            value=None) -> dict:
    """Per metric, every non-default row against the default, paired by (case, seed), Holm-corrected
    over the m rows: the mean difference (candidate - default), the raw and Holm-adjusted p (exact
    McNemar for binary metrics, with the discordant counts; a paired sign-flip test otherwise) and the
    paired-bootstrap interval at the comparison's Holm level 1 - alpha / (m - rank + 1).
    `metrics` (name -> (binary?, +1 / -1 when higher / lower is better); default METRICS) and
    `value(row, metric)` (default: this benchmark's row layout) let another benchmark use it."""
    metrics = METRICS if metrics is None else metrics
    read = _value if value is None else value
    default = {(r["case"], r["seed"]): r for r in rows if r["setting"] == DEFAULT}
    others = [name for name in names if name != DEFAULT]
    result = {}
    for metric, (binary, sign) in metrics.items():
        entries, pvalues = {}, []
        for name in others:
            pairs = [(r, default[(r["case"], r["seed"])]) for r in rows
                     if r["setting"] == name and (r["case"], r["seed"]) in default]
            diffs = [read(a, metric) - read(b, metric) for a, b in pairs]
            entry = {"pairs": len(pairs), "difference": sum(diffs) / len(diffs) if diffs else float("nan")}
            if binary:
                entry["candidate_only"] = sum(d > 0 for d in diffs)
                entry["default_only"] = sum(d < 0 for d in diffs)
                p = mcnemar_exact(entry["candidate_only"], entry["default_only"])
            else:
                p = sign_flip_p(diffs, seed=seed) if diffs else 1.0
            entries[name] = entry
            pvalues.append(p)
        for name, adjusted in zip(others, holm(pvalues, alpha)):
            entry = entries[name]
            entry.update(adjusted)
            pairs = [(r, default[(r["case"], r["seed"])]) for r in rows
                     if r["setting"] == name and (r["case"], r["seed"]) in default]
            diffs = [read(a, metric) - read(b, metric) for a, b in pairs]
            entry["interval_level"] = 1 - adjusted["level"]
            entry["interval"] = list(bootstrap_interval(diffs, seed=seed, level=1 - adjusted["level"])[1:]) if diffs \
                else [float("nan")] * 2
            entry["better"] = adjusted["rejected"] and sign * entry["difference"] > 0
            entry["worse"] = adjusted["rejected"] and sign * entry["difference"] < 0
        result[metric] = entries
    return result


def select(comparisons: dict) -> list[dict]:
    """The candidates DECISION_RULE selects, each with its evidence."""
    selected = []
    for name, entry in comparisons.get(DECISION_METRIC, {}).items():
        losses = [metric for metric in STABILITY_METRICS if comparisons[metric][name]["worse"]]
        if entry["better"] and not losses:
            selected.append({"setting": name, "plasticity_difference": entry["difference"],
                             "p_holm": entry["p_holm"], "interval": entry["interval"]})
    return selected


def select_layered(comparisons: dict, summary: dict) -> list[dict]:
    """The candidate LAYER_RULE selects (at most one), with its evidence."""
    better = [name for name, entry in comparisons.get(LAYER_METRIC, {}).items() if entry["better"]]
    if not better:
        return []
    best = max(better, key=lambda name: summary[name][LAYER_METRIC][0])
    entry = comparisons[LAYER_METRIC][best]
    return [{"setting": best, "layered_hit_difference": entry["difference"], "p_holm": entry["p_holm"],
             "interval": entry["interval"]}]


def summarise(rows: list[dict], names: list[str]) -> dict[str, dict]:
    """Per setting: each metric's mean with its 95 % bootstrap interval, per-kind plasticity, cost
    and the curve along the optimisation."""
    summary = {}
    for name in names:
        mine = sorted((r for r in rows if r["setting"] == name), key=lambda r: (r["case"], r["seed"]))
        if not mine:
            continue
        entry = {"cases": len(mine)}
        for metric in METRICS:
            entry[metric] = bootstrap_interval([_value(r, metric) for r in mine])
        for kind in ("recolour", "retexture"):
            hits = [r["hit"] for r in mine if r["kind"] == kind]
            entry[f"plasticity_{kind}"] = sum(hits) / len(hits) if hits else float("nan")
        entry["seconds_per_edit"] = sum(r["seconds"] for r in mine) / len(mine)
        entry["curve"] = [{"step": point["step"],
                           "plasticity": sum(r["curve"][i]["hit"] for r in mine) / len(mine),
                           "psnr_outside": sum(r["curve"][i]["psnr_outside"] for r in mine) / len(mine),
                           "shape_iou": sum(r["curve"][i]["shape_iou"] for r in mine) / len(mine)}
                          for i, point in enumerate(mine[0]["curve"])]
        summary[name] = entry
    return summary


# ------------------------------------------------------------------------------- reports
def _interval(triple, scale: float = 1.0, digits: int = 0) -> str:
    mean, low, high = (scale * v for v in triple)
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _diff(entry: dict, scale: float, digits: int) -> str:
    low, high = (scale * v for v in entry["interval"])
    text = f"{scale * entry['difference']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}] p={entry['p_holm']:.3f}"
    return f"**{text}**" if entry["rejected"] else text


def write_results(phase: str, rows, settings: list[Setting], resolved, skipped, checked, judge_report, args,
                  results: Path, wall_seconds: float, selected_from: str | None = None) -> dict:
    results.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in settings]
    summary = summarise(rows, names)
    comparisons = compare(rows, names)
    layered = phase in LAYER_PHASES
    selected = select_layered(comparisons, summary) if layered else select(comparisons)
    config_folder = results / f"sp_{phase}_configs"
    config_folder.mkdir(exist_ok=True)
    import yaml

    for name, values in resolved.items():
        (config_folder / f"{name.replace(':', '_')}.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    reduced = bool(args.set)
    data = {
        "phase": phase, "command": "python benchmarks/sp_dilemma.py " + " ".join(sys.argv[1:]),
        "arguments": {k: v for k, v in vars(args).items()}, "wall_seconds": wall_seconds,
        "reduced_scale": reduced, "case_seed_base": args.case_seed_base,
        "benchmark_wide_keys": benchmark_keys(args), "schedule_rule": SCHEDULE_RULE,
        "decision_rule": LAYER_RULE if layered else DECISION_RULE, "layer_psnr_db": LAYER_PSNR_DB,
        "alpha": ALPHA, "settings": {s.name: {"config": s.config, "diff": list(s.diff), "note": s.note}
                                     for s in settings},
        "not_run": skipped, "default_check": checked, "resolved_configs": resolved, "judge": judge_report,
        "summary": summary,
        "comparisons": comparisons, "selected_by_rule": selected, "selected_from": selected_from, "cases": rows,
    }
    (results / f"sp_{phase}.json").write_text(json.dumps(data, indent=1, default=str))
    (results / f"sp_{phase}.md").write_text(report(data, args))
    _plot(summary, results / f"sp_{phase}.png", phase)
    return data


def report(data: dict, args) -> str:
    phase, summary, comparisons = data["phase"], data["summary"], data["comparisons"]
    first = summary[DEFAULT]
    lines = [f"# Stability-plasticity benchmark, {phase} set (toy world, judged from pixels)", ""]
    if data["reduced_scale"]:
        lines += [f"**Reduced scale** (`--set {' '.join(args.set)}`): not the shipped config; a smoke run, not a "
                  "result.", ""]
    lines += [f"Command: `{data['command']}` ({data['wall_seconds'] / 60:.0f} min wall, {args.jobs} jobs).", "",
              f"{first['cases']} cases (world seeds from {data['case_seed_base']}), training seeds {args.seeds} "
              f"(case i under seed i mod their count), {args.steps} steps, {args.size} px, CLIP "
              f"`{Path(args.clip).name}`.", "",
              "Benchmark-wide keys, the same in every row: " + ", ".join(f"`{k}`" for k in data["benchmark_wide_keys"])
              + f". Schedules: {SCHEDULE_RULE}. The default row's resolved config, less these keys, equals the "
              f"shipped `ImageEditConfig` at all {data['default_check']['keys_compared']} other keys (checked before "
              f"the run); every row's resolved config is in `sp_{phase}_configs/`.", "",
              "| setting | diff on the shipped config | plasticity % | recolour % | retexture % | PSNR outside dB "
              "| alpha outside % | shape IoU | attribute kept % | layered hit % | s / edit |", "|---" * 11 + "|"]
    for name, s in summary.items():
        setting = data["settings"][name]
        described = Setting(name, setting["config"], tuple(setting["diff"])).described()
        lines.append(f"| {name} | `{described}` | {_interval(s['plasticity'], 100)} | "
                     f"{100 * s['plasticity_recolour']:.0f} | {100 * s['plasticity_retexture']:.0f} | "
                     f"{_interval(s['psnr_outside'], 1, 2)} | {_interval(s['alpha_outside_share'], 100, 1)} | "
                     f"{_interval(s['shape_iou'], 1, 3)} | {_interval(s['attribute_kept'], 100)} | "
                     f"{_interval(s[LAYER_METRIC], 100)} | {s['seconds_per_edit']:.1f} |")
    lines += ["", "Differences to the default (candidate - default, paired by case and seed; Holm over the "
              f"{len(summary) - 1} comparison(s) within each metric; brackets: paired-bootstrap interval at the "
              "comparison's Holm level; p: Holm-adjusted, exact McNemar for plasticity and attribute kept "
              "(discordant pairs candidate-only/default-only), a paired sign-flip test otherwise; bold: rejected at "
              f"{ALPHA}):", "",
              "| setting | plasticity (points) | discordant | PSNR outside (dB) | alpha outside (points) | shape IoU "
              "| attribute kept (points) | layered hit (points) | discordant | Holm level |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in summary:
        if name == DEFAULT:
            continue
        c = {metric: comparisons[metric][name] for metric in METRICS}
        lines.append(f"| {name} | {_diff(c['plasticity'], 100, 0)} | {c['plasticity']['candidate_only']}/"
                     f"{c['plasticity']['default_only']} | {_diff(c['psnr_outside'], 1, 2)} | "
                     f"{_diff(c['alpha_outside_share'], 100, 1)} | {_diff(c['shape_iou'], 1, 3)} | "
                     f"{_diff(c['attribute_kept'], 100, 0)} | {_diff(c[LAYER_METRIC], 100, 0)} | "
                     f"{c[LAYER_METRIC]['candidate_only']}/{c[LAYER_METRIC]['default_only']} | "
                     f"{100 * c['plasticity']['interval_level']:.2f} % |")
    selected = ", ".join(f"`{item['setting']}`" for item in data["selected_by_rule"]) or "none"
    if phase in ("decision", "layer-decision"):
        rule_name, rule = ("Layer rule", LAYER_RULE) if phase in LAYER_PHASES else ("Decision rule", DECISION_RULE)
        lines += ["", f"{rule_name} (stated before the run): {rule}.", "", f"Selected: {selected}."]
    elif phase == "ablation":
        lines += ["", "The recipe ablation on the decision set: each key of the reference recipe alone on the "
                  "default, its own Holm family, reported and not used for choosing (the decision rule applied "
                  f"here would select: {selected})."]
    else:
        rule = "layer rule" if phase in LAYER_PHASES else "decision rule"
        lines += ["", f"Confirmation set as it came out. The rows are the default, the settings the "
                  f"{CONFIRMATIONS[phase]} phase selected ({data['selected_from']}) and the guidance the default does "
                  f"not use; the {rule} applied here would select: {selected}."]
    if data["not_run"]:
        lines += ["", "Not run:", ""] + [f"- `{item['setting']}` (`{item['diff']}`): {item['why']}"
                                         for item in data["not_run"]]
    judge = data["judge"]
    lines += ["", f"Layered hit: the edit hits its target and the PSNR outside the object is at least "
              f"{LAYER_PSNR_DB:g} dB."]
    lines += ["", f"Judges (benchmarks/sp_judge.py), calibrated on {judge['scenes']} rendered objects of known colour "
              f"and texture (world seeds {judge['seeds'][0]}..{judge['seeds'][1]}, disjoint from both case sets): "
              f"colour {100 * judge['colour_accuracy']:.1f} % (worst "
              f"{min(judge['colour_accuracy_per_colour'].items(), key=lambda kv: kv[1])}), texture "
              f"{100 * judge['texture_accuracy']:.1f} % (per texture "
              + ", ".join(f"{k} {100 * v:.0f} %" for k, v in judge["texture_accuracy_per_texture"].items())
              + f"), shape IoU on unedited renders {judge['shape_iou_unedited_mean']:.3f} (min "
              f"{judge['shape_iou_unedited_min']:.3f}; {judge['shape_iou_unedited_shade_distinct']['mean']:.3f} on "
              "objects whose texture shade differs from the background, the only kind the retexture cases draw). "
              "Colours close enough to be confused (a prototype or shade within 0.15 RGB): "
              + ", ".join(f"{a}/{b} ({d})" for (a, b), d in ((p["pair"], p["rgb_distance"])
                                                             for p in judge["close_colour_pairs"]))
              + "; confused in calibration: " + (", ".join("/".join(p) for p in judge["confused_colour_pairs"])
                                                 or "none") + ".",
              "", f"Along the optimisation (plasticity % / PSNR outside dB, every {curve_every(args)} steps, from the "
              "8-bit snapshots):", "",
              "| setting | " + " | ".join(f"step {p['step']}" for p in first["curve"]) + " |",
              "|---|" + "---|" * len(first["curve"])]
    for name, s in summary.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * p['plasticity']:.0f} / {p['psnr_outside']:.1f}"
                                                 for p in s["curve"]) + " |")
    return "\n".join(lines) + "\n"


def _plot(summary, path: Path, phase: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    for axis, metric, label in ((axes[0], "psnr_outside", "PSNR outside the object (dB)"),
                                (axes[1], "shape_iou", "shape IoU (object before vs after)")):
        for name, s in summary.items():
            (p, p_low, p_high), (q, q_low, q_high) = s["plasticity"], s[metric]
            axis.errorbar(q, 100 * p, xerr=[[q - q_low], [q_high - q]],
                          yerr=[[100 * (p - p_low)], [100 * (p_high - p)]], fmt="o", capsize=3, label=name)
        axis.set_xlabel(f"stability: {label}")
        axis.set_ylabel("plasticity: edits that hit the target (%)")
    axes[0].set_title(f"{phase} set, 95 % intervals")
    axes[1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------------------------- main
def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    """The edit's arguments, shared with gradient_shares.py (what `edit_inputs` reads)."""
    # 36: edits happen by then (a 48-step pilot hit no case at step 12 and most of its hits by step
    # 36, docs/sp_benchmark.md), and 5 decision rows x 96 cases at ~21 CPU-s per edit fit 90 min on
    # 2 free cores; the 4 ablation rows reuse the default's edits
    parser.add_argument("--steps", type=int, default=36)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--clip", default=str(ROOT / "data" / "toy_clip_512"),
                        help="toy CLIP folder (default: the 512-d projection, real CLIP's embedding size)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="reduced scale for smoke runs, applied to every row and reported: "
                             + ", ".join(SCALE_KEYS))


def check_scale(args, parser) -> None:
    for item in args.set:
        if "=" not in item or item.split("=", 1)[0] not in SCALE_KEYS:
            parser.error(f"--set takes only {', '.join(SCALE_KEYS)} (KEY=VALUE), got {item!r}")


#: what the confirmation phase must share with the decision phase it confirms
SHARED_ARGUMENTS = ("steps", "size", "clip", "set", "seeds", "cases")


def selected_settings(path: Path, args, phase: str = "decision") -> tuple[list[Setting], str]:
    """The settings the decision phase `phase` selected, as it stored them; refused when that phase
    ran under other edit arguments (SHARED_ARGUMENTS) than this one."""
    if not path.is_file():
        raise BenchmarkError(f"no {phase} results at {path}: run --phase {phase} first (or pass --decision)")
    data = json.loads(path.read_text())
    if data.get("phase") != phase:
        raise BenchmarkError(f"{path} is not the {phase} phase's results")
    differing = [key for key in SHARED_ARGUMENTS if data["arguments"].get(key) != getattr(args, key)]
    if differing:
        raise BenchmarkError(f"the decision results {path} were made with other arguments: " + ", ".join(
            f"--{key} {data['arguments'].get(key)!r} there, {getattr(args, key)!r} here" for key in differing))
    chosen = [item["setting"] for item in data["selected_by_rule"]]
    settings = [Setting(name, data["settings"][name]["config"], tuple(data["settings"][name]["diff"]),
                        data["settings"][name]["note"]) for name in chosen]
    return settings, f"{path.name}: " + (", ".join(chosen) if chosen else "none")


def estimate_seconds(todo: list, rows: list[dict], args) -> tuple[float, str]:
    """Wall seconds for `todo` on `args.jobs` free cores: CPU seconds per edit (one thread each), from
    the finished edits of this phase when there are some, else the measured constants."""
    measured = [r["cpu_seconds"] for r in rows if "cpu_seconds" in r]
    if measured:
        per_edit = sum(measured) / len(measured)
        source = f"the mean CPU time of {len(measured)} finished edits; a loaded machine takes longer"
    else:
        per_edit = MEASURED_SETUP_SECONDS + MEASURED_SECONDS_PER_STEP * args.steps
        source = (f"{MEASURED_SETUP_SECONDS} s + {MEASURED_SECONDS_PER_STEP} s/step, CPU time measured at the "
                  "shipped config"
                  + (" (this run is at reduced scale: less)" if args.set else ""))
    return len(todo) * per_edit / args.jobs, f"{per_edit:.1f} s/edit, {source}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=(*PHASES, *CONFIRMATIONS), required=True)
    parser.add_argument("--cases", type=int, default=96)
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds; case i under seed i mod count")
    add_edit_arguments(parser)
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--work", default=None, help="folder for inputs, runs and finished rows (resumable; one "
                                                     "subfolder per phase); default: a new temporary folder")
    parser.add_argument("--settings", default=None,
                        help="decision or ablation phase: comma-separated subset of its rows (the default row "
                             "always runs; Holm's m is then the subset's size: a smoke run, not the registered "
                             "phase); default: all")
    parser.add_argument("--decision", default=None,
                        help="confirmation phases: the decision results to read (default: "
                             "--results/sp_decision.json, for layer-confirmation sp_layer-decision.json)")
    parser.add_argument("--calibration-scenes", type=int, default=440)
    args = parser.parse_args(argv)
    check_scale(args, parser)
    try:
        run(args)
    except BenchmarkError as error:
        print(f"sp_dilemma: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def run(args) -> dict:
    import sp_judge

    results = Path(args.results)
    if args.phase in PHASES:
        settings = PHASES[args.phase][0]()
        if args.settings:
            wanted = args.settings.split(",")
            unknown = [name for name in wanted if name not in {s.name for s in settings}]
            if unknown:
                raise BenchmarkError(f"unknown setting(s) {', '.join(unknown)}; known: "
                                     f"{', '.join(s.name for s in settings)}")
            settings = [s for s in settings if s.name == DEFAULT or s.name in wanted]
        args.case_seed_base, selected_from = DECISION_SEED, None
    else:
        decided_in = CONFIRMATIONS[args.phase]
        chosen, selected_from = selected_settings(Path(args.decision) if args.decision
                                                  else results / f"sp_{decided_in}.json", args, decided_in)
        guidance_names = {row.name for row in GUIDANCE_ROWS}
        settings = [DEFAULT_SETTING] + [s for s in chosen if s.name != DEFAULT and s.name not in guidance_names] + \
            list(GUIDANCE_ROWS)
        args.case_seed_base = CONFIRMATION_SEED
    settings, resolved, skipped, checked = resolve_rows(settings, args)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sp_dilemma_"))
    phase_work = work / (PHASES[args.phase][1] if args.phase in PHASES else "confirmation")
    phase_work.mkdir(parents=True, exist_ok=True)
    cases = build_cases(args.cases, args.size, phase_work / "inputs", args.case_seed_base)
    def seed_of(case: EditCase) -> int:
        return seeds[case.index % len(seeds)]

    # a row's config with placeholders for the case's keys: with the case's world seed and training
    # seed it fixes everything an edit runs (each edit also checks its saved config, run_case)
    hashes = {s.name: config_hash(resolve(s, args)) for s in settings}
    jobs = [(case, setting, seed_of(case), args, phase_work / "runs")
            for case in cases for setting in settings]
    finished_path = phase_work / "rows.jsonl"
    rows = [json.loads(line) for line in finished_path.read_text().splitlines()] if finished_path.exists() else []
    # a finished edit counts only if its case, seeds and resolved config are what this run would run
    wanted = {case.index: (case.seed, seed_of(case)) for case in cases}
    # matched by resolved config, not by name: an edit another row ran with the same config and seeds is
    # the same edit (the ablation's default row reuses the decision phase's row of the setting that
    # became the default); such a row is relabelled and says where it came from
    setting_of_hash = {digest: name for name, digest in hashes.items()}
    reused, seen = [], set()
    for row in rows:
        name = row["setting"] if hashes.get(row["setting"]) == row["config_hash"] else \
            setting_of_hash.get(row["config_hash"])
        if name is None or wanted.get(row["case"]) != (row["world_seed"], row["seed"]) or (row["case"], name) in seen:
            continue
        if name != row["setting"]:
            row = {**row, "setting": name, "ran_as": row["setting"]}
        seen.add((row["case"], name))
        reused.append(row)
    rows = reused
    done = {(r["case"], r["setting"]) for r in rows}
    todo = [job for job in jobs if (job[0].index, job[1].name) not in done]
    seconds, how = estimate_seconds(todo, rows, args)
    print(f"sp_dilemma {args.phase}: {len(cases)} cases x {len(settings)} settings = {len(jobs)} edits "
          f"({len(jobs) - len(todo)} already done), {args.jobs} parallel jobs; work folder {phase_work}", flush=True)
    print(f"estimate: {seconds / 60:.0f} min for the {len(todo)} edits left ({how})"
          + ("  [over the 90 min budget]" if seconds > 90 * 60 else ""), flush=True)
    for item in skipped:
        print(f"not run: {item['setting']}: {item['why']}", flush=True)
    judge_report = sp_judge.calibrate(args.calibration_scenes, args.size)
    start = time.perf_counter()
    if todo:
        from tqdm import tqdm

        context = multiprocessing.get_context("spawn")
        with context.Pool(args.jobs) as pool, finished_path.open("a") as finished:
            for row in tqdm(pool.imap_unordered(run_case, todo), total=len(todo), desc="edits"):
                rows.append(row)
                finished.write(json.dumps(row) + "\n")
                finished.flush()
    earlier = sum(r["seconds"] for r in rows if (r["case"], r["setting"]) in done)
    wall = time.perf_counter() - start + earlier / args.jobs  # this call, and an estimate for earlier calls
    rows.sort(key=lambda r: (r["case"], r["seed"], [s.name for s in settings].index(r["setting"])))
    data = write_results(args.phase, rows, settings, resolved, skipped, checked, judge_report, args, results, wall,
                         selected_from)
    print((results / f"sp_{args.phase}.md").read_text())
    return data


if __name__ == "__main__":
    main()
