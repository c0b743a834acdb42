#!/usr/bin/env python
"""The video stability-plasticity (SP) benchmark: held-out procedural clips, edited from the raw
clip (atlas fitted by the project), judged from pixels in every frame, with curves along the
optimisation (docs/video_sp_benchmark.md).

Cases. A toy-world object (one of the world's shapes, in one of its colours, plain or with one
of its textures, drawn by the world's own `shape_mask` / `texture_pattern` / `texture_shade`, so
the toy CLIP and the judges know it) moves, turns and breathes over a textured background seen
by a still, panning, zooming or panning-and-zooming camera (`atlas.procedural`'s background
texture and camera, `make_procedural_clip(objects=0)`). Every clip comes with its exact
per-frame object masks, the bare background under the object in every frame and the exact
forward flow. Cases are drawn from world seeds `CASE_SEED` = 10,000,000 onwards (case i from
seed 10,000,000 + i, never 11,000,000 or beyond): disjoint from the toy CLIP's training (seeded
by step) and held-out evaluation scenes (1,000,000 on, `toyworld.evaluate`), from the image SP
benchmark's decision, confirmation and judge-calibration sets (7, 8 and 9 million on,
`benchmarks/sp_dilemma.py`, `benchmarks/sp_judge.py`) and from the small seeds the atlas tests
and benchmarks use. Cameras cycle still, pan, zoom, pan+zoom; two recolours ("green star" ->
"blue star", a plain object) to one retexture ("red star" -> "red striped star").

Settings. A row is a stated diff (key=value) on the shipped `VideoEditConfig`
(configs/video/base.yaml); the row `default` is the shipped config. Every row gets the same
benchmark-wide keys (`benchmark_overrides`): the case's frames folder and texts, the toy CLIP,
the device, the run folder, the atlas cache, `steps` (set to each curve point in turn; the row's
own `steps` is its budget), and three bookkeeping keys that change no computed value:
`snapshot_every=0`, `checkpoint_every=0` (an edit always writes its checkpoint at the end, which
is what the curve resumes from) and `export.layers=[]` (the layer files for compositing are not
judged, and encoding ProRes and VP9 at every curve point costs time). Before anything runs every
row is resolved with `load_config` exactly as `edit_video` resolves it, and the default row,
less the benchmark-wide keys, must equal the shipped config, or the benchmark refuses to run.

Each case's atlas is fitted once per distinct fit setting (`fit.*`, `video.long_side`; the
shipped fit for every row that leaves them alone) through the project's cache
(`fitted_atlas_for_video`, what `edit_video` without `atlas.checkpoint` calls), timed, and reused
by every row that shares it.

Curve. Each row's edit is judged at the step counts of `--curve` up to its budget and at its
budget (`--max-steps` truncates every row, and the report says so): the run is started with the
first step count and resumed with `edit_video(resume=..., steps=...)` for the next (the editor's
schedules are per step, so a resumed run is the uninterrupted one: the checkpoint holds the
model, the optimiser and the RNG).

Judged from pixels in every frame with the exact masks, never by CLIP (`judge_clip`):
- plasticity: the object is the target colour (more than half of its pixels labelled so by
  `sp_judge`'s per-pixel colour judge) or texture (`world.classify_texture`) in at least
  `FRAME_SHARE` = 90 % of the frames; `attribute_kept` the same for the attribute not asked to
  change (the texture of a recoloured object, the colour of a retextured one);
- stability: PSNR outside the object over every frame (against the input, capped at 99 dB) and
  the object's shape kept (`sp_judge.shape_iou` against the bare background, mean over frames);
- temporal consistency: the object's colour spread across frames (RMS distance of each frame's
  mean object colour from the clip's mean) and the warp error along the true motion (mean
  absolute difference inside the object between frame t and frame t + 1 sampled at the true
  flow, where the sample lies wholly inside the object), each beside the input clip's own value.

Comparisons pair each row with the default on the same cases, at each row's last judged step,
with `sp_dilemma.compare` (Holm over the candidates within each metric; exact McNemar for the
binary metrics, a paired sign-flip test otherwise; paired-bootstrap intervals at each
comparison's Holm level). Rows go to `<results>/<name>_rows.jsonl` as they finish, one per
case x setting x step: the same command again skips what is there (a row counts only when its
case and resolved config still match) and resumes unfinished curves from their run folders.

  python benchmarks/video_sp.py --cases 48 --settings default,fast --work runs/video_sp
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import sp_judge  # noqa: E402
from sp_dilemma import DEFAULT, bootstrap_interval, compare, flat_values  # noqa: E402

CASE_SEED = 10_000_000
SEED_SPAN = 1_000_000
#: plasticity (and attribute kept) need the judge's verdict in at least this share of the frames
FRAME_SHARE = 0.9
#: PSNR cap (dB): an edit that leaves every pixel outside the object as it was gets this
PSNR_CAP = 99.0
CAMERAS = ("static", "pan", "zoom", "pan+zoom")
RETEXTURES = ("striped", "checkered", "dotted")
#: colours a recolour never goes between: a prototype or shade within 0.15 RGB (sp_judge.close_colour_pairs)
CLOSE_PAIRS = {frozenset(item["pair"]) for item in sp_judge.close_colour_pairs()}
DEFAULT_CURVE = (25, 50, 100, 200, 400, 800, 1600, 3000)


class BenchmarkError(Exception):
    """A protocol violation; main prints it as one line and exits 2."""


# ------------------------------------------------------------------------------ clips
@dataclass(frozen=True)
class ObjectPath:
    """The object's motion in frame pixels over clip time s in [0, 1]: its centre moves linearly
    from `start` to `end`, it turns from `angle0` by `turn` radians, and its radius (the world's
    object size, in pixels) breathes by `breathe` around `radius`."""

    start: tuple[float, float]
    end: tuple[float, float]
    radius: float
    angle0: float = 0.0
    turn: float = 0.0
    breathe: float = 0.0
    breathe_phase: float = 0.0

    def at(self, s: float) -> tuple[np.ndarray, float, float]:
        """(centre (x, y), angle, radius) at time s."""
        centre = np.asarray(self.start) + (np.asarray(self.end) - np.asarray(self.start)) * s
        radius = self.radius * (1.0 + self.breathe * math.sin(2 * math.pi * s + self.breathe_phase))
        return centre, self.angle0 + self.turn * s, radius

    def matrix(self, s: float) -> np.ndarray:
        """3 x 3: the object's units (u, v) -> frame pixels (x, y) at time s, ``p = c + R(angle) r (u, v)``."""
        centre, angle, radius = self.at(s)
        c, si = math.cos(angle), math.sin(angle)
        return np.array([[c * radius, -si * radius, centre[0]], [si * radius, c * radius, centre[1]], [0, 0, 1.0]])


@dataclass(frozen=True)
class ClipSpec:
    """Everything a clip is rendered from (a pure function of it, `render_clip`)."""

    width: int
    height: int
    frames: int
    camera: str
    background_seed: int
    motion: float
    obj: object  # toyworld.world.ObjectSpec: shape, colour, texture, jitter and texture parameters
    path: ObjectPath


@dataclass
class ToyClip:
    """A rendered clip and its ground truth (numpy): `frames` and `background` (N, 3, H, W) float32
    in [0, 1] (`background`: the bare background, what the object is drawn over), `masks` (N, H, W)
    bool (exactly the pixels the object colours), `flow` (N - 1, H, W, 2) forward flow in pixels
    (dx, dy) and `flow_visible` (N - 1, H, W) bool (the point lands inside frame t + 1 on the same
    layer)."""

    frames: np.ndarray
    background: np.ndarray
    masks: np.ndarray
    flow: np.ndarray
    flow_visible: np.ndarray
    spec: ClipSpec


def _times(frames: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, frames)


def render_clip(spec: ClipSpec) -> ToyClip:
    """The clip of `spec`: the world's object drawn over `make_procedural_clip(objects=0)`'s
    background (its camera and texture), with masks, bare background and exact flow."""
    from atlas.procedural import make_procedural_clip
    from toyworld import world

    n, h, w = spec.frames, spec.height, spec.width
    bare = make_procedural_clip(frames=n, width=w, height=h, objects=0, camera=spec.camera,
                                seed=spec.background_seed, motion=spec.motion)
    background = bare.frames.numpy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    obj = spec.obj
    rgb, shade = obj.rgb, world.texture_shade(obj.rgb)
    frames, masks = background.copy(), np.zeros((n, h, w), bool)
    matrices = [spec.path.matrix(s) for s in _times(n)]
    for t, matrix in enumerate(matrices):
        inverse = np.linalg.inv(matrix)
        u = inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2]
        v = inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2]
        inside = world.shape_mask(obj.shape, u, v)
        pattern = world.texture_pattern(obj, u, v)
        colour = np.where(pattern[None], shade[:, None, None], rgb[:, None, None]).astype(np.float32)
        frames[t] = np.where(inside[None], colour, frames[t])
        masks[t] = inside
    flow = bare.flow.numpy().copy()
    visible = bare.flow_visible.numpy().copy()
    for t in range(n - 1):
        step = matrices[t + 1] @ np.linalg.inv(matrices[t])
        nx = step[0, 0] * xx + step[0, 1] * yy + step[0, 2]
        ny = step[1, 0] * xx + step[1, 1] * yy + step[1, 2]
        on = masks[t]
        flow[t, ..., 0] = np.where(on, nx - xx, flow[t, ..., 0])
        flow[t, ..., 1] = np.where(on, ny - yy, flow[t, ..., 1])
        lx, ly = xx + flow[t, ..., 0], yy + flow[t, ..., 1]
        lands = (lx >= 0) & (lx <= w - 1) & (ly >= 0) & (ly <= h - 1)
        rx = np.clip(np.rint(lx), 0, w - 1).astype(np.int64)
        ry = np.clip(np.rint(ly), 0, h - 1).astype(np.int64)
        visible[t] = lands & (masks[t + 1][ry, rx] == on)
    return ToyClip(frames=frames.astype(np.float32), background=background.astype(np.float32), masks=masks,
                   flow=flow.astype(np.float32), flow_visible=visible, spec=spec)


def sample_path(rng: np.random.Generator, width: int, height: int, motion: float) -> ObjectPath:
    """A path that keeps the whole object inside the frame: radius 0.26-0.32 of the frame height
    (the world's single-object sizes are 0.2-0.34 of the side), a travel of about a third of the
    width (mostly sideways), a turn of 6-20 degrees, a breathing of up to 8 %."""
    radius = rng.uniform(0.26, 0.32) * height
    breathe = rng.uniform(0.0, 0.08) * motion
    margin = radius * (1 + breathe) + 2
    room = np.maximum(np.array([width, height]) - 2 * margin, 0.0)
    start = margin + rng.uniform(0, 1, 2) * room
    direction = rng.uniform(-0.4, 0.4) + (math.pi if rng.random() < 0.5 else 0.0)
    travel = 0.35 * width * motion * np.array([math.cos(direction), math.sin(direction)])
    end = np.clip(start + travel, margin, margin + room)
    if np.linalg.norm(end - start) < 0.6 * np.linalg.norm(travel):  # stopped at the border: go the other way
        end = np.clip(start - travel, margin, margin + room)
    turn = rng.uniform(0.1, 0.35) * motion * (1 if rng.random() < 0.5 else -1)
    return ObjectPath(start=tuple(map(float, start)), end=tuple(map(float, end)), radius=float(radius),
                      angle0=float(rng.uniform(-0.2, 0.2)), turn=float(turn), breathe=float(breathe),
                      breathe_phase=float(rng.uniform(0, 2 * math.pi)))


@dataclass
class Case:
    index: int
    seed: int  # the world seed everything of the case is drawn from
    kind: str  # recolour | retexture
    src_text: str
    target_text: str
    target: str  # the target colour or texture
    colour: str  # the object's colour before the edit
    texture: str  # its texture before the edit
    clip: ClipSpec

    def describe(self) -> dict:
        return {"case": self.index, "world_seed": self.seed, "kind": self.kind, "camera": self.clip.camera,
                "shape": self.clip.obj.shape, "src": self.src_text, "target_text": self.target_text,
                "target": self.target, "colour_before": self.colour, "texture_before": self.texture}


def make_case(index: int, width: int = 256, height: int = 144, frames: int = 24, base_seed: int = CASE_SEED,
              motion: float = 1.0) -> Case:
    """Case `index` of the held-out set (world seed `base_seed + index`): the camera cycles over
    CAMERAS, every third case is a retexture, the rest recolours (module docstring)."""
    from toyworld import world

    if not 0 <= index < SEED_SPAN:
        raise BenchmarkError(f"case index {index} outside the case set")
    seed = base_seed + index
    rng = np.random.default_rng(seed)
    camera = CAMERAS[index % len(CAMERAS)]
    kind = "retexture" if index % 3 == 2 else "recolour"
    shape = world.SHAPES[int(rng.integers(len(world.SHAPES)))]
    names = list(world.COLOURS)
    if kind == "recolour":
        colour = names[int(rng.integers(len(names)))]
        targets = [c for c in names if c != colour and frozenset((c, colour)) not in CLOSE_PAIRS]
        target = targets[int(rng.integers(len(targets)))]
    else:  # white and black textures are gray shades: a colour with a shade of its own
        options = [c for c in names if c not in ("white", "black")]
        colour = options[int(rng.integers(len(options)))]
        target = RETEXTURES[(index // 3) % len(RETEXTURES)]
    obj = world.sample_object(rng, "gray", shape=shape, colour=colour, texture="plain")
    spec = ClipSpec(width=width, height=height, frames=frames, camera=camera,
                    background_seed=int(rng.integers(2 ** 31)), motion=motion, obj=obj,
                    path=sample_path(rng, width, height, motion))
    texture = "plain"
    if kind == "recolour":
        target_text = world.object_phrase(colour=target, texture=texture, shape=shape)
    else:
        target_text = world.object_phrase(colour=colour, texture=target, shape=shape)
    return Case(index, seed, kind, world.object_phrase(obj), target_text, target, colour, texture, spec)


def edited_by_construction(case: Case) -> ClipSpec:
    """The clip as a perfect edit would make it: the same clip with the object's colour or texture
    changed to the target (for tests and as the judges' reference point)."""
    obj = case.clip.obj
    changed = dataclasses.replace(obj, colour=case.target) if case.kind == "recolour" else \
        dataclasses.replace(obj, texture=case.target)
    return dataclasses.replace(case.clip, obj=changed)


def _uint8(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def write_case(case: Case, folder: Path) -> Path:
    """Write the clip's frames (`frames/00000.png ...`, what the edit reads), its exact masks
    (`masks/00000.png ...`, for `--fit-masks exact`) and its ground truth (`truth.npz`: masks,
    bare background as 8-bit like the frames, flow, flow_visible); returns the folder. Skipped when
    the folder already holds them."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "truth.npz").is_file():
        return folder
    clip = render_clip(case.clip)
    (folder / "frames").mkdir(exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    for t, (image, mask) in enumerate(zip(_uint8(clip.frames).transpose(0, 2, 3, 1), clip.masks)):
        Image.fromarray(image).save(folder / "frames" / f"{t:05d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(folder / "masks" / f"{t:05d}.png")
    temporary = folder / "truth.tmp.npz"
    np.savez_compressed(temporary, masks=clip.masks, background=_uint8(clip.background), flow=clip.flow,
                        flow_visible=clip.flow_visible)
    temporary.replace(folder / "truth.npz")
    return folder


def read_frames(folder: Path) -> np.ndarray:
    """(N, 3, H, W) float32 in [0, 1] of a folder of PNG frames (sorted by name)."""
    from PIL import Image

    paths = sorted(Path(folder).glob("*.png"))
    if not paths:
        raise BenchmarkError(f"no frames in {folder}")
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255 for p in paths]
                    ).transpose(0, 3, 1, 2)


@dataclass
class Truth:
    frames: np.ndarray  # the input as the edit reads it (8-bit)
    masks: np.ndarray
    background: np.ndarray
    flow: np.ndarray
    flow_visible: np.ndarray


def read_truth(folder: Path) -> Truth:
    data = np.load(folder / "truth.npz")
    return Truth(read_frames(folder / "frames"), data["masks"], data["background"].astype(np.float32) / 255,
                 data["flow"], data["flow_visible"])


def truth_of(clip: ToyClip) -> Truth:
    """A rendered clip as `Truth` (quantised to 8 bits like the written one)."""
    return Truth(_uint8(clip.frames).astype(np.float32) / 255, clip.masks,
                 _uint8(clip.background).astype(np.float32) / 255, clip.flow, clip.flow_visible)


# ------------------------------------------------------------------------------ judges
def _erode(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def warp_error(frames: np.ndarray, masks: np.ndarray, flow: np.ndarray) -> float:
    """Mean absolute difference (over channels and pixels, in [0, 1] units) inside the object
    between frame t and frame t + 1 sampled bilinearly at p + flow_t(p), over every t and every
    pixel p of the object in frame t whose sample lies wholly inside the object in frame t + 1
    (its four neighbours all object pixels), so the object is compared with itself only."""
    import cv2

    n, _, h, w = frames.shape
    total, count = 0.0, 0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for t in range(n - 1):
        lx, ly = xx + flow[t, ..., 0], yy + flow[t, ..., 1]
        x0, y0 = np.floor(lx).astype(np.int64), np.floor(ly).astype(np.int64)
        inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 <= w - 1) & (y0 + 1 <= h - 1)
        x0c, y0c = np.clip(x0, 0, w - 2), np.clip(y0, 0, h - 2)
        after = masks[t + 1]
        whole = (after[y0c, x0c] & after[y0c, x0c + 1] & after[y0c + 1, x0c] & after[y0c + 1, x0c + 1])
        valid = masks[t] & inside & whole
        if not valid.any():
            continue
        sampled = cv2.remap(np.ascontiguousarray(frames[t + 1].transpose(1, 2, 0)), lx, ly, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
        difference = np.abs(sampled - frames[t].transpose(1, 2, 0))[valid]
        total += float(difference.mean(axis=1).sum())
        count += int(valid.sum())
    return total / count if count else float("nan")


def colour_spread(frames: np.ndarray, masks: np.ndarray) -> float:
    """RMS over frames of the distance (RGB, [0, 1] units) of each frame's mean object colour from
    the mean of those means: 0 when the object's average colour never changes."""
    means = np.stack([frames[t][:, masks[t]].mean(axis=1) for t in range(len(frames)) if masks[t].any()])
    return float(np.sqrt(((means - means.mean(axis=0)) ** 2).sum(axis=1).mean()))


def frame_verdicts(frames: np.ndarray, masks: np.ndarray, case: Case) -> dict:
    """Per frame: whether the object is the target (`hit`), whether the attribute not asked to
    change is kept, and the share of object pixels labelled the target colour (recolours)."""
    from toyworld import world

    hits, kept, shares = [], [], []
    for image, mask in zip(frames, masks):
        if not mask.any():
            continue
        pixels = sp_judge.object_pixels(image, mask)
        colour_shares = sp_judge.colour_shares(pixels)
        texture = world.classify_texture(image, mask)
        if case.kind == "recolour":
            hits.append(colour_shares[case.target] > 0.5)
            kept.append(texture == case.texture)
            shares.append(colour_shares[case.target])
        else:
            hits.append(texture == case.target)
            kept.append(max(sp_judge.COLOUR_NAMES, key=colour_shares.get) == case.colour
                        and colour_shares[case.colour] > 0.5)
            shares.append(colour_shares[case.colour])
    return {"hit": hits, "kept": kept, "share": shares}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(1.0 / mse))


def judge_clip(edited: np.ndarray, truth: Truth, case: Case) -> dict:
    """Every metric of an edited clip `edited` (N, 3, H, W) in [0, 1] against its input and ground
    truth (module docstring); `*_input` are the same figures of the input clip."""
    masks = truth.masks
    verdicts = frame_verdicts(edited, masks, case)
    hit_share, kept_share = float(np.mean(verdicts["hit"])), float(np.mean(verdicts["kept"]))
    outside = ~masks[:, None].repeat(3, axis=1)
    ious = [sp_judge.shape_iou(e, b, m) for e, b, m in zip(edited, truth.background, masks)]
    return {
        "plasticity": hit_share >= FRAME_SHARE, "plasticity_frames": hit_share,
        "attribute_kept": kept_share >= FRAME_SHARE, "attribute_kept_frames": kept_share,
        # recolours: the share of object pixels labelled the target colour; retextures: the object's colour
        "colour_share_mean": float(np.mean(verdicts["share"])),
        "psnr_outside": psnr(edited[outside], truth.frames[outside]),
        "shape_iou": float(np.mean(ious)),
        "colour_spread": colour_spread(edited, masks),
        "warp_error": warp_error(edited, masks, truth.flow),
    }


def judge_input(truth: Truth, case: Case) -> dict:
    """The input clip's own figures (what an edit that changes nothing gets), for reference."""
    ious = [sp_judge.shape_iou(f, b, m) for f, b, m in zip(truth.frames, truth.background, truth.masks)]
    return {"shape_iou_input": float(np.mean(ious)), "colour_spread_input": colour_spread(truth.frames, truth.masks),
            "warp_error_input": warp_error(truth.frames, truth.masks, truth.flow)}


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Setting:
    """A row: `diff` (key=value entries) on top of the shipped VideoEditConfig."""

    name: str
    diff: tuple[str, ...] = ()
    note: str = ""

    def described(self) -> str:
        return " ".join(self.diff) if self.diff else "(the shipped config)"


SETTINGS = {
    DEFAULT: Setting(DEFAULT, (), "the shipped VideoEditConfig (configs/video/base.yaml)"),
    "fast": Setting("fast", ("steps=300", "generator.channels=32", "clip.n_aug=4", "fit.iterations=500"),
                    "a time-to-quality candidate: a tenth of the steps, a quarter of the generator's channels "
                    "(1/16 of its convolution work), 4 views instead of 6, a quarter of the fit's iterations"),
}
#: benchmark-wide keys that change no computed value, and why they are set
BOOKKEEPING = {
    "snapshot_every": ("0", "snapshots are not judged; the edit is judged from its rendered frames"),
    "checkpoint_every": ("0", "the edit writes its checkpoint at the end of every call anyway, and the curve "
                              "resumes from that"),
    "export.layers": ("[]", "the layer files for compositing are not judged; encoding ProRes and VP9 at every curve "
                            "point costs time"),
}


def parse_candidate(text: str) -> Setting:
    """`--candidate "NAME key=value key=value"` -> Setting."""
    parts = shlex.split(text)
    if len(parts) < 2 or "=" in parts[0] or any("=" not in item for item in parts[1:]):
        raise BenchmarkError(f"--candidate takes 'NAME key=value [key=value ...]', got {text!r}")
    return Setting(parts[0], tuple(parts[1:]), "given on the command line")


PLACEHOLDER = {"frames": "<case>/frames", "src": "<source text>", "target": "<target text>", "run": "<run>"}


def benchmark_overrides(args, frames=PLACEHOLDER["frames"], src=PLACEHOLDER["src"], target=PLACEHOLDER["target"]
                        ) -> list[str]:
    """The keys every row gets (the same for every setting), besides `steps` (each curve point)."""
    work = Path(args.work).resolve()
    wide = [f"video.frames={frames}", f"text.src={src}", f"text.comp={target}", f"text.screen={target}",
            f"clip.model={args.clip}", f"device={args.device}", f"output_dir={work / 'runs'}",
            f"atlas.cache_dir={work / 'atlas_cache'}"]
    wide += [f"{key}={value}" for key, (value, _) in BOOKKEEPING.items()]
    if args.fit_masks == "exact":
        wide.append(f"fit.masks={Path(frames).parent / 'masks'}")
    return wide + list(args.set)


def benchmark_keys(args) -> list[str]:
    return [item.split("=", 1)[0] for item in benchmark_overrides(args)] + ["steps"]


def resolve(setting: Setting, args, **case_keys):
    """The row's config as `edit_video` resolves it (no file: the shipped defaults, then the diff,
    then the benchmark-wide keys); `steps` is the row's own (its budget)."""
    from text2live_geo.common.config import load_config
    from text2live_geo.config import VideoEditConfig

    wide = set(benchmark_keys(args)) - {"steps"}
    for item in setting.diff:
        if item.split("=", 1)[0] in wide:
            raise BenchmarkError(f"setting '{setting.name}' sets the benchmark-wide key {item.split('=', 1)[0]}")
    return load_config(VideoEditConfig, None, list(setting.diff) + benchmark_overrides(args, **case_keys),
                       warn_legacy=False)


def row_hash(values: dict) -> str:
    """Hash of a resolved row less `steps` (its trajectory: the schedules are per step)."""
    kept = {k: v for k, v in values.items() if k != "steps"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


FIT_KEYS = ("fit.", "video.", "seed", "device")


def fit_group(values: dict) -> str:
    """What the atlas fit of a row depends on (the project's cache key reads the clip, `fit.*`,
    `video.*` and the seed): rows with the same group share the fit."""
    kept = {k: v for k, v in values.items() if k.startswith(FIT_KEYS) and k != "video.frames"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


def check_default(values: dict, args) -> dict:
    """Refuse unless the default row, less the benchmark-wide keys, is the shipped VideoEditConfig."""
    from text2live_geo.common.config import load_config
    from text2live_geo.config import VideoEditConfig

    wide = set(benchmark_keys(args))
    shipped = {k: v for k, v in flat_values(load_config(VideoEditConfig, warn_legacy=False)).items() if k not in wide}
    mine = {k: v for k, v in values.items() if k not in wide}
    differing = sorted(k for k in shipped.keys() | mine.keys() if shipped.get(k, "<absent>") != mine.get(k, "<absent>"))
    if differing:
        shown = ", ".join(f"{k}={mine.get(k)!r} (shipped {shipped.get(k)!r})" for k in differing[:4])
        raise BenchmarkError(f"refusing to label a row '{DEFAULT}': its resolved config differs from the shipped one "
                             f"beyond the benchmark-wide keys at {shown}")
    return {"equal": True, "keys_compared": len(shipped), "keys_excluded": sorted(wide),
            "shipped": "load_config(VideoEditConfig): the dataclass defaults (= configs/video/base.yaml)"}


def step_cap(name: str, args) -> int:
    """The row's --max-steps (NAME=N for the row, else N for every row; 0: none)."""
    caps = dict(item.split("=", 1) if "=" in item else ("", item) for item in args.max_steps)
    return int(caps.get(name, caps.get("", 0)))


def curve_points(name: str, budget: int, args) -> tuple[list[int], bool]:
    """The step counts a row is judged at: --curve up to its budget, and the budget; capped at its
    --max-steps (then the second value is True: the row is truncated)."""
    cap = min(budget, step_cap(name, args)) if step_cap(name, args) else budget
    points = sorted({s for s in args.curve if 0 < s < cap} | {cap})
    return points, cap < budget


# ------------------------------------------------------------------------------ running
def _checkpoint_step(run_dir: Path) -> int | None:
    import torch

    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        return None
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def _trained_seconds(run_dir: Path) -> float:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return float(json.loads(lines[-1])["seconds"]) if lines else 0.0


def fit_case(cfg, fits_path: Path, key: tuple) -> dict:
    """The atlas of this case and fit group, through the project's cache (what `edit_video` calls
    without `atlas.checkpoint`); the time of the fit that made it (recorded in `fits_path` when this
    process fitted it; else the fit's own `fit_summary.json`)."""
    from text2live_geo.editing.video_input import fitted_atlas_for_video

    known = {}
    if fits_path.exists():
        for line in fits_path.read_text().splitlines():
            item = json.loads(line)
            known[(item["case"], item["world_seed"], item["fit_group"])] = item
    start, cpu = time.perf_counter(), time.process_time()
    folder = fitted_atlas_for_video(cfg, progress=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    summary = json.loads((folder / "fit_summary.json").read_text())
    if key in known and known[key]["atlas"] == str(folder):
        return known[key]
    fitted_now = wall > 1.0 + 0.5 * summary["seconds"]  # a reuse takes no time; a fit at least its loop
    item = {"case": key[0], "world_seed": key[1], "fit_group": key[2], "atlas": str(folder),
            "fit_psnr_db": summary["psnr_db"], "fit_iterations": summary["iterations"],
            "fit_seconds": wall if fitted_now else summary["seconds"] + summary["prepare_seconds"],
            "fit_cpu_seconds": cpu if fitted_now else None,
            "fit_timing": "measured around the fit" if fitted_now else "fit_summary.json (loop + flow and masks)"}
    with fits_path.open("a") as handle:
        handle.write(json.dumps(item) + "\n")
    return item


def edit_to(run_dir: Path, target: int, overrides: list[str]) -> dict:
    """Bring the edit in `run_dir` to `target` steps: resumed from its checkpoint (with
    `steps=target`), or new with `overrides` (and `steps=target`). Returns the step it started
    from, the training seconds before the call, and the call's wall and CPU seconds."""
    from text2live_geo.editing.video import edit_video

    at = _checkpoint_step(run_dir)
    if at is not None and at > target:  # beyond the point wanted (an earlier, longer run): start again
        shutil.rmtree(run_dir)
        at = None
    if at is None and run_dir.exists():  # a call cut short before its first checkpoint
        shutil.rmtree(run_dir)
    trained_before = _trained_seconds(run_dir) if at else 0.0
    start, cpu = time.perf_counter(), time.process_time()
    if at is None:
        edit_video(None, overrides + [f"steps={target}"], run_dir=run_dir, progress=False)
    else:
        edit_video(None, [f"steps={target}"], resume=run_dir, progress=False)
    return {"from_step": at or 0, "trained_before": trained_before, "wall": time.perf_counter() - start,
            "cpu": time.process_time() - cpu}


def _format_seconds(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min" if seconds >= 90 \
        else f"{seconds:.0f} s"


class Progress:
    """Progress lines with an ETA from what this run has measured: seconds per step of each
    setting, seconds of a fit and of a call's overhead (preparation and final render)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.step_seconds: dict[str, list[float]] = {}
        self.fit_seconds: list[float] = []
        self.overhead: list[float] = []

    def add(self, setting: str, steps: int, train: float, overhead: float) -> None:
        if steps > 0:
            self.step_seconds.setdefault(setting, []).append(train / steps)
        self.overhead.append(overhead)

    def eta(self, left: list[tuple], points_left: int, fits_left: int) -> str:
        """`left`: (setting, steps still to train) per unfinished curve; `points_left`: calls left."""
        if not self.overhead:
            return "ETA after the first curve point"
        known = [v for values in self.step_seconds.values() for v in values]
        fallback = sum(known) / len(known) if known else 0.0
        seconds = fits_left * (sum(self.fit_seconds) / len(self.fit_seconds) if self.fit_seconds else 0.0)
        for setting, steps in left:
            per_step = self.step_seconds.get(setting)
            seconds += steps * (sum(per_step) / len(per_step) if per_step else fallback)
        seconds += points_left * sum(self.overhead) / len(self.overhead)
        return f"ETA {_format_seconds(seconds)}"


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run(args) -> dict:
    import torch

    from text2live_geo.common.runs import RunError

    torch.set_num_threads(args.threads)
    settings = [SETTINGS[DEFAULT]]
    for name in args.settings.split(","):
        if name and name != DEFAULT:
            if name not in SETTINGS:
                raise BenchmarkError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)} (or --candidate)")
            settings.append(SETTINGS[name])
    settings += [parse_candidate(text) for text in args.candidate]
    names = [s.name for s in settings]
    by_name = {s.name: s for s in settings}
    if len(set(names)) != len(names):
        raise BenchmarkError(f"two rows share a name: {names}")
    resolved = {s.name: flat_values(resolve(s, args)) for s in settings}
    checked = check_default(resolved[DEFAULT], args)
    hashes = {name: row_hash(values) for name, values in resolved.items()}
    groups = {name: fit_group(values) for name, values in resolved.items()}
    budgets = {name: int(values["steps"]) for name, values in resolved.items()}
    curves = {name: curve_points(name, budgets[name], args) for name in names}

    work = Path(args.work).resolve()
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    rows_path = results / f"{args.name}_rows.jsonl"
    cases = [make_case(i, args.width, args.height, args.frames) for i in range(args.cases)]
    identity = {c.index: (c.seed, args.width, args.height, args.frames) for c in cases}
    rows = [r for r in read_rows(rows_path)
            if r["setting"] in hashes and r["config_hash"] == hashes[r["setting"]]
            and identity.get(r["case"]) == (r["world_seed"], r["width"], r["height"], r["frames"])]
    done = {(r["case"], r["setting"], r["step"]) for r in rows}
    plan = [(c.index, name, step) for c in cases for name in names for step in curves[name][0]]
    todo = [item for item in plan if item not in done]
    fits_todo = {(case, groups[name]) for case, name, _ in todo}
    print(f"video_sp: {len(cases)} cases ({args.width}x{args.height}, {args.frames} frames) x {len(names)} settings "
          f"({', '.join(f'{n}: steps {curves[n][0]}' + (' truncated' if curves[n][1] else '') for n in names)}) = "
          f"{len(plan)} judged points, {len(plan) - len(todo)} already done; {len(fits_todo)} atlas fits needed "
          f"at most; work folder {work}", flush=True)
    progress = Progress()
    fits_path = work / "fits.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    with rows_path.open("a") as finished:
        for case in cases:
            mine = [item for item in todo if item[0] == case.index]
            if not mine:
                continue
            case_dir = write_case(case, work / "cases" / f"case_{case.index:03d}")
            truth = read_truth(case_dir)
            reference = judge_input(truth, case)
            keys = {"frames": str(case_dir / "frames"), "src": case.src_text, "target": case.target_text}
            fits: dict[str, dict] = {}
            for name in names:
                steps_left = [step for index, row_name, step in mine if row_name == name]
                if not steps_left:
                    continue
                setting = by_name[name]
                cfg = resolve(setting, args, **keys)
                common = {**case.describe(), "setting": name, "seed": int(cfg.seed), "budget": budgets[name],
                          "truncated": curves[name][1], "config_hash": hashes[name], "width": args.width,
                          "height": args.height, "frames": args.frames, "fit_group": groups[name]}
                run_dir = work / "runs" / f"{name}-case{case.index:03d}"
                for step in steps_left:
                    try:
                        if groups[name] not in fits:
                            fits[groups[name]] = fit_case(cfg, fits_path, (case.index, case.seed, groups[name]))
                            progress.fit_seconds.append(fits[groups[name]]["fit_seconds"])
                        fit = fits[groups[name]]
                        row = edit_point(run_dir, step, list(setting.diff) + benchmark_overrides(args, **keys), cfg,
                                         fit, progress, name)
                        judged = judge_clip(read_frames(run_dir / "frames"), truth, case)
                    except RunError as error:  # the project refused this edit (or its fit): no edit delivered
                        fit = fits.get(groups[name], {"fit_seconds": None, "fit_cpu_seconds": None,
                                                      "fit_psnr_db": None, "fit_timing": None})
                        row = {"failed": str(error).splitlines()[0], "train_seconds": None,
                               "seconds_to_result": None, **{k: fit[k] for k in
                                                             ("fit_seconds", "fit_cpu_seconds", "fit_psnr_db",
                                                              "fit_timing")}}
                        judged = judge_clip(truth.frames, truth, case)  # what the user has: the input
                        print(f"case {case.index} {name} step {step}: the edit failed ({row['failed']}); "
                              "judged as no edit", flush=True)
                    row = {**common, "step": step, **row, **judged, **reference}
                    rows.append(row)
                    finished.write(json.dumps(row) + "\n")
                    finished.flush()
                    todo.remove((case.index, name, step))
                    left = [(n, s - (_last_step(rows, c, n) or 0)) for c, n, s in _last_points(todo)]
                    fits_left = len({(c, groups[n]) for c, n, _ in todo} - {(case.index, g) for g in fits})
                    timing = "" if row.get("failed") else (
                        f"; fit {row['fit_seconds']:.0f} s, trained {row['train_seconds']:.0f} s, call "
                        f"{row['call_wall_seconds']:.0f} s")
                    print(f"[{len(plan) - len(todo)}/{len(plan)}] case {case.index} {name} step {step}: on target in "
                          f"{100 * judged['plasticity_frames']:.0f} % of frames, PSNR outside "
                          f"{judged['psnr_outside']:.1f} dB, shape IoU {judged['shape_iou']:.3f}, warp error "
                          f"{judged['warp_error']:.4f} (input {reference['warp_error_input']:.4f}){timing}; elapsed "
                          f"{_format_seconds(time.perf_counter() - progress.start)}, "
                          f"{progress.eta(left, len(todo), fits_left)}", flush=True)
    data = write_results(rows, settings, resolved, checked, curves, args, results)
    print((results / f"{args.name}.md").read_text())
    return data


def edit_point(run_dir: Path, step: int, overrides: list[str], cfg, fit: dict, progress: Progress, name: str
               ) -> dict:
    """Bring the row's edit to `step` (`edit_to`), check what ran, and return the row's timing."""
    from text2live_geo.common.config import load_config
    from text2live_geo.config import VideoEditConfig

    call = edit_to(run_dir, step, overrides)
    if call["from_step"] == 0:  # what ran is what was resolved (the saved config, less steps)
        saved = flat_values(load_config(VideoEditConfig, run_dir / "config.yaml", warn_legacy=False))
        if row_hash(saved) != row_hash(flat_values(cfg)):
            raise BenchmarkError(f"run {run_dir} saved a config other than the one resolved for it")
    trained = _trained_seconds(run_dir)
    overhead = max(0.0, call["wall"] - (trained - call["trained_before"]))
    progress.add(name, step - call["from_step"], trained - call["trained_before"], overhead)
    return {"fit_seconds": fit["fit_seconds"], "fit_cpu_seconds": fit["fit_cpu_seconds"],
            "fit_psnr_db": fit["fit_psnr_db"], "fit_timing": fit["fit_timing"], "train_seconds": trained,
            # this call's steps (summary.json's seconds_per_step divides a resumed call's seconds by every
            # step since 0)
            "seconds_per_step": (trained - call["trained_before"]) / max(1, step - call["from_step"]),
            "call_wall_seconds": call["wall"],
            "call_cpu_seconds": call["cpu"], "call_overhead_seconds": overhead,
            # what a user waits for this edit at this many steps: the fit, the training to this step
            # and one preparation and final render
            "seconds_to_result": fit["fit_seconds"] + trained + overhead, "run_dir": str(run_dir)}


def _last_points(todo: list[tuple]) -> list[tuple]:
    """The last step of each (case, setting) still to do."""
    last: dict[tuple, int] = {}
    for case, name, step in todo:
        last[(case, name)] = max(step, last.get((case, name), 0))
    return [(case, name, step) for (case, name), step in last.items()]


def _last_step(rows: list[dict], case: int, name: str) -> int | None:
    steps = [r["step"] for r in rows if r["case"] == case and r["setting"] == name]
    return max(steps) if steps else None


# ------------------------------------------------------------------------------ results
#: metric -> (binary?, +1 when higher is better / -1 when lower is); compared with sp_dilemma.compare
VIDEO_METRICS = {"plasticity": (True, 1), "attribute_kept": (True, 1), "psnr_outside": (False, 1),
                 "shape_iou": (False, 1), "colour_spread": (False, -1), "warp_error": (False, -1)}
SUMMARY_METRICS = (*VIDEO_METRICS, "plasticity_frames", "seconds_to_result", "train_seconds", "fit_seconds",
                   "fit_cpu_seconds")


def _read(row: dict, metric: str) -> float:
    return float(row[metric])


def final_rows(rows: list[dict], curves: dict) -> list[dict]:
    """Each case x setting at its last judged step (its budget, or --max-steps)."""
    return [r for r in rows if r["setting"] in curves and r["step"] == curves[r["setting"]][0][-1]]


def summarise(rows: list[dict]) -> dict:
    """Mean and 95 % bootstrap interval of every summary metric, with the per-kind plasticity."""
    entry = {"cases": len(rows)}
    for metric in SUMMARY_METRICS:
        values = [_read(r, metric) for r in rows if r.get(metric) is not None and not math.isnan(_read(r, metric))]
        entry[metric] = list(bootstrap_interval(values)) if values else [float("nan")] * 3
    for kind in ("recolour", "retexture"):
        hits = [r["plasticity"] for r in rows if r["kind"] == kind]
        entry[f"plasticity_{kind}"] = sum(hits) / len(hits) if hits else float("nan")
    entry["failed"] = sum(bool(r.get("failed")) for r in rows)
    return entry


def write_results(rows: list[dict], settings: list[Setting], resolved: dict, checked: dict, curves: dict, args,
                  results: Path) -> dict:
    names = [s.name for s in settings]
    final = final_rows(rows, curves)
    summary = {name: summarise([r for r in final if r["setting"] == name]) for name in names
               if any(r["setting"] == name for r in final)}
    curve_summary = {}
    for name in names:
        at = {step: [r for r in rows if r["setting"] == name and r["step"] == step] for step in curves[name][0]}
        curve_summary[name] = [{"step": step, **summarise(judged)} for step, judged in at.items() if judged]
    comparisons = compare(final, names, metrics=VIDEO_METRICS, value=_read) if len(summary) > 1 and DEFAULT in summary \
        else {}
    # the same at the last step every row was judged at, when that is not every row's last step
    shared = set.intersection(*(set(curves[name][0]) for name in names))
    common_step = max(shared) if shared else None
    at_common = [r for r in rows if r["step"] == common_step]
    comparisons_common = compare(at_common, names, metrics=VIDEO_METRICS, value=_read) \
        if common_step and len(summary) > 1 and any(curves[name][0][-1] != common_step for name in names) else {}
    inputs = {}
    for metric in ("shape_iou_input", "colour_spread_input", "warp_error_input"):
        values = [r[metric] for r in final if r["setting"] == DEFAULT]
        inputs[metric] = list(bootstrap_interval(values)) if values else None
    fits = {}
    for r in final:
        fits.setdefault(r["fit_group"], {})[r["case"]] = {"seconds": r["fit_seconds"], "psnr_db": r["fit_psnr_db"]}
    data = {
        "command": "python benchmarks/video_sp.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "arguments": {k: v for k, v in vars(args).items()}, "case_seed_base": CASE_SEED, "frame_share": FRAME_SHARE,
        "benchmark_wide_keys": benchmark_keys(args), "bookkeeping_keys": {k: v[1] for k, v in BOOKKEEPING.items()},
        "reduced_scale": bool(args.set),
        "settings": {s.name: {"diff": list(s.diff), "note": s.note, "budget": int(resolved[s.name]["steps"]),
                              "judged_steps": curves[s.name][0], "truncated": curves[s.name][1]} for s in settings},
        "resolved_configs": resolved, "default_check": checked, "summary": summary, "curves": curve_summary,
        "comparisons": comparisons, "common_step": common_step, "comparisons_at_common_step": comparisons_common,
        "input_reference": inputs, "fits": fits,
        "cases": sorted({json.dumps({k: r[k] for k in ("case", "world_seed", "kind", "camera", "shape", "src",
                                                       "target_text")}) for r in rows}),
        "rows_file": f"{args.name}_rows.jsonl",
    }
    data["cases"] = [json.loads(item) for item in data["cases"]]
    (results / f"{args.name}.json").write_text(json.dumps(data, indent=1, default=str))
    (results / f"{args.name}.md").write_text(report(data, args, final))
    return data


def _num(value, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{scale * value:.{digits}f}"


def _ci(triple, scale: float = 1.0, digits: int = 0) -> str:
    mean, low, high = (scale * v for v in triple)
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _d(entry: dict, scale: float, digits: int) -> str:
    low, high = (scale * v for v in entry["interval"])
    text = f"{scale * entry['difference']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}] p={entry['p_holm']:.3f}"
    return f"**{text}**" if entry["rejected"] else text


def report(data: dict, args, final: list[dict]) -> str:
    summary, comparisons = data["summary"], data["comparisons"]
    lines = ["# Video stability-plasticity benchmark (procedural toy-world clips, judged from pixels)", ""]
    if data["reduced_scale"]:
        lines += [f"**Reduced scale** (`--set {' '.join(args.set)}` on every row): not the shipped config; a smoke "
                  "run, not a result.", ""]
    truncated = [name for name, s in data["settings"].items() if s["truncated"]]
    if truncated:
        shown = [f"`{name}` judged up to step {data['settings'][name]['judged_steps'][-1]} of its "
                 f"{data['settings'][name]['budget']}" for name in truncated]
        lines += ["**Truncated**: " + ", ".join(shown)
                  + f" (`--max-steps {' '.join(args.max_steps)}`): its figures there are that step's, not the "
                  "recipe's result.", ""]
    cases = len({r["case"] for r in final})
    lines += [f"Command: `{data['command']}`.", "",
              f"{cases} case(s) (world seeds from {CASE_SEED:,}), {args.width}x{args.height}, {args.frames} frames, "
              f"toy CLIP `{Path(args.clip).name}`, atlas masks "
              + ("from motion (the shipped fit)" if args.fit_masks == "motion" else "the exact masks (fit.masks)")
              + f", device {args.device}, {args.threads} torch thread(s). Plasticity and attribute kept: the "
              f"judge's verdict in at least {100 * FRAME_SHARE:.0f} % of the frames. Brackets: 95 % bootstrap "
              "intervals over cases.", "",
              "Benchmark-wide keys, the same in every row: " + ", ".join(f"`{k}`" for k in data["benchmark_wide_keys"])
              + "; of these, " + "; ".join(f"`{k}` ({why})" for k, why in data["bookkeeping_keys"].items())
              + f". The default row's resolved config, less these keys, equals the shipped `VideoEditConfig` at all "
              f"{data['default_check']['keys_compared']} other keys (checked before the run).", "",
              "## At each row's last judged step", "",
              "| setting | diff on the shipped config | step | plasticity % | recolour % | retexture % "
              "| attribute kept % | PSNR outside dB | shape IoU | colour spread | warp error | fit s | training s | "
              "s to result |",
              "|---" * 14 + "|"]
    for name, s in summary.items():
        setting = data["settings"][name]
        step = f"{setting['judged_steps'][-1]}" + (f" of {setting['budget']}" if setting["truncated"] else "")
        lines.append(f"| {name} | `{' '.join(setting['diff']) or '(the shipped config)'}` | {step} | "
                     f"{_ci(s['plasticity'], 100)} | {_num(s['plasticity_recolour'], 100)} | "
                     f"{_num(s['plasticity_retexture'], 100)} | {_ci(s['attribute_kept'], 100)} | "
                     f"{_ci(s['psnr_outside'], 1, 1)} | {_ci(s['shape_iou'], 1, 3)} | "
                     f"{_ci(s['colour_spread'], 1, 4)} | {_ci(s['warp_error'], 1, 4)} | {_num(s['fit_seconds'][0])} | "
                     f"{_num(s['train_seconds'][0])} | {_num(s['seconds_to_result'][0])} |")
    inputs = data["input_reference"]
    if inputs.get("warp_error_input"):
        lines += ["", f"The input clips themselves: shape IoU {inputs['shape_iou_input'][0]:.3f}, colour spread "
                  f"{inputs['colour_spread_input'][0]:.4f}, warp error {inputs['warp_error_input'][0]:.4f} (0 for a "
                  "plain object; for a textured one, the bilinear resampling of its pattern's hard edges)."]
    timing = []
    for name, s in summary.items():
        setting = data["settings"][name]
        per_step = s["train_seconds"][0] / setting["judged_steps"][-1]
        fit_cpu = s["fit_cpu_seconds"][0]
        timing.append(f"`{name}` fit {_num(s['fit_seconds'][0])} s (CPU {_num(fit_cpu)} s), training "
                      f"{per_step:.2f} s/step, so {setting['budget']} steps with the fit "
                      f"~{_format_seconds(s['fit_seconds'][0] + setting['budget'] * per_step)}"
                      + (" (extrapolated from the steps run)" if setting["truncated"] else ""))
    lines += ["", "Time per case (wall seconds, means over the cases, on the machine the rows were made on): "
              + "; ".join(timing) + "."]
    for title, table in (("at each row's last judged step", comparisons),
                         (f"at step {data['common_step']}, the last step every row was judged at",
                          data["comparisons_at_common_step"])):
        if table:
            lines += ["", f"## Differences to the default, {title}", ""] + _difference_table(table, list(summary))
    failed = {name: s["failed"] for name, s in summary.items() if s["failed"]}
    if failed:
        lines += ["", "Edits the project refused (e.g. no foreground pixel above atlas.alpha_threshold in the fitted "
                  "atlas), judged as no edit, i.e. the input: " + ", ".join(f"{n} {c}" for n, c in failed.items())
                  + " (reasons in the rows file)."]
    lines += ["", "## Along the optimisation", "",
              "Means over the cases judged at each step (plasticity: % of cases; frames: % of frames on target; "
              "s to result: fit + training to this step + one preparation and final render, wall seconds).", "",
              "| setting | step | cases | plasticity % | frames on target % | PSNR outside dB | shape IoU "
              "| colour spread | warp error | s to result |", "|---" * 10 + "|"]
    for name, points in data["curves"].items():
        for p in points:
            lines.append(f"| {name} | {p['step']} | {p['cases']} | {100 * p['plasticity'][0]:.0f} | "
                         f"{100 * p['plasticity_frames'][0]:.0f} | {p['psnr_outside'][0]:.1f} | "
                         f"{p['shape_iou'][0]:.3f} | {p['colour_spread'][0]:.4f} | {p['warp_error'][0]:.4f} | "
                         f"{_num(p['seconds_to_result'][0])} |")
    if cases <= 16:
        lines += ["", "## Per case (last judged step)", "",
                  "| case | edit | camera | atlas fit | setting | frames on target % | attribute kept % | PSNR outside "
                  "| shape IoU (input) | colour spread (input) | warp error (input) | fit s | training s |",
                  "|---" * 13 + "|"]
        for r in sorted(final, key=lambda r: (r["case"], list(summary).index(r["setting"]))):
            lines.append(f"| {r['case']} | {r['src']} -> {r['target_text']} | {r['camera']} | "
                         f"{_num(r['fit_psnr_db'], 1, 1)} dB | {r['setting']} | {100 * r['plasticity_frames']:.0f} | "
                         f"{100 * r['attribute_kept_frames']:.0f} | {r['psnr_outside']:.1f} | "
                         f"{r['shape_iou']:.3f} ({r['shape_iou_input']:.3f}) | "
                         f"{r['colour_spread']:.4f} ({r['colour_spread_input']:.4f}) | {r['warp_error']:.4f} "
                         f"({r['warp_error_input']:.4f}) | {_num(r['fit_seconds'])} | {_num(r['train_seconds'])} |"
                         + (" refused" if r.get("failed") else ""))
    return "\n".join(lines) + "\n"


def _difference_table(comparisons: dict, names: list[str]) -> list[str]:
    m = len(names) - 1
    lines = [f"Candidate - default, paired by case; Holm over the {m} comparison(s) within each metric; brackets: "
             "paired-bootstrap interval at the comparison's Holm level; p: Holm-adjusted, exact McNemar for "
             "plasticity and attribute kept (discordant: candidate-only / default-only), a paired sign-flip test "
             "otherwise; bold: rejected at 0.05.", "",
             "| setting | plasticity (points) | discordant | attribute kept (points) | PSNR outside (dB) "
             "| shape IoU | colour spread | warp error |", "|---|---|---|---|---|---|---|---|"]
    for name in names:
        if name == DEFAULT:
            continue
        c = {metric: comparisons[metric][name] for metric in VIDEO_METRICS}
        lines.append(f"| {name} | {_d(c['plasticity'], 100, 0)} | {c['plasticity']['candidate_only']}/"
                     f"{c['plasticity']['default_only']} | {_d(c['attribute_kept'], 100, 0)} | "
                     f"{_d(c['psnr_outside'], 1, 1)} | {_d(c['shape_iou'], 1, 3)} | "
                     f"{_d(c['colour_spread'], 1, 4)} | {_d(c['warp_error'], 1, 4)} |")
    return lines


# ---------------------------------------------------------------------------------- main
def _steps_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of step counts, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"step counts must be positive, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=48, help="cases 0..N-1 of the held-out set")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--settings", default=f"{DEFAULT},fast",
                        help=f"comma-separated rows of {', '.join(SETTINGS)} (the default row always runs)")
    parser.add_argument("--candidate", action="append", default=[], metavar="'NAME key=value ...'",
                        help="one more row: a name and its diff on the shipped config (repeatable)")
    parser.add_argument("--curve", type=_steps_list, default=DEFAULT_CURVE,
                        help="step counts to judge each row at, up to its own steps (default %(default)s)")
    parser.add_argument("--max-steps", action="append", default=[], metavar="[NAME=]N",
                        help="judge no row (or the row NAME) beyond step N (default: each row's own steps); a "
                             "truncated row is reported as such (repeatable)")
    parser.add_argument("--clip", default=str(ROOT / "data" / "toy_clip"))
    parser.add_argument("--fit-masks", choices=("motion", "exact"), default="motion",
                        help="the atlas fit's masks: from motion (the shipped fit) or the clip's exact masks")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to every row and reported in bold as reduced scale (smoke runs, tests)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="every row's device (a benchmark-wide key)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "video_sp"),
                        help="clips, atlas cache, run folders (resumable)")
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--name", default="video_sp", help="results: <name>.md, <name>.json, <name>_rows.jsonl")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
    for item in args.max_steps:
        if not item.rpartition("=")[2].isdigit():
            parser.error(f"--max-steps takes N or NAME=N, got {item!r}")
    try:
        run(args)
    except BenchmarkError as error:
        print(f"video_sp: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
